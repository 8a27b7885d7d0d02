/*
 * whatif.h - what-if replay (issue 15 item 3): the stored requests of a
 * period run again through the live policy and through an edited copy of
 * scripts/, in memory: nothing is written, nothing is sent. Each request is
 * decided as it was accepted (message type, urgency, the time of acceptance
 * as `now`, the client's preferences overlaid with the message's own
 * recipient); what was not stored is not replayed: a forced channel or a
 * requested send_at, and preferences as they were then (the current row is
 * used). The report puts the two policies side by side: channel mix,
 * send-time distribution by hour of the client's day, messages that would
 * land in the client's quiet hours, digests, refusals, policy errors, and
 * the most changed decisions with both explanations. Uses base, crypto,
 * store, engine/policy, engine/prefs, engine/recipient.
 */
#ifndef HERALD_ENGINE_WHATIF_H
#define HERALD_ENGINE_WHATIF_H

#include "base/err.h"
#include "crypto/field.h"
#include "lua/runtime.h"
#include "store/pg.h"

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct whatif_opts {
    int64_t from, to; /* Unix seconds: messages accepted in [from, to) */
    int top;          /* how many changed decisions to show (20) */
} whatif_opts_t;

/* The report (caller frees):
 *   {from, to, messages, clients, seconds,
 *    live: {channels: {email, sms, whatsapp, none}, send_hour: [24], quiet_hours,
 *           digests, refusals, errors, first_error?},
 *    edited: {...}, changed, top: [{id, client_id, message_type, urgency, accepted_at,
 *           live: {channel, send_at, batch, explanation}, edited: {...}, shift_s}]}
 * NULL with err when the database cannot be read. */
cJSON *whatif_run(pg_pool_t *db, const fe_keyring_t *kr, lrt_t *live, lrt_t *edited,
                  const whatif_opts_t *o, hd_err_t *err);

#endif
