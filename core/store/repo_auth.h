/*
 * repo_auth.h - API keys and refresh tokens in PostgreSQL.
 *
 * An API key reads "hk_<12 hex prefix>_<43 base64url secret>". Only the
 * prefix (for look-up) and the SHA-256 of the whole key are stored; the key
 * is shown once, at creation. Refresh tokens are opaque, stored as SHA-256,
 * single use, and grouped in families: presenting a spent token revokes its
 * whole family (RFC 6819 5.2.2.3 / OAuth 2.0 Security BCP refresh rotation).
 */
#ifndef HERALD_STORE_REPO_AUTH_H
#define HERALD_STORE_REPO_AUTH_H

#include "base/err.h"
#include "store/pg.h"

#include <cjson/cJSON.h>

typedef struct apikey_info {
    char id[40];
    char name[104];
    unsigned scopes;
} apikey_info_t;

/* Creates a key; *key_out (caller frees) is the only copy of the secret.
 * A duplicate name is an error naming it. actor goes to the audit log. */
int apikey_create(pg_pool_t *db, const char *name, unsigned scopes, const char *actor,
                  char **key_out, hd_err_t *err);

/* One API key as stored, without its secret. Strings owned; the times are
 * RFC 3339 UTC or NULL. */
typedef struct apikey_row {
    char *id, *name, *prefix;
    char *scopes; /* "send,read" */
    char *created_at, *last_used_at, *revoked_at;
} apikey_row_t;

/* All keys, newest first: 0 with *rows (free with apikey_rows_free) and
 * *n, or -1 with err. */
int apikey_list(pg_pool_t *db, apikey_row_t **rows, int *n, hd_err_t *err);
void apikey_rows_free(apikey_row_t *rows, int n);

/* Revokes the key with this name or prefix and every refresh token issued
 * for it. Returns 0, 1 when no live key matches, -1 on error. */
int apikey_revoke(pg_pool_t *db, const char *name_or_prefix, const char *actor, hd_err_t *err);

/* Checks a presented key (constant-time hash compare); fills *out and
 * records last use. -1 with err "invalid API key" for any mismatch; -2 when
 * the database could not answer (the caller says 503, not 401). */
int apikey_authenticate(pg_pool_t *db, const char *key, apikey_info_t *out, hd_err_t *err);

/* Issues the first refresh token of a new family for key. */
int refresh_issue(pg_pool_t *db, const apikey_info_t *key, int ttl_s, char **token_out,
                  hd_err_t *err);

typedef enum { REFRESH_OK = 0, REFRESH_INVALID, REFRESH_REUSED, REFRESH_ERROR } refresh_status_t;

/* Spends token and issues its successor in the same family. A token already
 * spent revokes the family (REFRESH_REUSED); an unknown, expired or revoked
 * token, or one whose key was revoked, is REFRESH_INVALID. */
refresh_status_t refresh_rotate(pg_pool_t *db, const char *token, int ttl_s, apikey_info_t *key,
                                char **new_token, hd_err_t *err);

#endif
