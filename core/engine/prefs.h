/*
 * prefs.h - a client's preferences for the engine and the API: the cache
 * (cache/prefs_cache) when it may be trusted, else the repository
 * (store/repo_prefs), which fills the cache; after a save the cache holds the
 * new row. When Redis is down, reads and writes go straight to PostgreSQL.
 *
 * A save whose cache write fails (Redis stalled or down) leaves the old copy
 * in the cache for up to its TTL, so a copy is only as good as what the
 * reader knows: before an attempt the worker knows the row's current
 * version (the claim reads it, prefs_version_t) and trusts only a copy of
 * exactly that version; consent is never read from a stale copy there.
 * Readers that know nothing (acceptance, the API) take any copy.
 */
#ifndef HERALD_ENGINE_PREFS_H
#define HERALD_ENGINE_PREFS_H

#include "base/err.h"
#include "base/prefs_row.h"
#include "engine/app.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* The version of a client's row known to be current: a claim reads it
 * with its job (comm_job_t.has_prefs, .prefs_version). */
typedef struct prefs_version {
    bool exists;     /* whether the client has a row; false: no cached copy is trusted */
    int64_t version; /* exists: the row's version (prefs_row_t.version) */
} prefs_version_t;

/* Clients read in one statement at most. */
#define PREFS_READS_MAX 64

/* The group read of preferences for app->prefs_reads (base/group.h): the
 * threads that miss the cache at the same moment read their rows in one
 * statement, one group at a time; a lone reader reads at once. Each row is
 * read by a statement that starts after its reader asked, so a reader sees
 * every change committed before it asked, as with a read of its own.
 * group_free() it. */
struct group *prefs_reads_new(app_t *app);

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
 * current NULL takes any cached copy; otherwise a cached copy is used only
 * when it carries exactly current->version, and any other answer (older,
 * newer, missing, Redis down or slow) reads PostgreSQL and refreshes the
 * cache, best effort. !current->exists (the claim saw no row) answers "no
 * stored preferences" without asking Redis or PostgreSQL: the claim's
 * snapshot is trusted as its version would be (one read per email saved
 * for clients known only by the request's own recipient).
 * Returns 0 with *out (caller frees), or 0 with *out = NULL when the client
 * has no stored preferences; -1 with err when the database cannot answer or a
 * stored value cannot be decrypted. */
int prefs_load(app_t *app, const char *client_id, const prefs_version_t *current, cJSON **out,
               hd_err_t *err);

/* Clients this process has seen with a preferences row (read from the cache
 * or the database, or saved) are remembered in app->prefs_stored, a lossy
 * set of PREFS_STORED_HINTS slots (base/hint.h, 2 MiB); a client read and
 * found without a row is forgotten. prefs_maybe_stored answers from it:
 * false for a client this process never saw with a row (or forgot). It is
 * a hint, never a fact: acceptance skips the read for a client it answers
 * false for, and the insert checks that the client has no row
 * (comm_new_t.unless_prefs). True without a set. */
#define PREFS_STORED_HINTS (1u << 18)
bool prefs_maybe_stored(app_t *app, const char *client_id);

/* The policy's shape (above) of a stored row; caller frees. */
cJSON *prefs_policy_shape(const prefs_row_t *row);

/* Drops the cached row of client_id, for code that changes or deletes the
 * row without prefs_save (erasure, unsubscribe); call it after the commit.
 * Best effort: failures are logged. */
void prefs_cache_forget(app_t *app, const char *client_id);

#endif
