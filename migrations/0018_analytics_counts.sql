-- Analytics as counters kept by the database itself (issue 16).
--
-- Until now the engine recomputed a day's rollup rows from its messages
-- (today and yesterday every minute, the last 35 days hourly). That read
-- every message of the day each time, so its cost grew with the day's
-- volume: 7 s per pass at 15 minutes of 1,000 messages/s, past the statement
-- timeout from 19 minutes on (docs/benchmarks.md, the 30-minute soak).
--
-- Now every statement that inserts or updates messages adds what it changed
-- to crm_analytics_delta, in the same transaction (statement-level triggers
-- with transition tables: one insert of a few grouped rows per statement,
-- whatever its number of messages). The engine folds the deltas into
-- crm_analytics_counts every engine.analytics_refresh_seconds; a read sums
-- both, so the analytics are exact as of the read, and a pass costs what
-- changed since the last one, not what the day holds.
--
-- Deleting a message (retention) does not subtract: the figures are history.
--
-- A counter per profile: messages of a UTC day (of created_at), channel in
-- use ('' before a first attempt) and message type that share
--   status      their status now
--   reached     sent_at set: a provider took it
--   delivered   delivered_at set
--   opened      opened_at set
--   clicked     clicked_at set
--   fallback    ended on a channel other than their primary
--   failure     last_error_category of a failed message ('unknown': none;
--               '' when not failed)
--   bucket      the sent -> delivered time t (seconds) as
--               floor(4 * log2(t + 1)), a quarter power of two (-1: none)
-- A message is one row of the delta on each change (-1 for its old profile,
-- +1 for its new one), so a trigger costs one short row per message.
-- Profiles per (day, channel, type) are a few dozen: the table stays small.
CREATE TABLE crm_analytics_counts (
    day          date     NOT NULL,
    channel      text     NOT NULL,
    message_type text     NOT NULL,
    status       text     NOT NULL,
    reached      boolean  NOT NULL,
    delivered    boolean  NOT NULL,
    opened       boolean  NOT NULL,
    clicked      boolean  NOT NULL,
    fallback     boolean  NOT NULL,
    failure      text     NOT NULL,
    bucket       smallint NOT NULL,
    n            bigint   NOT NULL,
    PRIMARY KEY (day, channel, message_type, status, reached, delivered, opened, clicked,
                 fallback, failure, bucket)
);

-- Append-only between folds: no index, no key, so concurrent writers never
-- wait on each other here. The fold deletes what it read.
CREATE TABLE crm_analytics_delta (
    day          date     NOT NULL,
    channel      text     NOT NULL,
    message_type text     NOT NULL,
    status       text     NOT NULL,
    reached      boolean  NOT NULL,
    delivered    boolean  NOT NULL,
    opened       boolean  NOT NULL,
    clicked      boolean  NOT NULL,
    fallback     boolean  NOT NULL,
    failure      text     NOT NULL,
    bucket       smallint NOT NULL,
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

-- Each updated row takes back its old profile and adds its new one; rows
-- whose profile did not change cancel out and write nothing.
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

-- The counters start from what exists. The triggers above already hold the
-- table against writers until this migration commits, so nothing is counted
-- twice or missed. Days older than the old 35-day window whose rollup rows
-- exist keep those rows (the old engine no longer recomputed them, and
-- retention may have deleted their messages); every other day is counted
-- from its messages.
--
-- A rollup row has totals per figure, not which messages shared them. It
-- becomes its statuses as profiles with no flags, and each other figure k
-- as a pair on one of its statuses: +k on the profile with that flag (or
-- failure, or bucket) and -k on the profile without. Every sum the reads
-- take (total, by status, by flag, by failure, by bucket) then gives the
-- row's figures back; a profile's own count may be negative.
INSERT INTO crm_analytics_counts
SELECT day, channel, message_type, status, reached, delivered, opened, clicked, fallback,
       failure, bucket, sum(n)
FROM (SELECT d.day, d.channel, d.message_type, s.key AS status, false AS reached,
             false AS delivered, false AS opened, false AS clicked, false AS fallback,
             '' AS failure, -1::smallint AS bucket, s.value::bigint AS n
      FROM crm_analytics_daily d, jsonb_each_text(d.by_status) s
      WHERE d.day < (now() AT TIME ZONE 'UTC')::date - 35
      UNION ALL
      SELECT d.day, d.channel, d.message_type, b.s0,
             g.sgn = 1 AND a.reached, g.sgn = 1 AND a.delivered, g.sgn = 1 AND a.opened,
             g.sgn = 1 AND a.clicked, g.sgn = 1 AND a.fallback,
             CASE WHEN g.sgn = 1 THEN a.failure ELSE '' END,
             CASE WHEN g.sgn = 1 THEN a.bucket ELSE -1 END, g.sgn * a.n
      FROM crm_analytics_daily d,
           LATERAL (SELECT min(k) AS s0 FROM jsonb_object_keys(d.by_status) k) b,
           LATERAL (VALUES (true, false, false, false, false, '', -1::smallint, d.reached),
                           (false, true, false, false, false, '', -1::smallint, d.delivered),
                           (false, false, true, false, false, '', -1::smallint, d.opened),
                           (false, false, false, true, false, '', -1::smallint, d.clicked),
                           (false, false, false, false, true, '', -1::smallint, d.fallbacks)
                    UNION ALL
                    SELECT false, false, false, false, false, f.key, -1::smallint,
                           f.value::bigint
                    FROM jsonb_each_text(d.failures) f
                    UNION ALL
                    SELECT false, false, false, false, false, '', h.key::smallint,
                           h.value::bigint
                    FROM jsonb_each_text(d.delivery_hist) h)
               AS a(reached, delivered, opened, clicked, fallback, failure, bucket, n),
           (VALUES (1), (-1)) AS g(sgn)
      WHERE d.day < (now() AT TIME ZONE 'UTC')::date - 35 AND b.s0 IS NOT NULL AND a.n <> 0) x
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
HAVING sum(n) <> 0;

INSERT INTO crm_analytics_counts
SELECT p.*, count(*)
FROM crm_communications c,
     LATERAL crm_analytics_profile(c.created_at, c.channel, c.primary_channel, c.message_type,
                                   c.status, c.sent_at, c.delivered_at, c.opened_at,
                                   c.clicked_at, c.last_error_category) p
WHERE NOT EXISTS (SELECT 1 FROM crm_analytics_daily d
                  WHERE d.day = p.day AND d.day < (now() AT TIME ZONE 'UTC')::date - 35)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11;

DROP TABLE crm_analytics_daily;
