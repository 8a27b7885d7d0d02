-- The one-column checks of the send path's tables become domains (issue 16).
--
-- PostgreSQL prepares a table's CHECK constraints again for every statement
-- that writes the table: each constraint's stored expression is parsed from
-- its text (stringToNode) and simplified (eval_const_expressions) before the
-- first row is checked, and every constraint is checked on every row written,
-- whichever columns changed. crm_communications had 16 such constraints, 14 KB
-- of stored expression, crm_delivery_logs 7 (5 KB) and crm_jobs 6 (4 KB); the
-- send path writes these tables in small batches, one statement per batch.
-- Profiled under load (perf, docs/benchmarks.md), preparing them was 12 % of
-- the CPU of PostgreSQL's backends, more than the rows' own inserts.
--
-- A domain's constraints are parsed once per connection (the type cache keeps
-- them ready) and are checked only on the columns a statement assigns. The
-- rules are the same: a value that broke a column's CHECK breaks its domain's
-- (SQLSTATE 23514, check_violation, as before); NULL passes both.
--
-- The columns change type without a rewrite: each domain is created empty, so
-- the new column type is binary-compatible with text (or smallint, int,
-- jsonb), and no table is rewritten and no index rebuilt. Its constraint is
-- added after, NOT VALID: the stored rows were checked by the table
-- constraints this migration drops, in this transaction, and validating would
-- read each table once per domain while the ALTER TABLEs' locks are held (the
-- messages ten times). A NOT VALID constraint checks every value written from
-- now on, as VALID ones do. Measured on a database at 0019 with 20,000
-- messages: no read of the messages or the jobs; one of the attempt logs,
-- whose two-column check names two of the changed columns and is checked
-- again by PostgreSQL. The type change drops the columns' statistics, so
-- the three tables are analyzed at the end (a sample, not a read of all rows).
--
-- Upgrade: deploy the binary of this version first (its statements work on
-- the schema before and after), then run `herald migrate`. A process of the
-- previous version cannot prepare its acceptance insert on the new schema
-- (inconsistent types deduced for a parameter). Processes of this version
-- that run while it applies recover by themselves: a statement prepared
-- before it and whose result changes type (SQLSTATE 0A000, "cached plan must
-- not change result type") is prepared again on a new connection and run
-- once more (core/store/pg.c).
--
-- Constraints over more than one column stay table CHECKs, and so do three
-- one-column ones: fallback_channels' (an array of a domain would rewrite the
-- table), and the jobs' and the logs' kind (partial indexes name the column in
-- their predicates, and a change of its type would rebuild them).

CREATE DOMAIN crm_channel AS text;
CREATE DOMAIN crm_message_status AS text;
CREATE DOMAIN crm_urgency AS text;
CREATE DOMAIN crm_failure_category AS text;
CREATE DOMAIN crm_message_type AS text;
CREATE DOMAIN crm_ref AS text;            -- a plan or client id of the workflow
CREATE DOMAIN crm_priority AS smallint;
CREATE DOMAIN crm_count AS int;
CREATE DOMAIN crm_small_count AS smallint;
CREATE DOMAIN crm_attempt_no AS smallint;
CREATE DOMAIN crm_json_object AS jsonb;
CREATE DOMAIN crm_json_array AS jsonb;

ALTER TABLE crm_communications
    DROP CONSTRAINT crm_communications_attempt_count_check,
    DROP CONSTRAINT crm_communications_channel_check,
    DROP CONSTRAINT crm_communications_client_id_check,
    DROP CONSTRAINT crm_communications_context_check,
    DROP CONSTRAINT crm_communications_last_error_category_check,
    DROP CONSTRAINT crm_communications_message_type_check,
    DROP CONSTRAINT crm_communications_payload_check,
    DROP CONSTRAINT crm_communications_plan_id_check,
    DROP CONSTRAINT crm_communications_primary_channel_check,
    DROP CONSTRAINT crm_communications_priority_check,
    DROP CONSTRAINT crm_communications_status_check,
    DROP CONSTRAINT crm_communications_strategy_check,
    DROP CONSTRAINT crm_communications_tracked_links_check,
    DROP CONSTRAINT crm_communications_urgency_check,
    ALTER COLUMN attempt_count TYPE crm_count,
    ALTER COLUMN channel TYPE crm_channel,
    ALTER COLUMN client_id TYPE crm_ref,
    ALTER COLUMN context TYPE crm_json_object,
    ALTER COLUMN last_error_category TYPE crm_failure_category,
    ALTER COLUMN message_type TYPE crm_message_type,
    ALTER COLUMN payload TYPE crm_json_object,
    ALTER COLUMN plan_id TYPE crm_ref,
    ALTER COLUMN primary_channel TYPE crm_channel,
    ALTER COLUMN priority TYPE crm_priority,
    ALTER COLUMN status TYPE crm_message_status,
    ALTER COLUMN strategy TYPE crm_json_object,
    ALTER COLUMN tracked_links TYPE crm_json_array,
    ALTER COLUMN urgency TYPE crm_urgency;

ALTER TABLE crm_jobs
    DROP CONSTRAINT crm_jobs_attempt_check,
    DROP CONSTRAINT crm_jobs_channel_index_check,
    DROP CONSTRAINT crm_jobs_priority_check,
    ALTER COLUMN attempt TYPE crm_small_count,
    ALTER COLUMN channel_index TYPE crm_small_count,
    ALTER COLUMN priority TYPE crm_priority;

