-- Analytics as counters kept by the database itself (issue 16).
--
-- Until now the engine recomputed a day's rows of crm_analytics_daily from its
-- messages (today and yesterday every minute, the last 35 days hourly). That
-- read every message of the day each time, so its cost grew with the day's
-- volume: 7 s per pass at 15 minutes of 1,000 messages/s, past the statement
-- timeout from 19 minutes on (docs/benchmarks.md, the 30-minute soak).
--
-- Now every statement that inserts or updates messages writes what it changed
-- to crm_analytics_delta, in the same transaction: statement-level triggers
-- with transition tables, one grouped insert per statement whatever its
-- number of messages. A delta row is a *profile* (the messages of a UTC day,
-- channel in use and type that share a status, flags, failure category and
-- delivery-time bucket) and a signed count: an updated message takes back
-- its old profile and adds its new one. The engine folds the deltas into
-- crm_analytics_daily (kept: one row per day, channel and type, as before)
-- every engine.analytics_refresh_seconds; the API reads the rows plus the
-- deltas not folded yet (crm_analytics_pending()), so its figures are exact as
-- of the read, and a fold costs what changed since the last one.
--
-- Deleting a message (retention) does not subtract: the figures are history.
-- computed_at is now when the row last took a fold.

-- Append-only between folds: no index, no key, so concurrent writers never
-- wait on each other here. The fold deletes what it read.
CREATE TABLE crm_analytics_delta (
    day          date     NOT NULL,   -- UTC day of created_at
    channel      text     NOT NULL,   -- in use; '' before a first attempt
    message_type text     NOT NULL,
    status       text     NOT NULL,
    reached      boolean  NOT NULL,   -- sent_at set: a provider took it
    delivered    boolean  NOT NULL,
    opened       boolean  NOT NULL,
    clicked      boolean  NOT NULL,
    fallback     boolean  NOT NULL,   -- on a channel other than its primary
    failure      text     NOT NULL,   -- category of a failed message ('unknown'); '' if not failed
    bucket       smallint NOT NULL,   -- floor(4 * log2(t + 1)), t = sent -> delivered s; -1: none
    n            bigint   NOT NULL
);

-- A message's profile (inlined by the planner where it is used).
CREATE FUNCTION crm_analytics_profile(p_created timestamptz, p_channel text, p_primary text,
                                      p_type text, p_status text, p_sent timestamptz,
                                      p_delivered timestamptz, p_opened timestamptz,
                                      p_clicked timestamptz, p_category text)
RETURNS TABLE (day date, channel text, message_type text, status text, reached boolean,
               delivered boolean, opened boolean, clicked boolean, fallback boolean,
               failure text, bucket smallint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT (p_created AT TIME ZONE 'UTC')::date, coalesce(p_channel, ''), p_type, p_status,
           p_sent IS NOT NULL, p_delivered IS NOT NULL, p_opened IS NOT NULL,
           p_clicked IS NOT NULL, coalesce(p_channel <> p_primary, false),
           CASE WHEN p_status = 'failed' THEN coalesce(p_category, 'unknown') ELSE '' END,
           CASE WHEN p_delivered IS NOT NULL AND p_sent IS NOT NULL THEN
               floor(4 * ln(greatest(extract(epoch FROM p_delivered - p_sent)::float8, 0) + 1)
                     / ln(2))::smallint
           ELSE -1 END
$$;

CREATE FUNCTION crm_analytics_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_analytics_delta
    SELECT p.*, count(*)
    FROM new_rows c,
         LATERAL crm_analytics_profile(c.created_at, c.channel, c.primary_channel,
                                       c.message_type, c.status, c.sent_at, c.delivered_at,
                                       c.opened_at, c.clicked_at, c.last_error_category) p
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11;
    RETURN NULL;
END
$$;

-- Rows whose profile did not change cancel out and write nothing.
CREATE FUNCTION crm_analytics_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_analytics_delta
    SELECT p.day, p.channel, p.message_type, p.status, p.reached, p.delivered, p.opened,
           p.clicked, p.fallback, p.failure, p.bucket, sum(p.n)
    FROM (SELECT x.*, -1 AS n
          FROM old_rows o,
               LATERAL crm_analytics_profile(o.created_at, o.channel, o.primary_channel,
                                             o.message_type, o.status, o.sent_at,
                                             o.delivered_at, o.opened_at, o.clicked_at,
                                             o.last_error_category) x
          UNION ALL
          SELECT y.*, 1
          FROM new_rows c,
               LATERAL crm_analytics_profile(c.created_at, c.channel, c.primary_channel,
                                             c.message_type, c.status, c.sent_at,
                                             c.delivered_at, c.opened_at, c.clicked_at,
                                             c.last_error_category) y) p
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
    HAVING sum(p.n) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER crm_analytics_count_insert AFTER INSERT ON crm_communications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_analytics_count_insert();
CREATE TRIGGER crm_analytics_count_update AFTER UPDATE ON crm_communications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_analytics_count_update();

-- {"k": n} + {"k": m}, without the keys that sum to zero.
CREATE FUNCTION crm_jsonb_add(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, v), '{}')
    FROM (SELECT k, sum(v) AS v
          FROM (SELECT key AS k, value::numeric AS v FROM jsonb_each_text(a)
                UNION ALL
                SELECT key, value::numeric FROM jsonb_each_text(b)) x
          GROUP BY k HAVING sum(v) <> 0) y
