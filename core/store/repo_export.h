/*
 * repo_export.h - what Herald holds about one client, read for a GDPR
 * export (Art. 15 and 20, docs/compliance.md) in pieces: the head
 * (preferences decrypted, consent history, suppressions of the client's
 * addresses) and then the messages, a page at a time by keyset, so no
 * reader holds them all. engine/export.h streams them as one document.
 */
#ifndef HERALD_STORE_REPO_EXPORT_H
#define HERALD_STORE_REPO_EXPORT_H

#include "base/err.h"
#include "crypto/field.h"
#include "store/pg.h"

#include <cjson/cJSON.h>

enum { EXPORT_OK = 0, EXPORT_NOT_FOUND = 1 };

/* {client_id, preferences (decrypted; null when none), consent_history
 * [audit rows preferences.consent], suppressions [rows whose blind index
 * is the client's email or phone], inbound_contacts [{channel,
 * last_inbound_at, messages} of the client's phone]}. EXPORT_NOT_FOUND when there is neither
 * a preferences row nor a message; -1 with err. Caller frees *out. */
int export_head(pg_pool_t *db, const fe_keyring_t *kr, const char *client_id, cJSON **out,
                hd_err_t *err);

/* The position after the last message read; zeroed: before the first. */
typedef struct export_cursor {
    char created_at[48]; /* "" : start */
    char id[40];
} export_cursor_t;

/* Up to limit messages after *cur in (created_at, id) order, each the row
 * as stored (context and recipient override decrypted) with its attempts
 * and events, appended to the array *items (created, caller frees); *cur
 * moves past them. Returns how many (0 at the end), or -1 with err. */
int export_page(pg_pool_t *db, const fe_keyring_t *kr, const char *client_id, export_cursor_t *cur,
                int limit, cJSON **items, hd_err_t *err);

#endif
