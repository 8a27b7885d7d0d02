-- The analytics (crm_analytics_daily plus the deltas not folded yet) against
-- a recount of the messages written independently of the triggers'
-- profiles (migrations/0018_analytics_counts.sql): the (day, channel, type)
-- groups that differ, as "group: counted | recounted", at most 20; no rows
-- when exact. Only meaningful on a database whose messages were never
-- deleted (retention does not subtract) and that never held rows the old
-- engine froze. Used by tests/integration/harness.py and tools/bench/soak.sh.
WITH a AS (
  SELECT day, channel, message_type,
         coalesce(c.total, 0) + coalesce(p.total, 0) AS total,
         coalesce(c.reached, 0) + coalesce(p.reached, 0) AS reached,
         coalesce(c.delivered, 0) + coalesce(p.delivered, 0) AS delivered,
         coalesce(c.opened, 0) + coalesce(p.opened, 0) AS opened,
         coalesce(c.clicked, 0) + coalesce(p.clicked, 0) AS clicked,
         coalesce(c.fallbacks, 0) + coalesce(p.fallbacks, 0) AS fallbacks,
         crm_jsonb_add(coalesce(c.by_status, '{}'), coalesce(p.by_status, '{}')) AS by_status,
         crm_jsonb_add(coalesce(c.failures, '{}'), coalesce(p.failures, '{}')) AS failures,
         crm_jsonb_add(coalesce(c.delivery_hist, '{}'), coalesce(p.delivery_hist, '{}')) AS hist
  FROM crm_analytics_daily c
       FULL JOIN crm_analytics_pending('-infinity', 'infinity') p
       USING (day, channel, message_type)),
m AS (
  SELECT (created_at AT TIME ZONE 'UTC')::date AS day, coalesce(channel, '') AS channel,
         message_type, status, sent_at IS NOT NULL AS reached, delivered_at IS NOT NULL AS dl,
         opened_at IS NOT NULL AS op, clicked_at IS NOT NULL AS cl,
         channel IS NOT NULL AND channel <> primary_channel AS fb,
         CASE WHEN status = 'failed' THEN coalesce(last_error_category, 'unknown') END AS cat,
         CASE WHEN delivered_at IS NOT NULL AND sent_at IS NOT NULL THEN
           floor(4 * ln(greatest(extract(epoch FROM delivered_at - sent_at)::float8, 0) + 1)
                 / ln(2))::int END AS bucket
  FROM crm_communications),
b AS (
  SELECT t.*, s.j AS by_status, coalesce(f.j, '{}') AS failures, coalesce(h.j, '{}') AS hist
  FROM (SELECT day, channel, message_type, count(*) AS total,
               count(*) FILTER (WHERE reached) AS reached, count(*) FILTER (WHERE dl) AS delivered,
               count(*) FILTER (WHERE op) AS opened, count(*) FILTER (WHERE cl) AS clicked,
               count(*) FILTER (WHERE fb) AS fallbacks
        FROM m GROUP BY 1, 2, 3) t
  JOIN (SELECT day, channel, message_type, jsonb_object_agg(status, n) AS j
        FROM (SELECT day, channel, message_type, status, count(*) AS n FROM m
              GROUP BY 1, 2, 3, 4) x GROUP BY 1, 2, 3) s USING (day, channel, message_type)
  LEFT JOIN (SELECT day, channel, message_type, jsonb_object_agg(cat, n) AS j
             FROM (SELECT day, channel, message_type, cat, count(*) AS n FROM m
                   WHERE cat IS NOT NULL GROUP BY 1, 2, 3, 4) x GROUP BY 1, 2, 3) f
       USING (day, channel, message_type)
  LEFT JOIN (SELECT day, channel, message_type, jsonb_object_agg(bucket, n) AS j
             FROM (SELECT day, channel, message_type, bucket, count(*) AS n FROM m
                   WHERE bucket IS NOT NULL GROUP BY 1, 2, 3, 4) x GROUP BY 1, 2, 3) h
       USING (day, channel, message_type))
SELECT concat_ws(' ', day, channel, message_type) || ': ' ||
       coalesce(row(a.total, a.reached, a.delivered, a.opened, a.clicked, a.fallbacks,
                    a.by_status, a.failures, a.hist)::text, '-') || ' | ' ||
       coalesce(row(b.total, b.reached, b.delivered, b.opened, b.clicked, b.fallbacks,
                    b.by_status, b.failures, b.hist)::text, '-')
FROM (SELECT * FROM a WHERE total <> 0) a FULL JOIN b USING (day, channel, message_type)
WHERE row(a.total, a.reached, a.delivered, a.opened, a.clicked, a.fallbacks, a.by_status,
          a.failures, a.hist)
      IS DISTINCT FROM
      row(b.total, b.reached, b.delivered, b.opened, b.clicked, b.fallbacks, b.by_status,
          b.failures, b.hist)
LIMIT 20;
