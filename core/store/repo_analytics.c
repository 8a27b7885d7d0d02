/* repo_analytics.c - see repo_analytics.h. */
#include "store/repo_analytics.h"

#include <stdlib.h>
#include <string.h>

/* One process at a time folds (the lock is per transaction). */
static const pg_stmt_t st_lock = {
    "analytics_lock", "SELECT pg_try_advisory_xact_lock(hashtext('herald.analytics'))", 0};

/* The deltas the triggers wrote (migrations/0018_analytics_counts.sql) go
 * into the counters. DELETE sees only committed deltas; one still being
 * written stays for the next fold. */
#define PROFILE                                                                                    \
    "day, channel, message_type, status, reached, delivered, opened, clicked, fallback, failure, " \
    "bucket"
static const pg_stmt_t st_fold = {
    "analytics_fold",
    "WITH d AS (DELETE FROM crm_analytics_delta RETURNING *), "
    "s AS (SELECT " PROFILE ", sum(n)::bigint AS n FROM d GROUP BY " PROFILE "), "
    "i AS (INSERT INTO crm_analytics_counts AS c SELECT * FROM s WHERE n <> 0 "
    "ON CONFLICT (" PROFILE ") DO UPDATE SET n = c.n + excluded.n RETURNING 1) "
    "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM i)",
    0};

/* Profiles whose messages all moved on (a status left behind). */
static const pg_stmt_t st_prune = {"analytics_prune",
                                   "DELETE FROM crm_analytics_counts WHERE n = 0", 0};

int analytics_fold(pg_pool_t *db, bool prune, long *deltas, bool *skipped, hd_err_t *err)
{
    *skipped = false;
    *deltas = 0;
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
        PGresult *f = pg_exec(c, &st_fold, NULL, err);
        if (f == NULL)
            rc = -1;
        else
            *deltas = atol(PQgetvalue(f, 0, 0));
        PQclear(f);
    }
    if (rc == 0 && !*skipped && prune)
        rc = pg_exec_ok(c, &st_prune, NULL, err);
    if (rc == 0 && *skipped)
        rc = 1; /* another process holds the lock: nothing to commit */
    rc = pg_tx_end(db, c, rc, err);
    return rc == 1 ? 0 : rc;
}

/* The counters of first..last plus the deltas not folded yet, one row per
 * (day, channel, message_type): exact as of the read. */
static const pg_stmt_t st_rows = {
    "analytics_rows",
    "WITH u AS MATERIALIZED (SELECT " PROFILE ", n FROM crm_analytics_counts "
    "WHERE day BETWEEN $1::date AND $2::date UNION ALL SELECT " PROFILE ", n "
    "FROM crm_analytics_delta WHERE day BETWEEN $1::date AND $2::date), "
    "t AS (SELECT day, channel, message_type, sum(n) AS total, "
    "coalesce(sum(n) FILTER (WHERE reached), 0) AS reached, "
    "coalesce(sum(n) FILTER (WHERE delivered), 0) AS delivered, "
    "coalesce(sum(n) FILTER (WHERE opened), 0) AS opened, "
    "coalesce(sum(n) FILTER (WHERE clicked), 0) AS clicked, "
    "coalesce(sum(n) FILTER (WHERE fallback), 0) AS fallbacks FROM u GROUP BY 1, 2, 3 "
    "HAVING sum(n) <> 0), "
    "s AS (SELECT day, channel, message_type, jsonb_object_agg(status, n) AS j FROM ("
    "SELECT day, channel, message_type, status, sum(n) AS n FROM u GROUP BY 1, 2, 3, 4 "
    "HAVING sum(n) <> 0) x GROUP BY 1, 2, 3), "
    "f AS (SELECT day, channel, message_type, jsonb_object_agg(failure, n) AS j FROM ("
    "SELECT day, channel, message_type, failure, sum(n) AS n FROM u WHERE failure <> '' "
    "GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0) x GROUP BY 1, 2, 3), "
    "h AS (SELECT day, channel, message_type, jsonb_object_agg(bucket, n) AS j FROM ("
    "SELECT day, channel, message_type, bucket, sum(n) AS n FROM u WHERE bucket >= 0 "
    "GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0) x GROUP BY 1, 2, 3) "
    "SELECT to_char(t.day, 'YYYY-MM-DD'), t.channel, t.message_type, t.total, t.reached, "
    "t.delivered, t.opened, t.clicked, t.fallbacks, coalesce(s.j, '{}')::text, "
    "coalesce(f.j, '{}')::text, coalesce(h.j, '{}')::text, "
    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM t LEFT JOIN s USING (day, channel, message_type) "
    "LEFT JOIN f USING (day, channel, message_type) "
    "LEFT JOIN h USING (day, channel, message_type) ORDER BY 1, 2, 3",
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

static const pg_stmt_t st_open_rates = {
    "analytics_open_rates",
    "SELECT channel, (sum(n) FILTER (WHERE opened))::float8 / "
    "nullif(sum(n) FILTER (WHERE delivered), 0) FROM ("
    "SELECT channel, opened, delivered, n FROM crm_analytics_counts "
    "WHERE day > (now() AT TIME ZONE 'UTC')::date - 30 UNION ALL "
    "SELECT channel, opened, delivered, n FROM crm_analytics_delta "
    "WHERE day > (now() AT TIME ZONE 'UTC')::date - 30) x "
    "WHERE channel IN ('email', 'sms', 'whatsapp') GROUP BY channel",
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
