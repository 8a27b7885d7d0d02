/*
 * revoke.h - revoking access tokens by jti (issue 17, item 14), and the
 * check every authenticated request makes. Composes the durable record
 * (store/repo_revoke.h, PostgreSQL) and its fast copy (cache/denylist.h,
 * Redis).
 *
 * A revocation is written to PostgreSQL first, then to Redis. A check asks
 * Redis (one round trip); when Redis's copy is not known complete (after a
 * restart, or every DENY_LOADED_TTL_S) it is reloaded from PostgreSQL
 * first; when Redis does not answer, PostgreSQL is asked directly; when
 * neither can answer, the check fails and the request is refused (503):
 * a revoked token is never accepted for want of an answer.
 */
#ifndef HERALD_ENGINE_REVOKE_H
#define HERALD_ENGINE_REVOKE_H

#include "base/err.h"
#include "cache/denylist.h"
#include "cache/redis.h"
#include "store/pg.h"

#include <stdbool.h>
#include <stdint.h>

/* The longest a token Herald issues can live (`herald token --ttl`'s
 * maximum): a jti revoked without its expiry is denied for this long. */
#define REVOKE_MAX_LIFE_S 31536000

/* A jti Herald accepts to revoke: 1 to 63 printable ASCII characters
 * without spaces. */
bool revoke_jti_ok(const char *jti);

/* Revokes jti until expires_at + leeway_s (the token's exp and the
 * verifier's clock leeway). 0 when both stores have it; 1 when PostgreSQL
 * has it but Redis could not be told (err says why: servers see it when
 * their copy is next reloaded, within DENY_LOADED_TTL_S, or at once while
 * Redis is down); -1 with err when nothing was recorded. */
int revoke_token(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t expires_at,
                 int64_t leeway_s, int64_t now, const char *actor, hd_err_t *err);

typedef enum {
    REVOKE_VALID = 0, /* not revoked */
    REVOKE_REVOKED,   /* revoked: 401 */
    REVOKE_UNKNOWN,   /* neither Redis nor PostgreSQL could answer: 503 */
} revoke_status_t;

/* Whether jti is revoked (see the header comment for the order of asking). */
revoke_status_t revoke_check(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t now,
                             int64_t leeway_s, hd_err_t *err);

/* revoke_check when the deny list's answer is already known (read in a
 * round trip of the caller's: deny_keys, deny_status_of; DENY_DOWN when
 * Redis did not answer): PostgreSQL is asked only when that answer is
 * DENY_NOT_LOADED or DENY_DOWN. */
revoke_status_t revoke_resolve(pg_pool_t *db, rd_client_t *rd, const char *jti, int64_t now,
                               int64_t leeway_s, deny_status_t deny, hd_err_t *err);

#endif
