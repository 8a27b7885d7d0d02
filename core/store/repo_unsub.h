/*
 * repo_unsub.h - what an unsubscribe link does to the store (DESIGN.md §5,
 * /u/{token}): the client a message went to, and the opt-out recorded in one
 * transaction: the channels added to crm_client_preferences.opted_out_channels
 * (a row is created for a client who had none), an audit row
 * ("preferences.unsubscribe", actor "recipient", details {channels, source,
 * communication_id}: the consent ledger), an "unsubscribe" event on the
 * message that carried the link, and the client's stored addresses on those
 * channels in crm_suppressions (reason "unsubscribe"). Uses store/pg.
 */
#ifndef HERALD_STORE_REPO_UNSUB_H
#define HERALD_STORE_REPO_UNSUB_H

#include "base/err.h"
#include "store/pg.h"

#include <stdbool.h>

#define UNSUB_CLIENT_SIZE 201 /* client ids are at most 200 bytes */

typedef struct unsub_target {
    char client_id[UNSUB_CLIENT_SIZE];
    bool has_email, has_phone; /* stored addresses (false without a preferences row) */
    bool opted_out_email, opted_out_sms, opted_out_whatsapp;
} unsub_target_t;

/* The client of message comm_id: 1 with *out, 0 when no such message (purged
 * or erased), -1 with err when the database cannot answer. */
int unsub_find(pg_pool_t *db, const char *comm_id, unsub_target_t *out, hd_err_t *err);

/* Opts client_id out of channels (a comma-separated list of "email", "sms",
 * "whatsapp") because of message comm_id; source: "one_click" or
 * "unsubscribe_link". Idempotent: when every channel is already opted out
 * nothing is written and *changed is false. 0, or -1 with err (nothing
 * written). */
int unsub_record(pg_pool_t *db, const char *client_id, const char *channels, const char *source,
                 const char *comm_id, bool *changed, hd_err_t *err);

#endif
