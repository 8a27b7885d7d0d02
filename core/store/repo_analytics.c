/* repo_analytics.c - see repo_analytics.h. */
#include "store/repo_analytics.h"

#include <stdlib.h>
#include <string.h>

/* One process at a time recomputes (the lock is per transaction). */
static const pg_stmt_t st_lock = {
    "analytics_lock", "SELECT pg_try_advisory_xact_lock(hashtext('herald.analytics'))", 0};

static const pg_stmt_t st_clear = {
    "analytics_clear", "DELETE FROM crm_analytics_daily WHERE day BETWEEN $1::date AND $2::date",
    2};

static const pg_stmt_t st_fill = {
    "analytics_fill",
    "WITH base AS MATERIALIZED (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, "
    "coalesce(channel, '') AS ch, message_type AS mt, status, sent_at IS NOT NULL AS reached, "
    "delivered_at IS NOT NULL AS dl, opened_at IS NOT NULL AS op, clicked_at IS NOT NULL AS cl, "
    "channel IS NOT NULL AND channel <> primary_channel AS fb, "
    "CASE WHEN status = 'failed' THEN coalesce(last_error_category, 'unknown') END AS cat, "
    "CASE WHEN delivered_at IS NOT NULL AND sent_at IS NOT NULL THEN "
    "floor(4 * ln(greatest(extract(epoch FROM delivered_at - sent_at)::float8, 0) + 1) / "
    "ln(2))::int END AS bucket "
    "FROM crm_communications WHERE created_at >= ($1::date)::timestamp AT TIME ZONE 'UTC' "
    "AND created_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'), "
    "t AS (SELECT day, ch, mt, count(*) AS total, count(*) FILTER (WHERE reached) AS reached, "
    "count(*) FILTER (WHERE dl) AS delivered, count(*) FILTER (WHERE op) AS opened, "
    "count(*) FILTER (WHERE cl) AS clicked, count(*) FILTER (WHERE fb) AS fallbacks "
    "FROM base GROUP BY 1, 2, 3), "
    "s AS (SELECT day, ch, mt, jsonb_object_agg(status, n) AS j FROM (SELECT day, ch, mt, "
    "status, count(*) AS n FROM base GROUP BY 1, 2, 3, 4) x GROUP BY 1, 2, 3), "
    "f AS (SELECT day, ch, mt, jsonb_object_agg(cat, n) AS j FROM (SELECT day, ch, mt, cat, "
    "count(*) AS n FROM base WHERE cat IS NOT NULL GROUP BY 1, 2, 3, 4) x GROUP BY 1, 2, 3), "
    "h AS (SELECT day, ch, mt, jsonb_object_agg(bucket, n) AS j FROM (SELECT day, ch, mt, "
    "bucket, count(*) AS n FROM base WHERE bucket IS NOT NULL GROUP BY 1, 2, 3, 4) x "
    "GROUP BY 1, 2, 3) "
    "INSERT INTO crm_analytics_daily (day, channel, message_type, total, by_status, reached, "
    "delivered, opened, clicked, fallbacks, failures, delivery_hist) "
    "SELECT t.day, t.ch, t.mt, t.total, s.j, t.reached, t.delivered, t.opened, t.clicked, "
    "t.fallbacks, coalesce(f.j, '{}'), coalesce(h.j, '{}') FROM t JOIN s USING (day, ch, mt) "
    "LEFT JOIN f USING (day, ch, mt) LEFT JOIN h USING (day, ch, mt)",
    2};

int analytics_refresh(pg_pool_t *db, const char *first, const char *last, bool *skipped,
                      hd_err_t *err)
{
    *skipped = false;
    const char *p[] = {first, last};
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = 0;
    PGresult *r = pg_exec(c, &st_lock, NULL, err);
    if (r == NULL)
        rc = -1;
    else if (PQgetvalue(r, 0, 0)[0] != 't')
        *skipped = true;
    PQclear(r);
    if (rc == 0 && !*skipped) {
        PGresult *a = pg_exec(c, &st_clear, p, err);
        PGresult *b = a ? pg_exec(c, &st_fill, p, err) : NULL;
        rc = a && b ? 0 : -1;
        PQclear(a);
        PQclear(b);
    }
    if (rc == 0 && *skipped)
        rc = 1; /* another process holds the lock: nothing to commit */
    rc = pg_tx_end(db, c, rc, err);
    return rc == 1 ? 0 : rc;
}

static const pg_stmt_t st_rows = {
    "analytics_rows",
    "SELECT to_char(day, 'YYYY-MM-DD'), channel, message_type, total, reached, delivered, "
    "opened, clicked, fallbacks, by_status::text, failures::text, delivery_hist::text, "
    "to_char(computed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM crm_analytics_daily WHERE day BETWEEN $1::date AND $2::date ORDER BY day",
    2};

