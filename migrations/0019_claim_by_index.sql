-- The claim walks the queue's index in its order (issue 16).
--
-- The workers' claim took the most urgent due jobs with
--   SELECT ... ORDER BY priority DESC, due_at LIMIT n FOR UPDATE SKIP LOCKED
-- and left the plan to the planner. crm_jobs is a queue: it is near empty when
-- autovacuum analyzes it, so the planner believes a handful of rows and reads
-- the whole table, then sorts it. With a backlog that is every due job, every
-- claim: 1.9 ms for 16 jobs out of 2,400 (EXPLAIN ANALYZE, docs/benchmarks.md),
-- against 0.09 ms through crm_jobs_claim_idx (priority DESC, due_at), which
-- gives the rows in the claim's order and stops after n. The cost of a seq
-- scan grows with the backlog, so a queue that fell behind fell further
-- behind: under maximum load the claim cost 3.3-3.6 ms a call, second only to
-- the outcome statement in PostgreSQL's time per email.
--
-- crm_claim_jobs() is the whole claim as it was: the jobs taken and leased,
-- with what the worker needs of each message, in claim order. It is planned
-- with the sequential scan, the bitmap scan and the sort disabled (for its
-- own statement only: the SET clauses below last for the call), so the jobs
-- are found by the ordered index scan and updated through the primary key
-- whatever the statistics say; the final ORDER BY still sorts the batch.
-- JIT is off for it too: a disabled plan node counts 10^10 in the planner's
-- cost, far over jit_above_cost, and compiling the statement took 250 ms a
-- call (test_claim_linger caught it). And its plan is the generic one, made
-- once per connection: left to choose, the plan cache may plan it again on any
-- call, since a known LIMIT n makes a custom plan look cheaper (the claim as a
-- prepared statement before this migration was planned again on 483 of 1,533
-- calls, 0.5 ms each).
-- The join with the messages is inside the function on purpose: a function's
-- statement takes its own snapshot, so a claim inside and the messages read
-- by a caller's statement could see different moments (a job leased whose
-- message, committed in between, the caller does not see: it would wait out
-- its lease unsent).
CREATE FUNCTION crm_claim_jobs(n int, owner text, lease_s int)
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
    SELECT j.id, j.communication_id, j.attempt, j.channel_index, m.status, m.client_id,
           m.plan_id, m.message_type, m.urgency, m.context::text, m.recipient_enc,
           array_to_string(array_prepend(m.primary_channel, m.fallback_channels), ','),
           j.recovered, m.batch, (coalesce(m.payload, '{}') || j.payload)::text,
           j.payload ? 'resend', j.kind,
           -- the client's preferences version as of this claim (repo_prefs.c's
           -- ROW_VERSION), read by the primary key: NULL when there is no row
           (extract(epoch FROM p.updated_at) * 1000000)::bigint, m.context_enc,
           m.strategy->>'experiment', m.strategy->>'variant', j.priority
    FROM j JOIN crm_communications m ON m.id = j.communication_id
    LEFT JOIN crm_client_preferences p ON p.client_id = m.client_id
    -- the batch in claim order: the worker (and engine/pace.c, which gives
    -- a tight bucket's slots in array order) serves the most urgent first;
    -- a join does not keep the order of the rows it was given
    ORDER BY j.priority DESC, j.due_at, j.id;
END
$$;
