/* repo_revoke.c - revoked access tokens (see repo_revoke.h). */
#include "store/repo_revoke.h"
#include "base/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_insert = {"revoke_insert",
                                    "INSERT INTO crm_revoked_tokens (jti, expires_at, actor) "
                                    "VALUES ($1, to_timestamp($2::bigint), $3) "
                                    "ON CONFLICT (jti) DO UPDATE SET expires_at = "
                                    "GREATEST(crm_revoked_tokens.expires_at, EXCLUDED.expires_at)",
                                    3, false};
static const pg_stmt_t st_purge = {
    "revoke_purge", "DELETE FROM crm_revoked_tokens WHERE expires_at < now() - interval '1 hour'",
    0, false};
static const pg_stmt_t st_audit = {"revoke_audit",
                                   "INSERT INTO crm_audit_log (actor, action, target, details) "
                                   "VALUES ($1, 'token.revoke', $2, "
                                   "jsonb_build_object('expires_at', $3::bigint))",
                                   3, false};
static const pg_stmt_t st_is = {"revoke_is",
                                "SELECT 1 FROM crm_revoked_tokens "
                                "WHERE jti = $1 AND expires_at > now() - interval '1 minute'",
                                1, false};
static const pg_stmt_t st_live = {
    "revoke_live",
    "SELECT jti, extract(epoch FROM expires_at)::bigint FROM crm_revoked_tokens "
    "WHERE expires_at > now() - interval '1 minute'",
    0, false};

int revoke_record(pg_pool_t *db, const char *jti, int64_t expires_at, const char *actor,
                  hd_err_t *err)
{
    char exp[32], target[96];
    snprintf(exp, sizeof(exp), "%" PRId64, expires_at);
    snprintf(target, sizeof(target), "jti:%s", jti);
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    const char *p[] = {jti, exp, actor};
    const char *a[] = {actor, target, exp};
    int rc = pg_exec_ok(c, &st_insert, p, err);
    if (rc == 0)
        rc = pg_exec_ok(c, &st_audit, a, err);
    if (rc == 0)
        rc = pg_exec_ok(c, &st_purge, NULL, err);
    return pg_tx_end(db, c, rc, err);
}

int revoke_is_revoked(pg_pool_t *db, const char *jti, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    const char *p[] = {jti};
    PGresult *r = pg_exec(c, &st_is, p, err);
    int rc = r == NULL ? -1 : PQntuples(r) > 0;
    PQclear(r);
    pg_pool_put(db, c);
    return rc;
}

int revoke_live(pg_pool_t *db, revoked_row_t **rows, int *n, hd_err_t *err)
{
    *rows = NULL;
    *n = 0;
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_live, NULL, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    int k = PQntuples(r);
    revoked_row_t *out = calloc(k > 0 ? (size_t)k : 1, sizeof(*out));
    for (int i = 0; out && i < k; i++) {
        out[i].jti = xstrdup(PQgetvalue(r, i, 0));
        out[i].expires_at = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
    if (out == NULL)
        return hd_err_set(err, "out of memory");
    *rows = out;
    *n = k;
    return 0;
}

void revoke_rows_free(revoked_row_t *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        free(rows[i].jti);
    free(rows);
}