cJSON *analytics_rows(pg_pool_t *db, const char *first, const char *last, hd_err_t *err)
{
    const char *p[] = {first, last};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return NULL;
    PGresult *r = pg_exec(c, &st_rows, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return NULL;
    static const char *const names[] = {
        "day",     "channel",   "message_type", "total",    "reached",       "delivered",  "opened",
        "clicked", "fallbacks", "by_status",    "failures", "delivery_hist", "computed_at"};
    cJSON *rows = cJSON_CreateArray();
    for (int i = 0; i < PQntuples(r); i++) {
        cJSON *o = cJSON_CreateObject();
        for (int k = 0; k < 13; k++) {
            const char *v = PQgetvalue(r, i, k);
            if (k >= 3 && k <= 8)
                cJSON_AddNumberToObject(o, names[k], strtod(v, NULL));
            else if (k >= 9 && k <= 11) {
                cJSON *j = cJSON_Parse(v);
                cJSON_AddItemToObject(o, names[k], j ? j : cJSON_CreateObject());
            } else
                cJSON_AddStringToObject(o, names[k], v);
        }
        cJSON_AddItemToArray(rows, o);
    }
    PQclear(r);
    return rows;
}

static const pg_stmt_t st_oldest = {
    "analytics_oldest",
    "SELECT floor(extract(epoch FROM min(created_at)) / 86400)::bigint FROM crm_communications", 0};

long analytics_oldest_day(pg_pool_t *db, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_oldest, NULL, err);
    pg_pool_put(db, c);
    long d = r && !PQgetisnull(r, 0, 0) ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return d;
}

/* How many days of first..last have messages and no rollup row: one index
 * probe per day on each side. */
static const pg_stmt_t st_has = {
    "analytics_missing",
    "SELECT count(*) FROM generate_series($1::date::timestamp, $2::date::timestamp, "
    "interval '1 day') AS g(d) "
    "WHERE NOT EXISTS (SELECT 1 FROM crm_analytics_daily WHERE day = g.d::date) "
    "AND EXISTS (SELECT 1 FROM crm_communications WHERE created_at >= g.d AT TIME ZONE 'UTC' "
    "AND created_at < (g.d + interval '1 day') AT TIME ZONE 'UTC')",
    2};

int analytics_has_rows(pg_pool_t *db, const char *first, const char *last, bool *has, hd_err_t *err)
{
    const char *p[] = {first, last};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_has, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    *has = atol(PQgetvalue(r, 0, 0)) == 0; /* every day with messages has its rows */
    PQclear(r);
    return 0;
}

static const pg_stmt_t st_open_rates = {
    "analytics_open_rates",
    "SELECT channel, sum(opened)::float8 / nullif(sum(delivered), 0) FROM crm_analytics_daily "
    "WHERE day > (now() AT TIME ZONE 'UTC')::date - 30 AND channel IN ('email', 'sms', 'whatsapp') "
    "GROUP BY channel",
    0};

int analytics_open_rates(pg_pool_t *db, double out[3], hd_err_t *err)
{
    static const char *const names[] = {"email", "sms", "whatsapp"};
    for (int i = 0; i < 3; i++)
        out[i] = -1;
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_open_rates, NULL, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    for (int k = 0; k < PQntuples(r); k++)
        for (int i = 0; i < 3; i++)
            if (strcmp(PQgetvalue(r, k, 0), names[i]) == 0 && !PQgetisnull(r, k, 1))
                out[i] = strtod(PQgetvalue(r, k, 1), NULL);
    PQclear(r);
    return 0;
}

static const pg_stmt_t st_variants = {
    "analytics_variants",
    "SELECT coalesce(jsonb_agg(x ORDER BY x.experiment, x.variant), '[]')::text FROM ("
    "SELECT coalesce(strategy->>'experiment', '') AS experiment, "
    "coalesce(strategy->>'variant', '') AS variant, count(*) AS total, "
    "count(*) FILTER (WHERE sent_at IS NOT NULL) AS reached, "
    "count(*) FILTER (WHERE delivered_at IS NOT NULL OR opened_at IS NOT NULL "
    "OR clicked_at IS NOT NULL) AS delivered, "
    "count(*) FILTER (WHERE opened_at IS NOT NULL OR clicked_at IS NOT NULL) AS opened, "
    "count(*) FILTER (WHERE clicked_at IS NOT NULL) AS clicked "
    "FROM crm_communications WHERE message_type = $1 AND created_at >= $2::date "
    "AND created_at < $3::date + 1 GROUP BY 1, 2) x",
    3};

cJSON *analytics_variants(pg_pool_t *db, const char *message_type, const char *first,
                          const char *last, hd_err_t *err)
{
    const char *p[] = {message_type, first, last};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return NULL;
    PGresult *r = pg_exec(c, &st_variants, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return NULL;
    cJSON *doc = PQntuples(r) == 1 ? cJSON_Parse(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    if (doc == NULL)
        hd_err_set(err, "analytics_variants: no answer");
    return doc;
}
