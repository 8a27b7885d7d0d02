/*
 * suppress.h - the suppression facts the policy sees before every attempt
 * (issue 12 item 2): the client's addresses, by blind index, looked up in
 * crm_suppressions (store/repo_suppress). strategy.refusal holds the rule.
 */
#ifndef HERALD_ENGINE_SUPPRESS_H
#define HERALD_ENGINE_SUPPRESS_H

#include "base/err.h"
#include "engine/app.h"
#include "transport/transport.h"

#include <cjson/cJSON.h>

/* Sets who.suppressed = {channel = reason, ...} for the entries on who.email
 * (email) and who.phone (sms, whatsapp), who.last_inbound = {channel = Unix
 * seconds} of the last message who.phone sent us (sms, whatsapp: the
 * WhatsApp 24-hour window) and who.window_closed = {channel = Unix seconds}
 * the provider last refused free-form text as outside that window; empty
 * objects when none. One round trip. 0, or
 * -1 with err when the database cannot answer (never send without it). */
int suppress_facts(app_t *app, cJSON *who, hd_err_t *err);

/* suppress_facts for who[0..n) (n at most SUPPRESS_MANY_MAX; a NULL entry
 * is skipped) in one round trip. 0, or -1 with err (nothing is set then
 * that a caller may trust: it reads them one by one). */
#define SUPPRESS_MANY_MAX 64
int suppress_facts_many(app_t *app, cJSON *const *who, int n, hd_err_t *err);

/* Puts address on the suppression list of channel with reason (classify's
 * suppress: a hard bounce, a STOP the provider reports, a number that is
 * not a mobile), source "classify", message comm_id. Best effort: a
 * failure is logged (never the address) and the next bounce tries again. */
void suppress_address(app_t *app, tr_channel_t ch, const char *address, const char *reason,
                      const char *comm_id);

#endif
