/*
 * webhook_parse.h - the providers' delivery receipts read from their
 * payloads, with no server and no database: what api_webhooks.c does between
 * checking the signature and handing the receipts to the engine. Pure, so the
 * fuzz harnesses (tests/fuzz/fuzz_twilio.c, fuzz_whatsapp.c) reach it.
 *
 * What is kept with a receipt's event (details_json) is what it says about
 * delivery, never the phone numbers it also carries (Twilio's From and To,
 * Meta's recipient_id).
 */
#ifndef HERALD_HTTP_WEBHOOK_PARSE_H
#define HERALD_HTTP_WEBHOOK_PARSE_H

#include "base/err.h"
#include "http/form.h"
#include "store/repo_receipts.h"

#include <stddef.h>
#include <stdint.h>

/* The receipts of one payload; rs[i] borrows from the parsed payload (the
 * form for Twilio, a JSON document kept here for Meta) and from strings owned
 * here. Freed with wh_receipts_free. */
/* A message a client sent us (Meta's value.messages[]). */
typedef struct wh_inbound {
    char from[24];    /* E.164: "+" and Meta's wa_id digits */
    const char *text; /* text.body, a quick-reply button's text or an interactive
                         reply's title; NULL for anything else (media, location...) */
    int64_t at;       /* Unix seconds; 0: not given */
} wh_inbound_t;

typedef struct wh_receipts {
    receipt_t *rs;
    int n;
    wh_inbound_t *in; /* Meta only: the messages clients sent, in order */
    int nin;
    void *doc;    /* cJSON, Meta only */
    char **owned; /* dedup keys, details, error codes */
    size_t nowned;
} wh_receipts_t;

/* Provider ids and statuses: [A-Za-z0-9._:=-], 1 to max bytes. */
bool wh_plain_token(const char *s, size_t max);

/* The receipt of a Twilio status callback from its decoded form (f must
 * outlive out). 0, or -1 with err naming the field ("MessageSid: missing or
 * not a Twilio value"). comm_hint: our id from the callback URL, or NULL. */
int wh_twilio_parse(const form_t *f, const char *comm_hint, wh_receipts_t *out, hd_err_t *err);

typedef enum { WH_OK = 0, WH_INVALID_JSON, WH_INVALID_FIELD } wh_status_t;

/* The receipts of a Meta (WhatsApp) notification body, and the messages
 * clients sent (out->in). The whole payload is checked before any receipt
 * is built: WH_INVALID_JSON (not a JSON object, err says at which byte) or
 * WH_INVALID_FIELD (err has the path of the first bad status or message)
 * and out holds nothing. */
wh_status_t wh_whatsapp_parse(const char *body, size_t len, wh_receipts_t *out, hd_err_t *err);

void wh_receipts_free(wh_receipts_t *w);

#endif
