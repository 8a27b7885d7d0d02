/*
 * repo_suppress.h - the suppression list (crm_suppressions): addresses never
 * sent to on a channel, keyed by the address's blind index (crypto/field.h
 * fe_blind_index, the same as crm_client_preferences), so an entry outlives
 * its client and catches the address under any client id. Uses store/pg.
 */
#ifndef HERALD_STORE_REPO_SUPPRESS_H
#define HERALD_STORE_REPO_SUPPRESS_H

#include "base/err.h"
#include "store/pg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define SUPP_LIST_MAX 500 /* entries one GET lists at most */

/* Adds out[channel] = reason to the object out for every entry on the
 * email index (channel email) or the phone index (sms, whatsapp), and
 * inbound[channel] = Unix seconds of the last message the phone sent us on
 * that channel and closed[channel] = Unix seconds the provider last said
 * its customer-service window was closed (crm_inbound_contacts), in one
 * statement; either index may be NULL. 0, or -1 with err. */
/* The facts of supp_facts for n recipients at once, in one statement:
 * email_index[i] and phone_index[i] (either NULL) fill out[i], inbound[i]
 * and closed[i] (objects the caller made). 0, or -1 with err. */
int supp_facts_many(pg_pool_t *db, int n, const char *const *email_index,
                    const char *const *phone_index, cJSON **out, cJSON **inbound, cJSON **closed,
                    hd_err_t *err);

int supp_facts(pg_pool_t *db, const char *email_index, const char *phone_index, cJSON *out,
               cJSON *inbound, cJSON *closed, hd_err_t *err);

/* Adds an entry (the first reason stays: an existing entry is kept, and
 * *created is false) with an audit row ("suppression.add") when new.
 * *id: the entry's id. 0, or -1 with err. */
int supp_add(pg_pool_t *db, const char *channel, const char *address_index, const char *reason,
             const char *source, const char *actor, int64_t *id, bool *created, hd_err_t *err);

/* The newest entries (at most limit, after the id before_id when > 0), of
 * one channel when channel is not NULL: a JSON array of {id, channel,
 * address_index, reason, source, communication_id, created_at}. NULL with
 * err. */
cJSON *supp_list(pg_pool_t *db, const char *channel, int limit, int64_t before_id, hd_err_t *err);

/* Lifts entry id with an audit row ("suppression.lift", details {channel,
 * address_index, reason}). 1 lifted, 0 no such entry, -1 with err. */
int supp_lift(pg_pool_t *db, int64_t id, const char *actor, hd_err_t *err);

#endif
