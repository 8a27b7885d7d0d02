/* repo_analytics.c - see repo_analytics.h. */
#include "store/repo_analytics.h"

#include <stdlib.h>
#include <string.h>

/* One process at a time folds (the lock is per transaction). */
static const pg_stmt_t st_lock = {
    "analytics_lock", "SELECT pg_try_advisory_xact_lock(hashtext('herald.analytics'))", 0, false};

/* The deltas the triggers wrote (migrations/0018_analytics_counts.sql) go
 * into the rows, then the deltas are deleted: both statements see the same
 * snapshot (REPEATABLE READ), so a delta committed meanwhile stays for the
 * next fold. A group whose deltas cancel out writes nothing. */
static const pg_stmt_t st_repeatable = {
    "analytics_repeatable", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0, false};

static const pg_stmt_t st_fold = {
    "analytics_fold",
    "INSERT INTO crm_analytics_daily AS c (day, channel, message_type, total, by_status, "
    "reached, delivered, opened, clicked, fallbacks, failures, delivery_hist) "
    "SELECT day, channel, message_type, total, by_status, reached, delivered, opened, clicked, "
    "fallbacks, failures, delivery_hist FROM crm_analytics_pending('-infinity', 'infinity') "
    "WHERE total <> 0 OR reached <> 0 OR delivered <> 0 OR opened <> 0 OR clicked <> 0 "
    "OR fallbacks <> 0 OR by_status <> '{}' OR failures <> '{}' OR delivery_hist <> '{}' "
    "ON CONFLICT (day, channel, message_type) DO UPDATE SET total = c.total + excluded.total, "
    "reached = c.reached + excluded.reached, delivered = c.delivered + excluded.delivered, "
    "opened = c.opened + excluded.opened, clicked = c.clicked + excluded.clicked, "
    "fallbacks = c.fallbacks + excluded.fallbacks, "
    "by_status = crm_jsonb_add(c.by_status, excluded.by_status), "
    "failures = crm_jsonb_add(c.failures, excluded.failures), "
    "delivery_hist = crm_jsonb_add(c.delivery_hist, excluded.delivery_hist), "
    "computed_at = now()",
    0, false};

static const pg_stmt_t st_fold_clear = {"analytics_fold_clear", "DELETE FROM crm_analytics_delta",
                                        0, false};

/* Rows whose messages all moved on (the '' channel of messages that then
 * got one). */
static const pg_stmt_t st_prune = {
    "analytics_prune",
    "DELETE FROM crm_analytics_daily WHERE total = 0 AND reached = 0 AND delivered = 0 "
    "AND opened = 0 AND clicked = 0 AND fallbacks = 0 AND by_status = '{}' "
    "AND failures = '{}' AND delivery_hist = '{}'",
    0, false};

int analytics_fold(pg_pool_t *db, bool prune, long *deltas, bool *skipped, hd_err_t *err)
{
    *skipped = false;
    *deltas = 0;
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = pg_exec_ok(c, &st_repeatable, NULL, err);
    PGresult *r = rc == 0 ? pg_exec(c, &st_lock, NULL, err) : NULL;
    if (r == NULL)
        rc = -1;
    else if (PQgetvalue(r, 0, 0)[0] != 't')
        *skipped = true;
    PQclear(r);
    if (rc == 0 && !*skipped) {
        rc = pg_exec_ok(c, &st_fold, NULL, err);
        PGresult *d = rc == 0 ? pg_exec(c, &st_fold_clear, NULL, err) : NULL;
        if (d == NULL)
            rc = -1;
        else
            *deltas = atol(PQcmdTuples(d));
        PQclear(d);
        /* another process folded between this snapshot and the lock: what
         * it folded is still in this snapshot, so give way (nothing is
         * counted twice either way: REPEATABLE READ refuses) */
        if (rc != 0 && strcmp(pg_last_sqlstate(c), "40001") == 0)
            *skipped = true;
    }
    if (rc == 0 && !*skipped && prune)
        rc = pg_exec_ok(c, &st_prune, NULL, err);
    if (*skipped)
        rc = 1; /* another process folds: nothing to commit */
    rc = pg_tx_end(db, c, rc, err);
    return rc == 1 || *skipped ? 0 : rc;
}

/* The rows of first..last plus the deltas not folded yet: exact as of the
 * read (computed_at is the read's time). */
static const pg_stmt_t st_rows = {
    "analytics_rows",
    "SELECT to_char(day, 'YYYY-MM-DD'), channel, message_type, "
    "coalesce(c.total, 0) + coalesce(p.total, 0) AS total, "
    "coalesce(c.reached, 0) + coalesce(p.reached, 0), "
    "coalesce(c.delivered, 0) + coalesce(p.delivered, 0), "
    "coalesce(c.opened, 0) + coalesce(p.opened, 0), "
    "coalesce(c.clicked, 0) + coalesce(p.clicked, 0), "
    "coalesce(c.fallbacks, 0) + coalesce(p.fallbacks, 0), "
    "(CASE WHEN p.total IS NULL THEN c.by_status WHEN c.total IS NULL THEN p.by_status "
    "ELSE crm_jsonb_add(c.by_status, p.by_status) END)::text AS by_status, "
    "(CASE WHEN p.total IS NULL THEN c.failures WHEN c.total IS NULL THEN p.failures "
    "ELSE crm_jsonb_add(c.failures, p.failures) END)::text, "
    "(CASE WHEN p.total IS NULL THEN c.delivery_hist WHEN c.total IS NULL THEN p.delivery_hist "
    "ELSE crm_jsonb_add(c.delivery_hist, p.delivery_hist) END)::text, "
    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM (SELECT * FROM crm_analytics_daily WHERE day BETWEEN $1::date AND $2::date) c "
    "FULL JOIN crm_analytics_pending($1::date, $2::date) p USING (day, channel, message_type) "
    "WHERE coalesce(c.total, 0) + coalesce(p.total, 0) <> 0 ORDER BY 1, 2, 3",
    2, false};

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
    "SELECT channel, sum(opened)::float8 / nullif(sum(delivered), 0) FROM ("
    "SELECT channel, opened, delivered FROM crm_analytics_daily "
    "WHERE day > (now() AT TIME ZONE 'UTC')::date - 30 UNION ALL "
    "SELECT channel, opened, delivered FROM crm_analytics_pending("
    "(now() AT TIME ZONE 'UTC')::date - 29, 'infinity')) x "
    "WHERE channel IN ('email', 'sms', 'whatsapp') GROUP BY channel",
    0, false};

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
    3, false};

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
