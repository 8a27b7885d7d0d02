/*
 * repo_prefs.h - the client preferences repository (crm_client_preferences).
 * Uses store/pg and crypto/field; knows nothing of caches or the API.
 *
 * Email and phone are stored encrypted (fe_encrypt, fields "email" and
 * "phone") with their blind index (fe_blind_index) next to them; the name
 * is stored encrypted too (field "name", no index: nothing looks clients up
 * by name). A name stored in clear before migration 0008 is still read,
 * and sealed by the row's next write or by `herald rekey`. Rows come back
 * as prefs_row_t with the name and the addresses decrypted. updated_at moves forward on every
 * change, even when the clock does not, so the row's version (updated_at in microseconds) orders
 * copies of it.
 */
#ifndef HERALD_STORE_REPO_PREFS_H
#define HERALD_STORE_REPO_PREFS_H

#include "base/err.h"
#include "base/prefs_row.h"
#include "crypto/field.h"
#include "store/pg.h"

#include <stdbool.h>

/* Reads client_id's row into *out (caller prefs_row_free()s). Returns
 * PREFS_OK, PREFS_NOT_FOUND, PREFS_ERR_DB, or PREFS_ERR_CRYPTO when a stored
 * address does not decrypt (logged with the client id; err says
 * "cannot decrypt the stored preferences: <field>: <reason>"). On any
 * outcome but PREFS_OK, *out is zeroed. */
int prefs_repo_get(pg_pool_t *db, const fe_keyring_t *kr, const char *client_id, prefs_row_t *out,
                   hd_err_t *err);

/* prefs_repo_get for n clients in one statement (a group read): rcs[i] and
 * out[i] are what prefs_repo_get would give for client_ids[i] (PREFS_OK,
 * PREFS_NOT_FOUND or PREFS_ERR_CRYPTO; caller prefs_row_free()s each).
 * Returns 0, or -1 with err when the statement failed (every rcs[i] is then
 * PREFS_NOT_FOUND and must not be trusted). */
int prefs_repo_get_many(pg_pool_t *db, const fe_keyring_t *kr, const char *const *client_ids, int n,
                        prefs_row_t *out, int *rcs, hd_err_t *err);

/* Creates or updates a client's row in one transaction; fields the patch
 * keeps keep their stored value. A change of consent (given, time or source)
 * also writes an audit row ("preferences.consent", actor, "client:<id>",
 * details {given, source, at}) in that transaction. *created says whether
 * the row is new; *out (caller prefs_row_free()s) is the row as committed.
 * Returns PREFS_OK, PREFS_ERR_INVALID (a value the schema refuses: nothing
 * written), PREFS_ERR_DB (nothing written, unless the commit's answer was
 * lost), or PREFS_ERR_CRYPTO: a new address could not be encrypted (nothing
 * written) or a kept stored address does not decrypt (the change is
 * committed; logged as in prefs_repo_get). */
int prefs_repo_save(pg_pool_t *db, const fe_keyring_t *kr, const prefs_patch_t *patch,
                    const char *actor, bool *created, prefs_row_t *out, hd_err_t *err);

#endif
