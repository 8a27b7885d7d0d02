/*
 * repo_revoke.h - revoked access tokens in PostgreSQL (crm_revoked_tokens,
 * migration 0007): the durable record of the deny list whose fast copy is
 * in Redis (cache/denylist.h). engine/revoke.h composes the two.
 */
#ifndef HERALD_STORE_REPO_REVOKE_H
#define HERALD_STORE_REPO_REVOKE_H

#include "base/err.h"
#include "store/pg.h"

#include <stdint.h>

/* Records jti as revoked until expires_at (Unix seconds; a later expiry of
 * an earlier record wins), with an audit row (token.revoke), in one
 * transaction; purges rows dead for an hour. 0, or -1 with err. */
int revoke_record(pg_pool_t *db, const char *jti, int64_t expires_at, const char *actor,
                  hd_err_t *err);

/* 1 when jti is recorded as revoked and not yet past its expiry, 0 when
 * not, -1 with err when the database cannot answer. */
int revoke_is_revoked(pg_pool_t *db, const char *jti, hd_err_t *err);

typedef struct revoked_row {
    char *jti; /* owned */
    int64_t expires_at;
} revoked_row_t;

/* Every live revocation (expires_at in the future): 0 with *rows (free
 * with revoke_rows_free) and *n, or -1 with err. */
int revoke_live(pg_pool_t *db, revoked_row_t **rows, int *n, hd_err_t *err);
void revoke_rows_free(revoked_row_t *rows, int n);

#endif
