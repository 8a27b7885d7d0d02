/* revoke.c - see revoke.h. */
#include "engine/revoke.h"
#include "base/log.h"
#include "cache/denylist.h"
#include "store/repo_revoke.h"

#include <stdlib.h>
#include <string.h>

bool revoke_jti_ok(const char *jti)
{
    size_t n = jti ? strlen(jti) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)jti[i] <= 0x20 || (unsigned char)jti[i] >= 0x7f)
            return false;
    return true;
}

int revoke_token(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t expires_at,
                 int64_t leeway_s, int64_t now, const char *actor, hd_err_t *err)
{
    if (!revoke_jti_ok(jti))
        return hd_err_set(err, "jti: expected 1 to 63 printable characters without spaces");
    if (revoke_record(db, jti, expires_at, actor, err) != 0)
        return -1;
    int64_t ttl = expires_at + leeway_s - now;
    if (ttl <= 0)
        return 0; /* already refused as expired */
    if (deny_add(rd, jti, ttl, err) != 0) {
        log_warn("token revoked in PostgreSQL only; Redis could not be told", "reason", err->msg);
        return 1;
    }
    return 0;
}

/* Copies every live revocation into Redis and answers for jti from them. */
static revoke_status_t load(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t now,
                            int64_t leeway_s, hd_err_t *err)
{
    revoked_row_t *rows;
    int n;
    if (revoke_live(db, &rows, &n, err) != 0)
        return REVOKE_UNKNOWN;
    deny_entry_t *e = calloc(n > 0 ? (size_t)n : 1, sizeof(*e));
    revoke_status_t st = REVOKE_VALID;
    int k = 0;
    for (int i = 0; e && i < n; i++) {
        if (strcmp(rows[i].jti, jti) == 0)
            st = REVOKE_REVOKED;
        int64_t ttl = rows[i].expires_at + leeway_s - now;
        if (ttl > 0)
            e[k++] = (deny_entry_t){rows[i].jti, ttl};
    }
    hd_err_t lerr;
    if (e == NULL || deny_load(rd, e, k, &lerr) != 0)
        log_warn("cannot copy the revoked tokens to Redis", "reason",
                 e ? lerr.msg : "out of memory");
    free(e);
    revoke_rows_free(rows, n);
    return st;
}

revoke_status_t revoke_resolve(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t now,
                               int64_t leeway_s, deny_status_t deny, hd_err_t *err)
{
    switch (deny) {
    case DENY_ALLOWED:
        return REVOKE_VALID;
    case DENY_REVOKED:
        return REVOKE_REVOKED;
    case DENY_NOT_LOADED:
        return load(db, rd, jti, now, leeway_s, err);
    case DENY_DOWN:
        break;
    }
    int r = revoke_is_revoked(db, jti, err);
    return r < 0 ? REVOKE_UNKNOWN : r ? REVOKE_REVOKED : REVOKE_VALID;
}

revoke_status_t revoke_check(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t now,
                             int64_t leeway_s, hd_err_t *err)
{
    return revoke_resolve(db, rd, jti, now, leeway_s, deny_check(rd, jti, err), err);
}
