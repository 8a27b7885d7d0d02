/*
 * inbound.h - messages clients send us (issue 12 item 3): a text that
 * arrives through a provider's inbound webhook (Twilio's incoming-message
 * webhook for SMS, Meta's `messages` notifications for WhatsApp).
 *
 * The number's time of contact is kept (crm_inbound_contacts, by blind
 * index: the WhatsApp 24-hour window), and the policy (inbound.keyword)
 * says whether the text is a keyword: STOP opts the number out of the
 * channel and suppresses it, START lifts that, HELP is recorded; the store
 * side is store/repo_inbound.h. Neither the number nor the text is ever
 * logged. Uses base, store, engine/policy, engine/prefs.
 */
#ifndef HERALD_ENGINE_INBOUND_H
#define HERALD_ENGINE_INBOUND_H

#include "base/err.h"
#include "engine/app.h"
#include "engine/policy.h"
#include "transport/transport.h"

#include <stdint.h>

typedef struct inbound_msg {
    const char *channel; /* "sms" or "whatsapp" */
    const char *from;    /* the sender, E.164 */
    const char *text;    /* the text, or NULL (a picture, a location...) */
    int64_t at;          /* when it was sent (Unix seconds); 0 or later than now: now */
    const char *source;  /* "webhook:twilio", "webhook:meta": the consent ledger's source */
} inbound_msg_t;

/* Records m and does what the policy answers (*what). 0; -1 with err when
 * the policy or the database cannot answer: nothing may have been done
 * about a keyword, so the provider must be asked to send it again (503). */
int inbound_receive(app_t *app, const inbound_msg_t *m, policy_inbound_t *what, hd_err_t *err);

/* The provider refused free-form text to phone on ch as outside its
 * customer-service window (classify's window_closed, Meta 131047): recorded
 * so the next attempt's policy sees who.window_closed. Best effort: a
 * failure is logged (never the number); the policy then sees the old facts
 * and the provider refuses again. */
void inbound_window_closed_for(app_t *app, tr_channel_t ch, const char *phone, const char *comm_id);

#endif
