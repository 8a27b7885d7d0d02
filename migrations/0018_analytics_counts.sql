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
-- One counter per (UTC day of created_at, channel in use or '', message type,
-- metric, key):
--   total     ''         every message
--   status    <status>   messages in that status now
--   reached   ''         sent_at set: a provider took it
--   delivered ''         delivered_at set
--   opened    ''         opened_at set
--   clicked   ''         clicked_at set
--   fallback  ''         ended on a channel other than its primary
--   failure   <category> failed messages by last_error_category ('unknown': none)
--   hist      <k>        sent -> delivered time t (seconds) with
--                        floor(4 * log2(t + 1)) = k (a quarter power of two)
CREATE TABLE crm_analytics_counts (
    day          date   NOT NULL,
    channel      text   NOT NULL,
    message_type text   NOT NULL,
    metric       text   NOT NULL CHECK (metric IN ('total', 'status', 'reached', 'delivered',
                                                    'opened', 'clicked', 'fallback', 'failure',
                                                    'hist')),
    key          text   NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (day, channel, message_type, metric, key)
);

-- Append-only between folds: no index, no key, so concurrent writers never
-- wait on each other here. The fold deletes what it read.
CREATE TABLE crm_analytics_delta (
    day          date   NOT NULL,
    channel      text   NOT NULL,
    message_type text   NOT NULL,
    metric       text   NOT NULL,
    key          text   NOT NULL,
    n            bigint NOT NULL
);

-- What one message counts for.
CREATE FUNCTION crm_analytics_facts(p_created timestamptz, p_channel text, p_primary text,
                                    p_type text, p_status text, p_sent timestamptz,
                                    p_delivered timestamptz, p_opened timestamptz,
                                    p_clicked timestamptz, p_category text)
RETURNS TABLE (day date, channel text, message_type text, metric text, key text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT (p_created AT TIME ZONE 'UTC')::date, coalesce(p_channel, ''), p_type, v.metric, v.key
    FROM (VALUES
        ('total', '', true),
        ('status', p_status, true),
        ('reached', '', p_sent IS NOT NULL),
        ('delivered', '', p_delivered IS NOT NULL),
        ('opened', '', p_opened IS NOT NULL),
        ('clicked', '', p_clicked IS NOT NULL),
        ('fallback', '', p_channel IS NOT NULL AND p_channel <> p_primary),
        ('failure', coalesce(p_category, 'unknown'), p_status = 'failed'),
        ('hist', floor(4 * ln(greatest(extract(epoch FROM p_delivered - p_sent)::float8, 0) + 1)
                       / ln(2))::int::text,
         p_delivered IS NOT NULL AND p_sent IS NOT NULL)) AS v(metric, key, counts)
    WHERE v.counts
$$;

CREATE FUNCTION crm_analytics_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_analytics_delta (day, channel, message_type, metric, key, n)
    SELECT f.day, f.channel, f.message_type, f.metric, f.key, count(*)
    FROM new_rows c,
         LATERAL crm_analytics_facts(c.created_at, c.channel, c.primary_channel, c.message_type,
                                     c.status, c.sent_at, c.delivered_at, c.opened_at,
                                     c.clicked_at, c.last_error_category) f
    GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END
$$;

-- Only rows whose counted columns changed are looked at; each adds its new
-- facts and takes back its old ones.
CREATE FUNCTION crm_analytics_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_analytics_delta (day, channel, message_type, metric, key, n)
    SELECT f.day, f.channel, f.message_type, f.metric, f.key, sum(f.n)
    FROM (SELECT o.*, c.created_at AS n_created, c.channel AS n_channel,
                 c.primary_channel AS n_primary, c.message_type AS n_type, c.status AS n_status,
                 c.sent_at AS n_sent, c.delivered_at AS n_delivered, c.opened_at AS n_opened,
                 c.clicked_at AS n_clicked, c.last_error_category AS n_category
          FROM old_rows o JOIN new_rows c ON c.id = o.id
          WHERE (o.created_at, o.channel, o.primary_channel, o.message_type, o.status, o.sent_at,
                 o.delivered_at, o.opened_at, o.clicked_at, o.last_error_category)
                IS DISTINCT FROM
                (c.created_at, c.channel, c.primary_channel, c.message_type, c.status, c.sent_at,
                 c.delivered_at, c.opened_at, c.clicked_at, c.last_error_category)) m,
         LATERAL (SELECT x.*, -1 AS n
                  FROM crm_analytics_facts(m.created_at, m.channel, m.primary_channel,
                                           m.message_type, m.status, m.sent_at, m.delivered_at,
                                           m.opened_at, m.clicked_at, m.last_error_category) x
                  UNION ALL
                  SELECT y.*, 1
                  FROM crm_analytics_facts(m.n_created, m.n_channel, m.n_primary, m.n_type,
                                           m.n_status, m.n_sent, m.n_delivered, m.n_opened,
                                           m.n_clicked, m.n_category) y) f
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(f.n) <> 0;
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
INSERT INTO crm_analytics_counts (day, channel, message_type, metric, key, n)
SELECT d.day, d.channel, d.message_type, m.metric, m.key, m.n
FROM crm_analytics_daily d,
     LATERAL (VALUES ('total', '', d.total), ('reached', '', d.reached),
                     ('delivered', '', d.delivered), ('opened', '', d.opened),
                     ('clicked', '', d.clicked), ('fallback', '', d.fallbacks)
              UNION ALL SELECT 'status', s.key, s.value::bigint FROM jsonb_each_text(d.by_status) s
              UNION ALL SELECT 'failure', f.key, f.value::bigint FROM jsonb_each_text(d.failures) f
              UNION ALL SELECT 'hist', h.key, h.value::bigint
                        FROM jsonb_each_text(d.delivery_hist) h) AS m(metric, key, n)
WHERE d.day < (now() AT TIME ZONE 'UTC')::date - 35 AND m.n <> 0;

INSERT INTO crm_analytics_counts (day, channel, message_type, metric, key, n)
SELECT f.day, f.channel, f.message_type, f.metric, f.key, count(*)
FROM crm_communications c,
     LATERAL crm_analytics_facts(c.created_at, c.channel, c.primary_channel, c.message_type,
                                 c.status, c.sent_at, c.delivered_at, c.opened_at, c.clicked_at,
                                 c.last_error_category) f
WHERE NOT EXISTS (SELECT 1 FROM crm_analytics_daily d
                  WHERE d.day = f.day AND d.day < (now() AT TIME ZONE 'UTC')::date - 35)
GROUP BY 1, 2, 3, 4, 5;

DROP TABLE crm_analytics_daily;
