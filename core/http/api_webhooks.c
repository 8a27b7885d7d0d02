/*
 * api_webhooks.c - delivery receipts from the providers (DESIGN.md §5):
 *
 *   POST /api/crm/webhooks/twilio     form-encoded status callbacks,
 *                                     X-Twilio-Signature
 *   GET  /api/crm/webhooks/whatsapp   Meta's verification challenge
 *   POST /api/crm/webhooks/whatsapp   status notifications and the messages clients
 *                                     send (engine/inbound.h), X-Hub-Signature-256
 *
 * The signature is checked before anything is acted on (Twilio's covers
 * the posted parameters, so the form is decoded first; Meta's covers the
 * raw body, checked before parsing); a bad or missing one is 403 and
 * changes nothing. A malformed body is 400 and changes nothing (a WhatsApp
 * payload is checked whole before any of its statuses is applied). What a
 * receipt does is the engine's (engine/receipt.h): this file parses,
 * checks, calls receipt_handle and answers - 200 once the receipt is
 * recorded or parked, 503 with Retry-After when the database cannot take it.
 * Reading the payloads into receipts is http/webhook_parse.c's.
 */
#include "base/buf.h"
#include "base/log.h"
#include "crypto/hash.h"
#include "engine/receipt.h"
#include "engine/inbound.h"
#include "http/api.h"
#include "http/form.h"
#include "http/webhook_parse.h"
#include "http/webhook_sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- answering once the engine has recorded them ---------------------- */

/* Receipts are recorded by the engine's receipt threads, never on an HTTP
 * thread: the connection is suspended meanwhile, and answered 200 once
 * every receipt is recorded (or parked), 503 with Retry-After when the
 * database could not take one (the provider sends it again) or after
 * RECEIPT_ANSWER_MS. */
#define RECEIPT_ANSWER_MS 10000

static bool settled(http_req_t *req, bool timed_out, bool *ok)
{
    int state = receipt_batch_state(req->wait_obj);
    *ok = state == 0;
    if (state < 0 && !timed_out)
        return false;
    if (!*ok) {
        http_reply_error(req, 503, "unavailable", "cannot record the receipt; retry");
        http_reply_header(req, "Retry-After", "5");
    }
    return true;
}

static bool twilio_answer(http_req_t *req, bool timed_out)
{
    bool ok;
    if (!settled(req, timed_out, &ok))
        return false;
    if (ok) /* Twilio wants a 2xx; an empty TwiML-free body is fine. */
        http_reply_bytes(req, 200, "text/plain", "", 0);
    return true;
}

static bool whatsapp_answer(http_req_t *req, bool timed_out)
{
    bool ok;
    if (!settled(req, timed_out, &ok))
        return false;
    if (ok)
        http_reply_json(req, 200, cJSON_CreateObject());
    return true;
}

static void answer_later(http_req_t *req, receipt_batch_t *b, bool (*fn)(http_req_t *, bool))
{
    req->wait_obj = b;
    req->wait_release = receipt_batch_release;
    /* what goes out if the server stops before the receipts are recorded */
    http_reply_error(req, 503, "unavailable", "shutting down; retry");
    http_reply_header(req, "Retry-After", "5");
    if (!fn(req, false))
        http_suspend(req, RECEIPT_ANSWER_MS, fn);
}

/* ---- Twilio ------------------------------------------------------------- */

void api_webhook_twilio(http_req_t *req)
{
    app_t *app = req->app;
    hd_err_t err;
    form_t f;
    if (form_parse(req->body.data ? req->body.data : "", req->body.len, &f, &err) != 0) {
        http_reply_error(req, 400, "invalid_form", "%s", err.msg);
        return;
    }
    /* The URL Twilio requested, as the outside world names us. */
    char *query = http_raw_query(req);
    buf_t url;
    buf_init(&url);
    buf_puts(&url, app->cfg->public_url);
    while (url.len && url.data[url.len - 1] == '/')
        url.data[--url.len] = '\0';
    buf_puts(&url, req->path);
    if (query) {
        buf_putc(&url, '?');
        buf_puts(&url, query);
    }
    free(query);
    if (!sig_twilio_valid(app->cfg->twilio_token, url.data, &f,
                          http_header(req, "X-Twilio-Signature"))) {
        log_warn("Twilio webhook refused: signature missing or wrong", "url", url.data, "hint",
                 app->cfg->twilio_token ? "the URL must be http.public_url + the path Twilio "
                                          "was given"
                                        : "HERALD_TWILIO_AUTH_TOKEN is not set");
        buf_free(&url);
        form_free(&f);
        http_reply_error(req, 403, "forbidden", "X-Twilio-Signature is missing or does not match");
        return;
    }
    buf_free(&url);
    wh_receipts_t w;
    if (wh_twilio_parse(&f, http_query(req, "comm_id"), &w, &err) != 0) {
        form_free(&f);
        http_reply_error(req, 400, "invalid_field", "%s", err.msg);
        return;
    }
    answer_later(req, receipt_submit(app, w.rs, w.n), twilio_answer);
    wh_receipts_free(&w);
    form_free(&f);
}

