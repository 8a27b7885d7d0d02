/*
 * denylist.h - the Redis copy of the revoked access tokens, checked on
 * every authenticated request. Uses cache/redis.
 *
 * "herald:deny:v1:jti:<jti>" exists while a revoked token could still be
 * presented (its TTL is the token's remaining life). The copy is trusted
 * only while "herald:deny:v1:loaded" exists: that key is set, in the same
 * atomic script, when every live revocation has been copied from
 * PostgreSQL (store/repo_revoke.h), and expires after DENY_LOADED_TTL_S.
 * A Redis that restarted empty has no such key, so its empty copy is never
 * taken for "nothing revoked"; and a revocation whose Redis write was lost
 * is picked up at the next load, within DENY_LOADED_TTL_S.
 */
#ifndef HERALD_CACHE_DENYLIST_H
#define HERALD_CACHE_DENYLIST_H

#include "cache/redis.h"

#include <stdbool.h>
#include <stdint.h>

/* How long a load of the deny list from PostgreSQL is trusted. */
#define DENY_LOADED_TTL_S 60

typedef enum {
    DENY_ALLOWED = 0, /* the copy is loaded and does not name jti */
    DENY_REVOKED,     /* the copy names jti */
    DENY_NOT_LOADED,  /* the copy is not complete: ask PostgreSQL (deny_load) */
    DENY_DOWN,        /* Redis did not answer (err set) */
} deny_status_t;

/* One round trip (MGET of the marker and the jti's key). */
deny_status_t deny_check(rd_client_t *rd, const char *jti, hd_err_t *err);

/* The two keys deny_check reads, for a caller that reads them in a round
 * trip of its own (limit/limit.h's lim_check_reading): the marker and jti's
 * entry (jti at most 63 bytes). */
#define DENY_KEY_MAX 96
void deny_keys(const char *jti, char marker[DENY_KEY_MAX], char entry[DENY_KEY_MAX]);
/* What deny_check answers when the marker and the entry are (or are not)
 * there. */
deny_status_t deny_status_of(bool marker_present, bool entry_present);

/* Marks jti revoked for ttl_s seconds (at least 1). 0, or -1 with err. */
int deny_add(rd_client_t *rd, const char *jti, int64_t ttl_s, hd_err_t *err);

typedef struct deny_entry {
    const char *jti;
    int64_t ttl_s; /* at least 1 */
} deny_entry_t;

/* Copies n revocations and sets the marker, atomically (one script): a
 * restart during the load leaves no marker. 0, or -1 with err. */
int deny_load(rd_client_t *rd, const deny_entry_t *e, int n, hd_err_t *err);

#endif
