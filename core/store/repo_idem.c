/* repo_idem.c - Idempotency-Key records (see repo_idem.h). */
#include "store/repo_idem.h"
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

/* Two statements, not one with a CTE: inside one statement the DELETE's
 * effect is not visible to the INSERT, so an expired key would still clash. */
static const pg_stmt_t st_expire = {
    "idem_expire",
    "DELETE FROM crm_idempotency_keys WHERE principal = $1 AND idempotency_key = $2 "
    "AND (expires_at < now() OR (state = 'in_progress' AND "
    "created_at < now() - interval '5 minutes'))",
    2, false};
static const pg_stmt_t st_claim = {
    "idem_claim",
    "INSERT INTO crm_idempotency_keys (principal, idempotency_key, request_hash) "
    "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
    3, false};
static const pg_stmt_t st_read = {
    "idem_read",
    "SELECT state, request_hash, response_status, response_body FROM crm_idempotency_keys "
    "WHERE principal = $1 AND idempotency_key = $2",
    2, false};
static const pg_stmt_t st_abandon = {
    "idem_abandon",
    "DELETE FROM crm_idempotency_keys WHERE principal = $1 AND idempotency_key = $2 "
    "AND state = 'in_progress'",
    2, false};

idem_status_t idem_begin(pg_pool_t *db, const char *principal, const char *key, const char *hash,
                         int *status, char **body, hd_err_t *err)
{
    *body = NULL;
    const char *p[] = {principal, key, hash};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return IDEM_ERROR;
    idem_status_t st = IDEM_ERROR;
    PGresult *x = pg_exec(c, &st_expire, p, err);
    PGresult *r = x ? pg_exec(c, &st_claim, p, err) : NULL;
    PQclear(x);
    if (r && PQntuples(r) == 1) {
        st = IDEM_NEW;
    } else if (r) {
        PGresult *s = pg_exec(c, &st_read, p, err);
        if (s && PQntuples(s) == 1) {
            if (strcmp(PQgetvalue(s, 0, 1), hash) != 0)
                st = IDEM_MISMATCH;
            else if (strcmp(PQgetvalue(s, 0, 0), "done") != 0)
                st = IDEM_IN_PROGRESS;
            else {
                st = IDEM_REPLAY;
                *status = atoi(PQgetvalue(s, 0, 2));
                *body = xstrdup(PQgetvalue(s, 0, 3));
            }
        } else if (s) {
            st = IDEM_IN_PROGRESS; /* vanished between the two statements: try again */
        }
        PQclear(s);
    }
    PQclear(r);
    pg_pool_put(db, c);
    return st;
}

void idem_abandon(pg_pool_t *db, const char *principal, const char *key)
{
    const char *p[] = {principal, key};
    pg_conn_t *c = pg_pool_get(db, 5000, NULL);
    if (c == NULL)
        return;
    PQclear(pg_exec(c, &st_abandon, p, NULL));
    pg_pool_put(db, c);
}