/* ---- WhatsApp (Meta) ---------------------------------------------------- */

void api_webhook_whatsapp_verify(http_req_t *req)
{
    app_t *app = req->app;
    const char *mode = http_query(req, "hub.mode");
    const char *token = http_query(req, "hub.verify_token");
    const char *challenge = http_query(req, "hub.challenge");
    const char *want = app->cfg->wa_verify_token;
    bool ok = mode && strcmp(mode, "subscribe") == 0 && want && *want && token &&
              strlen(token) == strlen(want) && hash_ct_equal(token, want, strlen(want));
    if (!ok) {
        log_warn("WhatsApp webhook verification refused", "hint",
                 want && *want ? "hub.mode must be subscribe and hub.verify_token must match"
                               : "HERALD_WHATSAPP_VERIFY_TOKEN is not set");
        http_reply_error(req, 403, "forbidden", "verification refused");
        return;
    }
    /* Echoed as text/plain: a challenge is a number; refuse anything else
     * rather than reflect it. */
    if (challenge == NULL || !wh_plain_token(challenge, 128)) {
        http_reply_error(req, 400, "invalid_field", "hub.challenge: missing or not a token");
        return;
    }
    http_reply_bytes(req, 200, "text/plain", challenge, strlen(challenge));
}

void api_webhook_whatsapp(http_req_t *req)
{
    app_t *app = req->app;
    const char *body = req->body.data ? req->body.data : "";
    /* The signature covers the raw bytes: checked before parsing them. */
    if (!sig_meta_valid(app->cfg->wa_app_secret, body, req->body.len,
                        http_header(req, "X-Hub-Signature-256"))) {
        log_warn("WhatsApp webhook refused: signature missing or wrong", "hint",
                 app->cfg->wa_app_secret ? "X-Hub-Signature-256 must be sha256=<hex HMAC of the "
                                           "raw body with the app secret>"
                                         : "HERALD_WHATSAPP_APP_SECRET is not set");
        http_reply_error(req, 403, "forbidden", "X-Hub-Signature-256 is missing or does not match");
        return;
    }
    wh_receipts_t w;
    hd_err_t err;
    wh_status_t st = wh_whatsapp_parse(body, req->body.len, &w, &err);
    if (st != WH_OK) {
        http_reply_error(req, 400, st == WH_INVALID_JSON ? "invalid_json" : "invalid_field", "%s",
                         err.msg);
        return;
    }
    /* Messages clients sent (a STOP among them) are recorded first: when
     * one cannot be, the whole payload is refused with 503 and Meta sends
     * it again (a time of contact recorded twice keeps the later one). */
    for (int i = 0; i < w.nin; i++) {
        inbound_msg_t m = {.channel = "whatsapp",
                           .from = w.in[i].from,
                           .text = w.in[i].text,
                           .at = w.in[i].at,
                           .source = "webhook:meta"};
        policy_inbound_t what;
        if (inbound_receive(app, &m, &what, &err) != 0) {
            wh_receipts_free(&w);
            http_reply_error(req, 503, "unavailable", "cannot record the messages; retry");
            http_reply_header(req, "Retry-After", "5");
            return;
        }
    }
    /* Meta retries the whole payload on a 503; what was recorded is counted once. */
    answer_later(req, receipt_submit(app, w.rs, w.n), whatsapp_answer);
    wh_receipts_free(&w);
}
