/*
 * auth.h - access tokens: minting, bearer verification. The scopes they carry
 * are base/scope.h's.
 *
 * Access tokens are HS256 JWTs carrying iss, aud, sub, scope (space separated,
 * RFC 8693 style), exp, iat and jti. Verification pins HS256 and the
 * configured issuer and audience, with 60 s of clock leeway.
 */
#ifndef HERALD_HTTP_AUTH_H
#define HERALD_HTTP_AUTH_H

#include "base/config.h"
#include "base/err.h"
#include "base/scope.h"
#include "cache/denylist.h"
#include "cache/redis.h"
#include "store/pg.h"

#include <stdint.h>

#define AUTH_LEEWAY_S 60

typedef struct auth_principal {
    char sub[128];
    unsigned scopes;
    int64_t exp;
    char jti[64];
} auth_principal_t;

/* Mints an access token for sub with scopes, valid ttl seconds from now.
 * *token_out is caller-freed. */
int auth_mint(const cfg_t *cfg, const char *sub, unsigned scopes, int ttl, int64_t now,
              char **token_out, hd_err_t *err);

/* Checks an Authorization header value ("Bearer <jwt>") at time now. On
 * success fills *out. err gets the reason for the 401 answer. */
int auth_verify_bearer(const cfg_t *cfg, const char *header, int64_t now, auth_principal_t *out,
                       hd_err_t *err);

/* Whether p's token is revoked, the deny list having answered deny
 * (cache/denylist.h; DENY_DOWN when Redis did not): as auth_authenticate
 * after its bearer check. */
int auth_check_revocation(pg_pool_t *db, rd_client_t *rd, const auth_principal_t *p, int64_t now,
                          deny_status_t deny, hd_err_t *err);

/* auth_verify_bearer, then the deny list (engine/revoke.h) for the
 * token's jti. 0 when the token is good; -1 (401) when it is invalid or
 * revoked; -2 (503) when whether it is revoked cannot be told (neither
 * Redis nor PostgreSQL answers): a revoked token is never accepted. A token
 * without a jti (none Herald issues) cannot be revoked and is not looked
 * up. */
int auth_authenticate(const cfg_t *cfg, pg_pool_t *db, rd_client_t *rd, const char *header,
                      int64_t now, auth_principal_t *out, hd_err_t *err);

#endif
