-- The analytics counters (and the deltas not folded yet) against a recount
-- of the messages (migrations/0018_analytics_counts.sql): the profiles that
-- differ, as "profile counted/recounted", at most 20; no rows when exact.
-- Only meaningful on a database whose messages were never deleted
-- (retention does not subtract) and that never held the old rollups.
-- Used by tests/integration/harness.py and tools/bench/soak.sh.
WITH a AS (SELECT day, channel, message_type, status, reached, delivered, opened, clicked,
                  fallback, failure, bucket, sum(n)::bigint AS n FROM (
             SELECT * FROM crm_analytics_counts UNION ALL SELECT * FROM crm_analytics_delta) x
           GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 HAVING sum(n) <> 0),
     b AS (SELECT p.*, count(*)::bigint AS n
           FROM crm_communications c,
                LATERAL crm_analytics_profile(c.created_at, c.channel, c.primary_channel,
                                              c.message_type, c.status, c.sent_at,
                                              c.delivered_at, c.opened_at, c.clicked_at,
                                              c.last_error_category) p
           GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
SELECT concat_ws(' ', day, channel, message_type, status, reached, delivered, opened, clicked,
                 fallback, failure, bucket, coalesce(a.n, 0) || '/' || coalesce(b.n, 0))
FROM a FULL JOIN b USING (day, channel, message_type, status, reached, delivered, opened,
                          clicked, fallback, failure, bucket)
WHERE a.n IS DISTINCT FROM b.n LIMIT 20;
