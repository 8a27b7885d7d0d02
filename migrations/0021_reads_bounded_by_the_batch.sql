-- The claim and the acceptance read what they handle, whatever the size of
-- the queue, the clients and the idempotency keys (issue 16).
--
-- crm_claim_jobs() (0019, 0020) is planned once per connection, with the
-- generic plan, on the tables as they are then; a queue is often empty then.
-- Two plans made that way read whole tables on every claim (auto_explain,
-- docs/benchmarks.md, "The claim that read the whole queue"):
--   - planned on a backlog of 5,000, where `LIMIT n` counts as a tenth of the
--     due jobs: the UPDATE of the leases hashed the whole job table (read
--     through crm_jobs_pkey) and the join with the preferences the whole
--     crm_client_preferences;
--   - planned on empty tables, where every table counts one row: nested
--     loops whose outer side was a full index scan of crm_jobs (16,055 rows
--     for 16 claimed) and of crm_communications (21,817).
-- A claim's cost then grew with the backlog and the number of clients, to
-- 17-25 ms a call and 2 ms of PostgreSQL per email in the maximum-rate runs
-- whose queue fell behind; and a queue that fell behind fell further behind.
--
-- Now no table is joined: each is read by its key with `= ANY(ARRAY(...))`
-- of the rows already found (the jobs of c, their messages, their clients),
-- which is an index condition in any plan, so each read is bounded by the
-- batch whatever the statistics said. What is joined are those few rows
-- (CTEs), by nested loops: hash and merge joins are disabled for the
-- function, like the sequential scan, the bitmap scan and the sort before
-- (the settings last for the call). Same rows, same order, same columns.
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
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS MATERIALIZED (
               SELECT t.id, t.lease_owner FROM crm_jobs t
               WHERE t.kind IN ('send', 'no_receipt', 'receipt', 'alert')
                 AND t.due_at <= now()
                 AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
               ORDER BY t.priority DESC, t.due_at
               LIMIT n FOR UPDATE OF t SKIP LOCKED),
    j AS MATERIALIZED (
          UPDATE crm_jobs u SET lease_owner = owner,
                                lease_expires_at = now() + make_interval(secs => lease_s)
          WHERE u.id = ANY (ARRAY(SELECT c.id FROM c))
          RETURNING u.id, u.communication_id, u.attempt, u.channel_index, u.payload, u.kind,
                    u.priority, u.due_at),
    m AS MATERIALIZED (
          SELECT x.* FROM crm_communications x
          WHERE x.id = ANY (ARRAY(SELECT j.communication_id FROM j))),
    p AS MATERIALIZED (
          SELECT y.client_id, y.updated_at FROM crm_client_preferences y
          WHERE y.client_id = ANY (ARRAY(SELECT m.client_id::text FROM m)))
    SELECT j.id, j.communication_id, j.attempt::smallint, j.channel_index::smallint,
           m.status::text, m.client_id::text, m.plan_id::text, m.message_type::text,
           m.urgency::text, m.context::text, m.recipient_enc,
           array_to_string(array_prepend(m.primary_channel, m.fallback_channels), ','),
           c.lease_owner IS NOT NULL, m.batch, (coalesce(m.payload, '{}') || j.payload)::text,
           j.payload ? 'resend', j.kind,
           -- the client's preferences version as of this claim (repo_prefs.c's
           -- ROW_VERSION): NULL when there is no row
           (extract(epoch FROM p.updated_at) * 1000000)::bigint, m.context_enc,
           m.strategy->>'experiment', m.strategy->>'variant', j.priority::smallint
    FROM j JOIN c ON c.id = j.id
    JOIN m ON m.id = j.communication_id
    LEFT JOIN p ON p.client_id = m.client_id::text
    -- the batch in claim order: the worker (and engine/pace.c, which gives
    -- a tight bucket's slots in array order) serves the most urgent first;
    -- a join does not keep the order of the rows it was given
    ORDER BY j.priority DESC, j.due_at, j.id;
END
$$;

-- The acceptance's batch insert completes the requests' idempotency keys in
-- the same statement, joined by (principal, idempotency_key). Its plan too
-- is generic (core/store/pg.h), made when the table may be empty; it reads the
-- table by `idempotency_key = ANY(...)` of the batch, which PostgreSQL 15
-- uses as an index condition only on an index's first column: with the key
-- second, a batch read every key of its principal (20,008 rows for 2 in
-- tests/c/test_claim.c; an API token makes up to a day of keys). The key
-- comes first now. The primary key's index is rebuilt (the table holds a
-- day of keys); every lookup names both columns.
ALTER TABLE crm_idempotency_keys DROP CONSTRAINT crm_idempotency_keys_pkey,
    ADD PRIMARY KEY (idempotency_key, principal);