$$;

-- The deltas of the days first..last not folded yet, in the shape of
-- crm_analytics_daily (counts may be negative: a move between statuses, a
-- channel left behind).
CREATE FUNCTION crm_analytics_pending(first date, last date)
RETURNS TABLE (day date, channel text, message_type text, total numeric, by_status jsonb,
               reached numeric, delivered numeric, opened numeric, clicked numeric,
               fallbacks numeric, failures jsonb, delivery_hist jsonb)
LANGUAGE sql STABLE AS $$
WITH p AS (SELECT d.day, d.channel, d.message_type, d.status, d.reached, d.delivered, d.opened,
                  d.clicked, d.fallback, d.failure, d.bucket, sum(d.n) AS n
           FROM crm_analytics_delta d WHERE d.day BETWEEN first AND last
           GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 HAVING sum(d.n) <> 0),
t AS (SELECT p.day, p.channel, p.message_type, sum(p.n) AS total,
             coalesce(sum(p.n) FILTER (WHERE p.reached), 0) AS reached,
             coalesce(sum(p.n) FILTER (WHERE p.delivered), 0) AS delivered,
             coalesce(sum(p.n) FILTER (WHERE p.opened), 0) AS opened,
             coalesce(sum(p.n) FILTER (WHERE p.clicked), 0) AS clicked,
             coalesce(sum(p.n) FILTER (WHERE p.fallback), 0) AS fallbacks
      FROM p GROUP BY 1, 2, 3),
s AS (SELECT x.day, x.channel, x.message_type, jsonb_object_agg(x.status, x.n) AS j
      FROM (SELECT p.day, p.channel, p.message_type, p.status, sum(p.n) AS n FROM p
            GROUP BY 1, 2, 3, 4 HAVING sum(p.n) <> 0) x GROUP BY 1, 2, 3),
f AS (SELECT x.day, x.channel, x.message_type, jsonb_object_agg(x.failure, x.n) AS j
      FROM (SELECT p.day, p.channel, p.message_type, p.failure, sum(p.n) AS n FROM p
            WHERE p.failure <> '' GROUP BY 1, 2, 3, 4 HAVING sum(p.n) <> 0) x
      GROUP BY 1, 2, 3),
h AS (SELECT x.day, x.channel, x.message_type, jsonb_object_agg(x.bucket, x.n) AS j
      FROM (SELECT p.day, p.channel, p.message_type, p.bucket, sum(p.n) AS n FROM p
            WHERE p.bucket >= 0 GROUP BY 1, 2, 3, 4 HAVING sum(p.n) <> 0) x
      GROUP BY 1, 2, 3)
SELECT t.day, t.channel, t.message_type, t.total, coalesce(s.j, '{}'), t.reached, t.delivered,
       t.opened, t.clicked, t.fallbacks, coalesce(f.j, '{}'), coalesce(h.j, '{}')
FROM t LEFT JOIN s USING (day, channel, message_type)
       LEFT JOIN f USING (day, channel, message_type)
       LEFT JOIN h USING (day, channel, message_type)
$$;

-- The rows start from what exists. The triggers above already hold the
-- table against writers until this migration commits, so nothing is counted
-- twice or missed. Days older than the old 35-day window that have rows keep
-- them (the old engine no longer recomputed them, and retention may have
-- deleted their messages); every other day is counted from its messages.
DELETE FROM crm_analytics_daily WHERE day >= (now() AT TIME ZONE 'UTC')::date - 35;
INSERT INTO crm_analytics_delta
SELECT p.*, count(*)
FROM crm_communications c,
     LATERAL crm_analytics_profile(c.created_at, c.channel, c.primary_channel, c.message_type,
                                   c.status, c.sent_at, c.delivered_at, c.opened_at,
                                   c.clicked_at, c.last_error_category) p
WHERE NOT EXISTS (SELECT 1 FROM crm_analytics_daily d WHERE d.day = p.day)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11;
INSERT INTO crm_analytics_daily (day, channel, message_type, total, by_status, reached,
                                 delivered, opened, clicked, fallbacks, failures, delivery_hist)
SELECT day, channel, message_type, total, by_status, reached, delivered, opened, clicked,
       fallbacks, failures, delivery_hist
FROM crm_analytics_pending('-infinity', 'infinity');
DELETE FROM crm_analytics_delta;
