/*
 * prefs_cache.h - the Redis copy of clients' preferences rows. Uses
 * cache/redis and crypto/field.
 *
 * The key "herald:prefs:v1:<client_id>" holds one row as JSON for 300 s.
 * Redis never holds plaintext: the name, email and phone are encrypted
 * (fe_encrypt, fields "name", "email" and "phone"; with the blind indexes
 * next to the addresses, as in the table). Each copy carries the row's
 * version (prefs_row_t.version, its first member) and is only ever replaced
 * by a newer one, so a reader that loaded a row just before a write cannot
 * put it back after the write. Every call is best effort: when Redis is down
 * or answers something unexpected, a read is a miss and callers go to the
 * database.
 */
#ifndef HERALD_CACHE_PREFS_CACHE_H
#define HERALD_CACHE_PREFS_CACHE_H

#include "base/prefs_row.h"
#include "cache/redis.h"
#include "crypto/field.h"

#include <stdbool.h>

/* The cached row of client_id, version included, into *out (caller
 * prefs_row_free()s): true on a hit. False, with *out zeroed, on a miss, when
 * Redis is down, for a value that is not a row of client_id (logged) and
 * for one that does not decrypt (logged and dropped). */
bool pcache_get(rd_client_t *rd, const fe_keyring_t *kr, const char *client_id, prefs_row_t *out);

/* Stores row unless the cache holds the same or a newer version of it.
 * When the copy cannot be stored for another reason than Redis being
 * unreachable, the key is dropped: a missing copy is safe, a stale one is
 * not. */
void pcache_put(rd_client_t *rd, const fe_keyring_t *kr, const prefs_row_t *row);

/* Drops the cached row of client_id (failures are logged). */
void pcache_forget(rd_client_t *rd, const char *client_id);

#endif
