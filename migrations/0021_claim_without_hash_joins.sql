-- The claim joins by key only: no hash or merge join (issue 16).
--
-- crm_claim_jobs() (0019, 0020) is planned once per connection with the
-- generic plan, which cannot see `LIMIT n` and counts a tenth of the due jobs
-- for it. With a backlog of 5,000 jobs that is 500 rows, and a hash join
-- looked cheaper than 500 probes of a primary key: the UPDATE of the leases
-- hashed the whole job table (read through crm_jobs_pkey, since sequential
-- scans are disabled for the function) and the join with the preferences the
-- whole crm_client_preferences, on every claim (auto_explain, docs/benchmarks.md).
-- A claim's cost then grew with the backlog and the number of clients: 25 ms
-- a call, 2 ms of PostgreSQL per email, in the maximum-rate runs whose queue
-- fell behind, and a queue that fell behind fell further behind.
--
-- A claim takes at most the worker's batch (tens of jobs); for that many rows
-- nested loops over the primary keys are right whatever the statistics say.
-- The function's statements are planned with hash and merge joins disabled,
-- like the sequential scan, the bitmap scan and the sort before them (the
-- settings last for the call). The body is unchanged.
ALTER FUNCTION crm_claim_jobs(int, text, int) SET enable_hashjoin = off;
ALTER FUNCTION crm_claim_jobs(int, text, int) SET enable_mergejoin = off;
