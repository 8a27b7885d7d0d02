/*
 * repo_idem.h - Idempotency-Key records: the same key with the same request
 * replays the stored answer; with a different request it is a 422; while the
 * first is still being handled it is a 409. Keys are scoped to the caller
 * (the token's subject) and kept 24 hours.
 *
 * The answer is stored by the same transaction that creates the message
 * (comms_create with idem_* set), so a crash can never leave a message
 * without its key or a key without its message.
 */
#ifndef HERALD_STORE_REPO_IDEM_H
#define HERALD_STORE_REPO_IDEM_H

#include "base/err.h"
#include "store/pg.h"

typedef enum {
    IDEM_NEW = 0,     /* ours: handle the request, then finish or abandon */
    IDEM_REPLAY,      /* done before: *status and *body are the stored answer */
    IDEM_MISMATCH,    /* the key was used for a different request */
    IDEM_IN_PROGRESS, /* the first request with this key is still running */
    IDEM_ERROR,
} idem_status_t;

/* Claims key for principal with the request's hash (64 hex). A record left
 * in progress by a process that died (older than 5 minutes) is taken over.
 * For IDEM_REPLAY, *body is caller-freed. */
idem_status_t idem_begin(pg_pool_t *db, const char *principal, const char *key, const char *hash,
                         int *status, char **body, hd_err_t *err);

/* Forgets a claimed key whose request did not create anything (a refused
 * request may be corrected and sent again with the same key). */
void idem_abandon(pg_pool_t *db, const char *principal, const char *key);

#endif
