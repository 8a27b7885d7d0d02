/*
 * prefs.h - a client's preferences for the engine and the API: the cache
 * first (cache/prefs_cache), then the repository (store/repo_prefs), which
 * fills the cache; after a save the cache holds the new row. When Redis is
 * down, reads and writes go straight to PostgreSQL.
 */
#ifndef HERALD_ENGINE_PREFS_H
#define HERALD_ENGINE_PREFS_H

#include "base/err.h"
#include "base/prefs_row.h"
#include "engine/app.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

/* A client's stored preferences into *out (caller prefs_row_free()s).
 * Returns PREFS_OK, PREFS_NOT_FOUND, PREFS_ERR_DB or PREFS_ERR_CRYPTO (a
 * stored value failed to decrypt: logged, never returned as garbage). */
int prefs_get(app_t *app, const char *client_id, prefs_row_t *out, hd_err_t *err);

/* Creates or updates a client's preferences (prefs_repo_save: one
 * transaction, with the audit row of a consent change); then the cache holds
 * the new row. *created says whether the row is new; *out (caller
 * prefs_row_free()s) is the row as stored. Returns a PREFS_* outcome with err
 * on failure. */
int prefs_save(app_t *app, const prefs_patch_t *patch, const char *actor, bool *created,
               prefs_row_t *out, hd_err_t *err);

/* A client's preferences shaped for the policy scripts (strategy.decide's
 * prefs, docs/scripting.md):
 *   {timezone, locale, digest_time, channels?: [..], opted_out: {sms = true},
 *    consent: {given, at}, name?, email?, phone?, quiet_hours?: {start, end}}
 * where a member marked "?" is absent (not null) when the client has none
 * (channels: no stated order) and consent.at is null when never stated.
 * Returns 0 with *out (caller frees), or 0 with *out = NULL when the client
 * has no stored preferences; -1 with err when the database cannot answer or a
 * stored value cannot be decrypted. */
int prefs_load(app_t *app, const char *client_id, cJSON **out, hd_err_t *err);

/* Drops the cached row of client_id, for code that changes or deletes the
 * row without prefs_save (erasure, unsubscribe); call it after the commit.
 * Best effort: failures are logged. */
void prefs_cache_forget(app_t *app, const char *client_id);

#endif
