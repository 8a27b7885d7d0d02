-- Analytics rollups: one row per UTC day, channel and message type, so
-- GET /api/crm/analytics reads a few thousand rows instead of scanning every
-- message (measured: 0.77 s to aggregate one million messages directly, with
-- the delivery-time percentiles). The engine recomputes a day's rows whole
-- (today and yesterday every minute, the last 35 days every hour; see
-- docs/architecture.md), so a row is exact as of computed_at.
--
-- channel is the channel in use ('' before a first attempt); failures are
-- by last_error_category; delivery_hist counts sent -> delivered times in
-- buckets of a quarter power of two, {"k": n}: bucket k holds the times t
-- (seconds) with floor(4 * log2(t + 1)) = k, so percentiles read from it
-- are within about 19 % (the API interpolates inside the bucket).
CREATE TABLE crm_analytics_daily (
    day            date        NOT NULL,
    channel        text        NOT NULL,
    message_type   text        NOT NULL,
    total          bigint      NOT NULL,
    by_status      jsonb       NOT NULL,  -- {"sent": n, "delivered": n, ...}
    reached        bigint      NOT NULL,  -- sent_at set: a provider took it
    delivered      bigint      NOT NULL,  -- delivered_at set
    opened         bigint      NOT NULL,
    clicked        bigint      NOT NULL,
    fallbacks      bigint      NOT NULL,  -- ended on a channel other than the primary
    failures       jsonb       NOT NULL,  -- {"transient": n, ...} of failed messages
    delivery_hist  jsonb       NOT NULL,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, channel, message_type)
);
