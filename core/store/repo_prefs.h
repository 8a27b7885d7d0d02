/*
 * repo_prefs.h - client preferences (crm_client_preferences) with a Redis
 * read-through cache. Uses store/pg, cache/redis and crypto/field.
 *
 * Email and phone are stored encrypted (fe_encrypt, fields "email" and
 * "phone") with their blind index (fe_blind_index) next to them. The cache
 * key "herald:prefs:v1:<client_id>" holds the row as stored, for 300 s:
 * email and phone stay ciphertext there and the name is encrypted too
 * (field "name"), so Redis never holds plaintext PII. Each cached row carries
 * a version (updated_at in microseconds, strictly increasing per row) and is
 * only ever replaced by a newer one, so a reader that loaded a row just
 * before a write cannot put it back after the write. Redis down: reads and
 * writes go straight to PostgreSQL.
 */
#ifndef HERALD_STORE_REPO_PREFS_H
#define HERALD_STORE_REPO_PREFS_H

#include "base/err.h"
#include "engine/app.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define PREFS_MAX_CHANNELS 3

/* Outcomes of prefs_get and prefs_save. */
enum {
    PREFS_OK = 0,
    PREFS_NOT_FOUND = 1,
    PREFS_ERR_DB = -1,      /* database unreachable or failing: 503 */
    PREFS_ERR_CRYPTO = -2,  /* a stored value cannot be decrypted: 500 */
    PREFS_ERR_INVALID = -3, /* a value the schema refuses: 400 */
};

/* What a write does to a nullable field. */
typedef enum { PREFS_KEEP = 0, PREFS_SET, PREFS_CLEAR } prefs_op_t;

/* A checked change to one client's preferences. Strings are borrowed and
 * must live through prefs_save; values are already valid (the HTTP layer
 * checks them) and the schema's CHECKs are the backstop. */
typedef struct prefs_patch {
    const char *client_id;
    prefs_op_t name_op, email_op, phone_op, quiet_op;
    const char *name, *email, *phone;            /* PREFS_SET: the new value */
    const char *quiet_start, *quiet_end;         /* "HH:MM" */
    const char *timezone, *locale, *digest_time; /* NULL: keep */
    bool set_channels, set_opted_out;
    const char *channels[PREFS_MAX_CHANNELS];
    int nchannels;
    const char *opted_out[PREFS_MAX_CHANNELS];
    int nopted_out;
    /* consent: given is required; at defaults to now when given changes and
     * to the stored time otherwise; source left out keeps the stored source
     * unless given changes (then it is cleared). */
    bool set_consent, consent_given, consent_at_set, consent_source_set;
    int64_t consent_at;         /* Unix seconds, when consent_at_set */
    const char *consent_source; /* NULL: none */
} prefs_patch_t;

/* Creates or updates a client's preferences in one transaction; a change of
 * consent (given, time or source) also writes an audit row
 * ("preferences.consent", actor, "client:<id>") in that transaction. After
 * the commit the cache holds the new row. *created says whether the row is
 * new. *out (caller frees) is the stored preferences in the API shape (see
 * prefs_get). Returns a PREFS_* outcome with err on failure. */
int prefs_save(app_t *app, const prefs_patch_t *patch, const char *actor, bool *created,
               cJSON **out, hd_err_t *err);

/* A client's preferences in the API shape:
 *   {client_id, name, email, phone, timezone, locale, channels: [..],
 *    quiet_hours: {start, end} | null, opted_out: [..], digest_time,
 *    consent: {given, at, source}, created_at, updated_at}
 * (absent values are null, times RFC 3339 UTC, clock times "HH:MM"). Cache
 * first, then PostgreSQL (filling the cache). Returns PREFS_OK with *out
 * (caller frees), PREFS_NOT_FOUND, PREFS_ERR_DB or PREFS_ERR_CRYPTO (a stored
 * value failed to decrypt: logged, never returned as garbage). */
int prefs_get(app_t *app, const char *client_id, cJSON **out, hd_err_t *err);

/* A client's preferences shaped for the policy scripts (strategy.decide's
 * prefs, docs/scripting.md):
 *   {timezone, locale, digest_time, channels: [..], opted_out: {sms = true},
 *    consent_given, name?, email?, phone?, quiet_hours? {start, end}}
 * where a member marked "?" is absent (not null) when the client has none.
 * Returns 0 with *out (caller frees), or 0 with *out = NULL when the client
 * has no stored preferences; -1 with err when the database cannot answer or a
 * stored value cannot be decrypted. Cache first, then PostgreSQL. */
int prefs_load(app_t *app, const char *client_id, cJSON **out, hd_err_t *err);

/* Drops the cached row of client_id, for code that changes or deletes the
 * row without prefs_save (erasure, unsubscribe); call it after the commit.
 * Best effort: failures are logged. */
void prefs_cache_forget(app_t *app, const char *client_id);

#endif
