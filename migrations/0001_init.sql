-- 0001_init.sql: Herald's first schema (DESIGN.md §4).
--
-- Forward only. The runner wraps this file in one transaction and records it in
-- herald_schema_migrations, so there is no BEGIN/COMMIT here. No extensions:
-- gen_random_uuid() is built in since PostgreSQL 13.
--
-- Conventions:
--   * every time is timestamptz (UTC on the wire); local dates/times only where
--     the value really is a wall-clock value in the client's time zone;
--   * channels are 'email' | 'sms' | 'whatsapp'; error categories are those of
--     classify(): transient | permanent | rate_limit | auth_failure | invalid;
--   * hashes and blind indexes are lowercase hex; *_enc columns hold the field
--     encryption envelope of core/crypto (AES-256-GCM, carries its own key id,
--     so keys rotate without a schema change);
--   * the engine sets updated_at itself (no triggers on the hot path).

-- ---------------------------------------------------------------------------
-- API keys and refresh tokens (auth)
-- ---------------------------------------------------------------------------

-- The key handed to a client is "<prefix>.<secret>" (format is core/crypto's):
-- prefix finds the row, the secret is compared against secret_hash. The secret
-- is random and long, so a plain SHA-256 (not a slow KDF) is the right hash.
-- Keys are revoked (revoked_at), never deleted, so a name is never reused and
-- a token's `sub` always names one key.
CREATE TABLE crm_api_keys (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text        NOT NULL UNIQUE
                              CHECK (length(name) BETWEEN 1 AND 100),
    prefix        text        NOT NULL UNIQUE
                              CHECK (prefix ~ '^[A-Za-z0-9_-]{4,64}$'),
    secret_hash   text        NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    -- array <@ is false when the array holds a NULL, so NULL scopes are refused too
    scopes        text[]      NOT NULL
                              CHECK (cardinality(scopes) > 0
                                     AND scopes <@ ARRAY['send', 'read', 'admin']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Opaque refresh tokens, stored hashed, single use. A family is one login's
-- chain of rotations: presenting a token whose used_at is already set revokes
-- every token of its family_id.
CREATE TABLE crm_refresh_tokens (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id    uuid        NOT NULL,
    -- a refresh token is worthless without its key: deleting a key (not the
    -- normal path, keys are revoked) takes its tokens with it
    api_key_id   uuid        NOT NULL REFERENCES crm_api_keys (id) ON DELETE CASCADE,
    token_hash   text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz,
    -- the token issued when this one was spent; purging old tokens must not
    -- fail because a newer one points at them
    replaced_by  uuid        REFERENCES crm_refresh_tokens (id) ON DELETE SET NULL,
    CHECK (expires_at > created_at)
);
-- reuse detection revokes a whole family; revoking a key revokes its tokens
-- (and serves the ON DELETE CASCADE above)
CREATE INDEX crm_refresh_tokens_family_idx ON crm_refresh_tokens (family_id);
CREATE INDEX crm_refresh_tokens_api_key_idx ON crm_refresh_tokens (api_key_id);

-- ---------------------------------------------------------------------------
-- Client preferences
-- ---------------------------------------------------------------------------

-- email/phone: *_enc is the ciphertext, *_index the HMAC blind index (hex) of
-- the normalised address (email trimmed+lowercased, phone E.164), computed with
-- the same key and normalisation as crm_suppressions.address_index.
CREATE TABLE crm_client_preferences (
    client_id           text        PRIMARY KEY
                                    CHECK (length(client_id) BETWEEN 1 AND 200),
    name                text,
    email_enc           text,
    email_index         text        CHECK (email_index ~ '^[0-9a-f]{32,128}$'),
    phone_enc           text,
    phone_index         text        CHECK (phone_index ~ '^[0-9a-f]{32,128}$'),
    timezone            text        NOT NULL DEFAULT 'UTC'
                                    CHECK (length(timezone) BETWEEN 1 AND 64),
    locale              text        NOT NULL DEFAULT 'en'
                                    CHECK (locale ~ '^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$'),
    -- allowed channels in the client's order of preference
    allowed_channels    text[]      NOT NULL DEFAULT ARRAY['email', 'sms', 'whatsapp']::text[]
                                    CHECK (allowed_channels <@ ARRAY['email', 'sms', 'whatsapp']::text[]),
    -- wall-clock times in `timezone`; start > end wraps midnight (22:00-07:00)
    quiet_hours_start   time,
    quiet_hours_end     time,
    opted_out_channels  text[]      NOT NULL DEFAULT '{}'
                                    CHECK (opted_out_channels <@ ARRAY['email', 'sms', 'whatsapp']::text[]),
    -- local time at which the day's low-urgency digest goes out
    digest_local_time   time        NOT NULL DEFAULT '09:00',
    consent_given       boolean     NOT NULL DEFAULT false,
    consent_at          timestamptz,
    consent_source      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((email_enc IS NULL) = (email_index IS NULL)),
    CHECK ((phone_enc IS NULL) = (phone_index IS NULL)),
    CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)),
    CHECK (NOT consent_given OR consent_at IS NOT NULL)
);
-- exact-match look-ups by address (unsubscribe, GDPR requests by address);
-- partial because most clients lack one of the two
CREATE INDEX crm_client_preferences_email_idx ON crm_client_preferences (email_index)
    WHERE email_index IS NOT NULL;
CREATE INDEX crm_client_preferences_phone_idx ON crm_client_preferences (phone_index)
    WHERE phone_index IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Communications: one row per logical message
-- ---------------------------------------------------------------------------

-- Status is monotonic (DESIGN.md §4):
--   scheduled < queued < sending < sent < delivered < opened < clicked,
--   failed | cancelled | suppressed are terminal.
-- The engine enforces the order in its UPDATE's WHERE clause; the CHECK only
-- guards the vocabulary.
--
-- Update-heavy (each message moves through 3-6 states), so: fillfactor leaves
-- room for HOT updates, and no index covers a column that changes after insert
-- (status, channel, provider_message_id, stage timestamps, updated_at); an index
-- on any of them would turn every status change into a write to every index.
-- Filters on status/channel/message_type ride on the created_at-ordered indexes.
CREATE TABLE crm_communications (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL only for engine-made messages that span plans (a client's digest)
    plan_id              text        CHECK (length(plan_id) BETWEEN 1 AND 200),
    client_id            text        NOT NULL CHECK (length(client_id) BETWEEN 1 AND 200),
    message_type         text        NOT NULL CHECK (message_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    urgency              text        NOT NULL
                                     CHECK (urgency IN ('low', 'normal', 'high', 'critical')),
    context              jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    -- strategy.decide()'s answer as returned to the caller
    strategy             jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(strategy) = 'object'),
    -- the request's `recipient` override (encrypted JSON), used for this message only
    recipient_enc        text,
    primary_channel      text        NOT NULL
                                     CHECK (primary_channel IN ('email', 'sms', 'whatsapp')),
    -- chain position k (crm_jobs.channel_index): 0 = primary_channel,
    -- k >= 1 = fallback_channels[k] (arrays are 1-based)
    fallback_channels    text[]      NOT NULL DEFAULT '{}'
                                     CHECK (fallback_channels <@ ARRAY['email', 'sms', 'whatsapp']::text[]),
    -- the channel in use / that delivered; NULL until a first attempt
    channel              text        CHECK (channel IN ('email', 'sms', 'whatsapp')),
    status               text        NOT NULL DEFAULT 'scheduled'
                                     CHECK (status IN ('scheduled', 'queued', 'sending', 'sent',
                                                       'delivered', 'opened', 'clicked',
                                                       'failed', 'cancelled', 'suppressed')),
    send_at              timestamptz NOT NULL,
    -- higher goes first (crm_jobs claims ORDER BY priority DESC)
    priority             smallint    NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    -- low urgency: waits for the client's daily digest instead of its own send
    batch                boolean     NOT NULL DEFAULT false,
    -- for a batched message, the digest message that carried it
    digest_id            uuid        REFERENCES crm_communications (id) ON DELETE SET NULL,
    -- who asked (the JWT `sub`) and with which Idempotency-Key. Plain values,
    -- no FK: idempotency rows expire after 24 h, this record outlives them, and
    -- operator tokens (`herald token`) have no crm_api_keys row.
    requested_by         text,
    idempotency_key      text,
    -- set before the provider call starts; after a crash, a message with this
    -- set is reported as possibly sent instead of silently sent twice
    may_have_been_sent   boolean     NOT NULL DEFAULT false,
    -- provider id of the latest attempt, for display. Webhooks look ids up in
    -- crm_delivery_logs, which keeps the id of every attempt.
    provider_message_id  text,
    attempt_count        integer     NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    last_error_category  text        CHECK (last_error_category IN ('transient', 'permanent',
                                                                    'rate_limit', 'auth_failure',
                                                                    'invalid')),
    last_error_code      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    queued_at            timestamptz,
    sending_at           timestamptz,
    sent_at              timestamptz,
    delivered_at         timestamptz,
    opened_at            timestamptz,
    clicked_at           timestamptz,
    failed_at            timestamptz,
    cancelled_at         timestamptz,
    suppressed_at        timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 85);

-- History is newest first with the cursor (created_at, id):
--   WHERE <filters> AND (created_at, id) < ($ts, $id)
--   ORDER BY created_at DESC, id DESC LIMIT $n
-- Btree scans backwards, so ascending keys serve DESC. The unfiltered index
-- also serves analytics over a created_at range.
CREATE INDEX crm_communications_created_idx ON crm_communications (created_at, id);
CREATE INDEX crm_communications_plan_idx    ON crm_communications (plan_id, created_at, id);
-- also GDPR export/erasure and the digest's "pending batched messages of client X"
CREATE INDEX crm_communications_client_idx  ON crm_communications (client_id, created_at, id);
-- serves the self-FK above (deleting a digest must not scan the table); partial
-- because only batched messages have one
CREATE INDEX crm_communications_digest_idx  ON crm_communications (digest_id)
    WHERE digest_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Delivery logs: every attempt and every provider / tracking event
-- ---------------------------------------------------------------------------

CREATE TABLE crm_delivery_logs (
    id                   bigserial   PRIMARY KEY,
    -- logs are part of their message: they go when it is purged (retention).
    -- NULL only for an event whose provider id matches no message yet (it is
    -- kept so it can be re-attached, and the provider is still answered 200).
    communication_id     uuid        REFERENCES crm_communications (id) ON DELETE CASCADE,
    kind                 text        NOT NULL CHECK (kind IN ('attempt', 'event')),
    channel              text        CHECK (channel IN ('email', 'sms', 'whatsapp')),
    attempt              smallint    CHECK (attempt >= 1),
    -- events: delivered, read, failed, open, click, unsubscribe, bounce, ...
    event_type           text,
    -- attempts: ok | error; events: the provider's raw status word
    status               text,
    provider             text,       -- smtp, twilio, whatsapp, outbox, tracking ...
    provider_message_id  text,
    raw_code             text,       -- SMTP reply / enhanced code, Twilio or Meta error code, HTTP status
    message              text,
    category             text        CHECK (category IN ('transient', 'permanent', 'rate_limit',
                                                         'auth_failure', 'invalid')),
    may_have_been_sent   boolean     NOT NULL DEFAULT false,
    latency_ms           integer     CHECK (latency_ms >= 0),
    -- provider idempotency token or a key built from the event
    -- ("twilio:<I-Twilio-Idempotency-Token>", "wa:<wamid>:<status>"); NULL when
    -- every hit counts (opens, clicks)
    dedup_key            text,
    details              jsonb       NOT NULL DEFAULT '{}',
    occurred_at          timestamptz NOT NULL DEFAULT now(),  -- provider's time when it gives one
    recorded_at          timestamptz NOT NULL DEFAULT now(),  -- ours: shows late / out-of-order events
    CHECK (kind = 'event'
           OR (communication_id IS NOT NULL AND channel IS NOT NULL AND attempt IS NOT NULL)),
    CHECK (kind = 'attempt' OR event_type IS NOT NULL)
);
-- GET /communications/{id}: attempts and events in time order; also serves the FK cascade
CREATE INDEX crm_delivery_logs_comm_idx ON crm_delivery_logs (communication_id, occurred_at);
-- Webhooks find their message by provider id. Attempt rows hold the id of
-- every attempt (a receipt for an earlier channel must still find its
-- message); partial, so the many event rows stay out of this index.
CREATE INDEX crm_delivery_logs_provider_msg_idx ON crm_delivery_logs (provider_message_id)
    WHERE kind = 'attempt' AND provider_message_id IS NOT NULL;
-- Orphan events waiting for their attempt row (a receipt can beat a batched
-- write); tiny by construction.
CREATE INDEX crm_delivery_logs_orphan_idx ON crm_delivery_logs (provider_message_id)
    WHERE communication_id IS NULL;
-- a duplicate event is counted once:
--   INSERT ... ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
CREATE UNIQUE INDEX crm_delivery_logs_dedup_idx ON crm_delivery_logs (dedup_key)
    WHERE dedup_key IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Durable job queue
-- ---------------------------------------------------------------------------

-- Kept small: a finished job is DELETEd (its history is in crm_delivery_logs).
-- Claim (batched, one statement):
--   SELECT ... FROM crm_jobs
--   WHERE due_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
--   ORDER BY priority DESC, due_at LIMIT $n FOR UPDATE SKIP LOCKED
-- then UPDATE lease_owner / lease_expires_at. A job whose lease expired (its
-- process died) matches the claim again; nothing else is needed to recover it.
CREATE TABLE crm_jobs (
    id                bigserial   PRIMARY KEY,
    -- a job for a message that no longer exists has nothing to do. NULL only
    -- for jobs about a client or the system (digest: client and local date in
    -- payload; alert).
    communication_id  uuid        REFERENCES crm_communications (id) ON DELETE CASCADE,
    kind              text        NOT NULL CHECK (kind IN ('send', 'digest', 'no_receipt', 'alert')),
    priority          smallint    NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    due_at            timestamptz NOT NULL DEFAULT now(),
    attempt           smallint    NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- position in the message's chain: 0 = primary, k = fallback_channels[k]
    channel_index     smallint    NOT NULL DEFAULT 0 CHECK (channel_index >= 0),
    lease_owner       text,
    lease_expires_at  timestamptz,
    -- at most one pending job per key, e.g. "digest:<client_id>",
    -- "no_receipt:<communication_id>:<channel_index>"; enqueue with
    --   ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    dedup_key         text,
    payload           jsonb       NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (kind IN ('digest', 'alert') OR communication_id IS NOT NULL),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
) WITH (
    -- claims only touch lease columns, which no index covers: with room in the
    -- page those updates are HOT. Rows are deleted all the time, so vacuum
    -- early and without throttling to keep dead tuples out of the claim path.
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);
-- The claim index. The scan walks it in ORDER BY order, so LIMIT stops after
-- $n rows: a critical job is first in O(1) however large the due backlog
-- (measured: 0.1 ms with 100k due jobs, where an index on due_at alone needs a
-- 20 ms sort of every due row on each claim). due_at <= now() is checked on the
-- index entry; the lease test is a filter on the heap row, and only leased
-- in-flight rows fail it. Cost to know: when fewer than $n jobs are due, the
-- scan also walks the entries of not-yet-due jobs (3-6 ms per 200k measured),
-- so claim on wake-ups and timers, never in a tight loop.
-- Not partial on the lease: expired leases must stay claimable by this query.
CREATE INDEX crm_jobs_claim_idx ON crm_jobs (priority DESC, due_at);
-- cancel (DELETE /communications/{id}), a receipt removing its no_receipt
-- timer, and the FK cascade
CREATE INDEX crm_jobs_communication_idx ON crm_jobs (communication_id)
    WHERE communication_id IS NOT NULL;
CREATE UNIQUE INDEX crm_jobs_dedup_idx ON crm_jobs (dedup_key)
    WHERE dedup_key IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Digests: exactly one per client per local date
-- ---------------------------------------------------------------------------

-- Whoever inserts the row builds the digest; everyone else gets a conflict:
--   INSERT ... ON CONFLICT (client_id, digest_date) DO NOTHING RETURNING id
-- digest_date is the client's local date. The row is written in the same
-- transaction as the digest message, so a crash cannot leave one without the other.
CREATE TABLE crm_digest_runs (
    id                bigserial   PRIMARY KEY,
    client_id         text        NOT NULL,
    digest_date       date        NOT NULL,
    -- the digest message; UNIQUE (one run, one message) also indexes the FK
    communication_id  uuid        UNIQUE REFERENCES crm_communications (id) ON DELETE SET NULL,
    message_count     integer     NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, digest_date)
);

-- ---------------------------------------------------------------------------
-- Idempotency keys
-- ---------------------------------------------------------------------------

-- Scoped to the caller: principal is the JWT `sub` (an API key's or an
-- operator token's subject), so no FK to crm_api_keys.
-- Same key + same request_hash -> replay response_*; different hash -> 422;
-- state in_progress -> 409 (an in_progress row far older than a request can
-- take belongs to a dead process and may be taken over).
CREATE TABLE crm_idempotency_keys (
    principal         text        NOT NULL,
    idempotency_key   text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash      text        NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    state             text        NOT NULL DEFAULT 'in_progress'
                                  CHECK (state IN ('in_progress', 'done')),
    response_status   smallint    CHECK (response_status BETWEEN 100 AND 599),
    -- text, not jsonb: replayed byte for byte (jsonb would reorder keys)
    response_body     text,
    -- no FK: the key lives 24 h and the message far longer, and an FK would
    -- make every message purge probe this table
    communication_id  uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (principal, idempotency_key),
    CHECK (state = 'in_progress' OR response_status IS NOT NULL)
);
-- purge: DELETE FROM crm_idempotency_keys WHERE expires_at < now()
CREATE INDEX crm_idempotency_keys_expires_idx ON crm_idempotency_keys (expires_at);

-- ---------------------------------------------------------------------------
-- Suppressions: addresses that must never be sent to on a channel
-- ---------------------------------------------------------------------------

-- Keyed by address, not by client: a bounce or complaint belongs to the
-- address whoever it is stored for. address_index is the blind index of
-- crm_client_preferences (same key, same normalisation).
CREATE TABLE crm_suppressions (
    id                bigserial   PRIMARY KEY,
    channel           text        NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    address_index     text        NOT NULL CHECK (address_index ~ '^[0-9a-f]{32,128}$'),
    reason            text        NOT NULL
                                  CHECK (reason IN ('unsubscribe', 'bounce', 'complaint',
                                                    'opt_out', 'invalid', 'manual')),
    source            text,       -- one_click, unsubscribe_page, webhook:twilio, api, cli ...
    -- the message that triggered it, if any; no FK so a suppression outlives
    -- message retention
    communication_id  uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- the pre-send check is this unique index; ON CONFLICT keeps the first reason
    UNIQUE (channel, address_index)
);

-- ---------------------------------------------------------------------------
-- Templates (metadata and source of what templates/ held, per version)
-- ---------------------------------------------------------------------------

-- For email, body is the text part (.txt) and body_html the HTML part (.html);
-- for sms / whatsapp only body is used.
CREATE TABLE crm_communication_templates (
    id            bigserial   PRIMARY KEY,
    name          text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
    channel       text        NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    version       integer     NOT NULL CHECK (version >= 1),
    checksum      text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),  -- SHA-256 of the source
    body          text,
    body_html     text,
    active        boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    UNIQUE (name, channel, version),
    CHECK (body IS NOT NULL OR body_html IS NOT NULL),
    CHECK (body_html IS NULL OR channel = 'email')
);
-- at most one active version per (name, channel); activating a version is
-- "deactivate the old, activate the new" in one transaction
CREATE UNIQUE INDEX crm_communication_templates_active_idx
    ON crm_communication_templates (name, channel) WHERE active;

-- ---------------------------------------------------------------------------
-- Audit log
-- ---------------------------------------------------------------------------

-- Append only, no FKs: an entry must outlive what it describes (an erased
-- client, a deleted key). id order is time order, so the primary key serves
-- "latest first"; no other index until a query needs one.
CREATE TABLE crm_audit_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,   -- JWT sub, "cli", "system"
    action   text        NOT NULL,   -- e.g. client.erase, apikey.create, apikey.revoke
    target   text,                   -- e.g. "client:<id>", "apikey:<name>"
    details  jsonb       NOT NULL DEFAULT '{}'
);
