/*
 * recipient.h - the client as the policy sees it for one message: the
 * stored preferences (engine/prefs) overlaid with the request's own
 * `recipient` ({name, email, phone, timezone, locale}), which holds for
 * that message only. One merge, used at acceptance and before every attempt.
 */
#ifndef HERALD_ENGINE_RECIPIENT_H
#define HERALD_ENGINE_RECIPIENT_H

#include "base/err.h"
#include "engine/app.h"
#include "engine/prefs.h"

#include <cjson/cJSON.h>

/* Overlays override's non-empty string members on prefs (an object). */
void recipient_merge(cJSON *prefs, const cJSON *override);

/* Stored preferences of client_id (an empty object when none) overlaid with
 * the message's recipient, kept encrypted with it (recipient_enc, or NULL).
 * current: the version of the client's row known to be current (before an
 * attempt, the claim's), or NULL for any cached copy (see prefs_load).
 * Caller frees; NULL with err when the preferences or the recipient cannot
 * be read. */
cJSON *recipient_load(app_t *app, const char *client_id, const prefs_version_t *current,
                      const char *recipient_enc, hd_err_t *err);

#endif
