/*
 * repo_inbound.h - what an inbound text (STOP, START, HELP) does to the store:
 * every client whose stored phone has the blind index given (one number may
 * belong to several client ids) is opted out of, or back into, a channel in
 * crm_client_preferences.opted_out_channels, with an audit row per client
 * ("preferences.inbound", actor "recipient", details {keyword, channel,
 * opted_out, source}: the consent ledger). The number itself goes on the
 * suppression list (channel, reason opt_out) at a STOP, and comes off it
 * (an opt_out or unsubscribe entry, audited) at a START. Uses store/pg.
 */
#ifndef HERALD_STORE_REPO_INBOUND_H
#define HERALD_STORE_REPO_INBOUND_H

#include "base/err.h"
#include "store/pg.h"

#include <stdint.h>

typedef enum { INBOUND_OPT_OUT, INBOUND_OPT_IN, INBOUND_NOTE } inbound_act_t;

/* Applies act on channel for every client with phone_index; keyword (upper
 * case, e.g. "STOP") and source ("webhook:twilio") go to the ledger. A
 * client already in the state asked for is left as it is (no audit row);
 * INBOUND_NOTE changes nothing and writes the audit row alone. On 0,
 * *clients (caller frees each and the array) lists the client ids whose
 * row changed (*n of them); -1 with err, nothing written. */
int inbound_apply(pg_pool_t *db, const char *phone_index, const char *channel, inbound_act_t act,
                  const char *keyword, const char *source, char ***clients, int *n, hd_err_t *err);

/* Records that the number with phone_index wrote to us on channel at the
 * time at (Unix seconds; the later of this and the time already kept
 * stays), counting its messages. 0, or -1 with err. */
int inbound_touch(pg_pool_t *db, const char *channel, const char *phone_index, int64_t at,
                  hd_err_t *err);

/* Records that the provider refused free-form text to the number with
 * phone_index as outside its customer-service window, now (Meta 131047).
 * 0, or -1 with err. */
int inbound_window_closed(pg_pool_t *db, const char *channel, const char *phone_index,
                          hd_err_t *err);

#endif