ALTER TABLE crm_delivery_logs
    DROP CONSTRAINT crm_delivery_logs_attempt_check,
    DROP CONSTRAINT crm_delivery_logs_category_check,
    DROP CONSTRAINT crm_delivery_logs_channel_check,
    DROP CONSTRAINT crm_delivery_logs_latency_ms_check,
    ALTER COLUMN attempt TYPE crm_attempt_no,
    ALTER COLUMN category TYPE crm_failure_category,
    ALTER COLUMN channel TYPE crm_channel,
    ALTER COLUMN latency_ms TYPE crm_count;

ALTER DOMAIN crm_channel ADD CONSTRAINT crm_channel_check
    CHECK (VALUE IN ('email', 'sms', 'whatsapp')) NOT VALID;
ALTER DOMAIN crm_message_status ADD CONSTRAINT crm_message_status_check
    CHECK (VALUE IN ('scheduled', 'queued', 'sending', 'sent', 'delivered', 'opened', 'clicked',
                     'failed', 'cancelled', 'suppressed')) NOT VALID;
ALTER DOMAIN crm_urgency ADD CONSTRAINT crm_urgency_check
    CHECK (VALUE IN ('low', 'normal', 'high', 'critical')) NOT VALID;
ALTER DOMAIN crm_failure_category ADD CONSTRAINT crm_failure_category_check
    CHECK (VALUE IN ('transient', 'permanent', 'rate_limit', 'auth_failure', 'invalid')) NOT VALID;
ALTER DOMAIN crm_message_type ADD CONSTRAINT crm_message_type_check
    CHECK (VALUE ~ '^[a-z][a-z0-9_]{0,63}$') NOT VALID;
ALTER DOMAIN crm_ref ADD CONSTRAINT crm_ref_check
    CHECK (length(VALUE) BETWEEN 1 AND 200) NOT VALID;
ALTER DOMAIN crm_priority ADD CONSTRAINT crm_priority_check
    CHECK (VALUE BETWEEN 0 AND 100) NOT VALID;
ALTER DOMAIN crm_count ADD CONSTRAINT crm_count_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN crm_small_count ADD CONSTRAINT crm_small_count_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN crm_attempt_no ADD CONSTRAINT crm_attempt_no_check CHECK (VALUE >= 1) NOT VALID;
ALTER DOMAIN crm_json_object ADD CONSTRAINT crm_json_object_check
    CHECK (jsonb_typeof(VALUE) = 'object') NOT VALID;
ALTER DOMAIN crm_json_array ADD CONSTRAINT crm_json_array_check
    CHECK (jsonb_typeof(VALUE) = 'array') NOT VALID;

-- crm_claim_jobs() (0019) as it was, its columns of the new domains cast to
-- the base types it returns: RETURN QUERY wants the declared types exactly.
CREATE OR REPLACE FUNCTION crm_claim_jobs(n int, owner text, lease_s int)
RETURNS TABLE (job_id bigint, communication_id uuid, attempt smallint, channel_index smallint,
               status text, client_id text, plan_id text, message_type text, urgency text,
               context text, recipient_enc text, channels text, recovered boolean,
               batch boolean, payload text, resend boolean, kind text, prefs_version bigint,
               context_enc text, experiment text, variant text, priority smallint)
LANGUAGE plpgsql VOLATILE ROWS 16
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (SELECT t.id, t.lease_owner FROM crm_jobs t
               WHERE t.kind IN ('send', 'no_receipt', 'receipt', 'alert')
                 AND t.due_at <= now()
                 AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
               ORDER BY t.priority DESC, t.due_at
               LIMIT n FOR UPDATE OF t SKIP LOCKED),
    j AS (UPDATE crm_jobs u SET lease_owner = owner,
                                lease_expires_at = now() + make_interval(secs => lease_s)
          FROM c WHERE u.id = c.id
          RETURNING u.id, u.communication_id, u.attempt, u.channel_index,
                    c.lease_owner IS NOT NULL AS recovered, u.payload, u.kind, u.priority,
                    u.due_at)
    SELECT j.id, j.communication_id, j.attempt::smallint, j.channel_index::smallint,
           m.status::text, m.client_id::text, m.plan_id::text, m.message_type::text,
           m.urgency::text, m.context::text, m.recipient_enc,
           array_to_string(array_prepend(m.primary_channel, m.fallback_channels), ','),
           j.recovered, m.batch, (coalesce(m.payload, '{}') || j.payload)::text,
           j.payload ? 'resend', j.kind,
           -- the client's preferences version as of this claim (repo_prefs.c's
           -- ROW_VERSION), read by the primary key: NULL when there is no row
           (extract(epoch FROM p.updated_at) * 1000000)::bigint, m.context_enc,
           m.strategy->>'experiment', m.strategy->>'variant', j.priority::smallint
    FROM j JOIN crm_communications m ON m.id = j.communication_id
    LEFT JOIN crm_client_preferences p ON p.client_id = m.client_id
    -- the batch in claim order: the worker (and engine/pace.c, which gives
    -- a tight bucket's slots in array order) serves the most urgent first;
    -- a join does not keep the order of the rows it was given
    ORDER BY j.priority DESC, j.due_at, j.id;
END
$$;

ANALYZE crm_communications, crm_jobs, crm_delivery_logs;
