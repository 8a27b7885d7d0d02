/* repo_retention.c - see repo_retention.h. */
#include "store/repo_retention.h"

#include <stdio.h>
#include <stdlib.h>

static const pg_stmt_t st_comms = {
    "retention_comms",
    "WITH l AS MATERIALIZED (SELECT "
    "pg_try_advisory_xact_lock(hashtext('herald.retention')) AS ok), "
    "d AS (DELETE FROM crm_communications WHERE (SELECT ok FROM l) AND id IN ("
    "SELECT id FROM crm_communications WHERE created_at < now() - make_interval(days => $1::int) "
    "AND status IN ('sent', 'delivered', 'opened', 'clicked', 'failed', 'cancelled', "
    "'suppressed') ORDER BY created_at, id LIMIT $2::int FOR UPDATE SKIP LOCKED) RETURNING 1) "
    "SELECT (SELECT ok FROM l), (SELECT count(*) FROM d)",
    2, false};

static const pg_stmt_t st_events = {
    "retention_events",
    "WITH l AS MATERIALIZED (SELECT "
    "pg_try_advisory_xact_lock(hashtext('herald.retention')) AS ok), "
    "d AS (DELETE FROM crm_delivery_logs WHERE (SELECT ok FROM l) AND id IN ("
    "SELECT id FROM crm_delivery_logs WHERE kind = 'event' "
    "AND occurred_at < now() - make_interval(days => $1::int) ORDER BY occurred_at, id "
    "LIMIT $2::int) RETURNING 1) "
    "SELECT (SELECT ok FROM l), (SELECT count(*) FROM d)",
    2, false};

/* Keys past their expires_at answer nothing any more (idem_expire deletes
 * one when its key comes again): without this they would stay for ever.
 * An in-progress one that old is a dead process's (idem_expire takes such a
 * key over after 5 minutes). */
static const pg_stmt_t st_idem = {
    "retention_idem",
    "WITH l AS MATERIALIZED (SELECT "
    "pg_try_advisory_xact_lock(hashtext('herald.retention')) AS ok), "
    "d AS (DELETE FROM crm_idempotency_keys k WHERE (SELECT ok FROM l) AND "
    "(k.principal, k.idempotency_key) IN (SELECT principal, idempotency_key "
    "FROM crm_idempotency_keys WHERE expires_at < now() - make_interval(days => $1::int) "
    "ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED) RETURNING 1) "
    "SELECT (SELECT ok FROM l), (SELECT count(*) FROM d)",
    2, false};

static int batch(pg_pool_t *db, const pg_stmt_t *st, int days, int limit, int *deleted,
                 bool *skipped, hd_err_t *err)
{
    char d[16], n[16];
    snprintf(d, sizeof(d), "%d", days);
    snprintf(n, sizeof(n), "%d", limit);
    const char *p[] = {d, n};
    *deleted = 0;
    *skipped = false;
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, st, p, err);
    int rc = r ? 0 : -1;
    if (r) {
        *skipped = PQgetvalue(r, 0, 0)[0] != 't';
        *deleted = atoi(PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return pg_tx_end(db, c, rc, err);
}

int retention_comms_batch(pg_pool_t *db, int days, int limit, int *deleted, bool *skipped,
                          hd_err_t *err)
{
    return batch(db, &st_comms, days, limit, deleted, skipped, err);
}

int retention_events_batch(pg_pool_t *db, int days, int limit, int *deleted, bool *skipped,
                           hd_err_t *err)
{
    return batch(db, &st_events, days, limit, deleted, skipped, err);
}

int retention_idem_batch(pg_pool_t *db, int days, int limit, int *deleted, bool *skipped,
                         hd_err_t *err)
{
    return batch(db, &st_idem, days, limit, deleted, skipped, err);
}
