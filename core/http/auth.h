/*
 * auth.h - access tokens: scopes, minting, bearer verification.
 *
 * Access tokens are HS256 JWTs carrying iss, aud, sub, scope (space separated,
 * RFC 8693 style), exp, iat and jti. Verification pins HS256 and the
 * configured issuer and audience, with 60 s of clock leeway.
 */
#ifndef HERALD_HTTP_AUTH_H
#define HERALD_HTTP_AUTH_H

#include "base/config.h"
#include "base/err.h"

#include <stdint.h>

enum { SCOPE_SEND = 1u, SCOPE_READ = 2u, SCOPE_ADMIN = 4u, SCOPE_ALL = 7u };

#define AUTH_LEEWAY_S 60

typedef struct auth_principal {
    char sub[128];
    unsigned scopes;
    int64_t exp;
    char jti[64];
} auth_principal_t;

/* Parses "send,read" or "send read" into a mask; unknown or empty → -1 with err. */
int auth_parse_scopes(const char *s, unsigned *mask, hd_err_t *err);

/* Writes the space-separated scope list of mask into out. */
void auth_format_scopes(unsigned mask, char *out, size_t n);

/* Name of a single scope bit ("send", "read", "admin"). */
const char *auth_scope_name(unsigned scope);

/* Mints an access token for sub with scopes, valid ttl seconds from now.
 * *token_out is caller-freed. */
int auth_mint(const cfg_t *cfg, const char *sub, unsigned scopes, int ttl, int64_t now,
              char **token_out, hd_err_t *err);

/* Checks an Authorization header value ("Bearer <jwt>") at time now. On
 * success fills *out. err gets the reason for the 401 answer. */
int auth_verify_bearer(const cfg_t *cfg, const char *header, int64_t now, auth_principal_t *out,
                       hd_err_t *err);

#endif
