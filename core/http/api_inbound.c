/*
 * api_inbound.c - texts the clients send us (issue 12 item 3):
 *
 *   POST /api/crm/webhooks/twilio/inbound   Twilio's incoming-message webhook
 *                                           (form-encoded, X-Twilio-Signature)
 *
 * The signature is checked as for the status callback (api_webhooks.c): a
 * bad or missing one is 403 and changes nothing. The whole text, trimmed
 * and in any case, is matched against the keywords carriers and Twilio
 * define (CTIA; Twilio Advanced Opt-Out): STOP, STOPALL, UNSUBSCRIBE,
 * CANCEL, END, QUIT opt the sending number out of SMS; START, YES, UNSTOP
 * opt it back in; HELP is recorded. Every client whose stored phone is that
 * number (found by its blind index) changes (store/repo_inbound.h). Any
 * other text is answered and not stored: neither the number nor the text
 * is ever logged. The answer is an empty TwiML <Response/> (Twilio sends
 * its own STOP / HELP replies); 503 with Retry-After when the database
 * cannot take it (Twilio retries).
 */
#include "base/addr.h"
#include "base/buf.h"
#include "base/log.h"
#include "engine/prefs.h"
#include "http/api.h"
#include "http/form.h"
#include "http/webhook_sig.h"
#include "store/repo_inbound.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEYWORD_MAX 16 /* the longest keyword is 11 characters */

static const char *const STOP_WORDS[] = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"};
static const char *const START_WORDS[] = {"START", "YES", "UNSTOP"};

static bool listed(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

/* The text as a keyword: trimmed, upper case; "" when it cannot be one. */
static void keyword_of(const char *body, char out[KEYWORD_MAX])
{
    out[0] = '\0';
    if (body == NULL)
        return;
    while (isspace((unsigned char)*body))
        body++;
    size_t n = strlen(body);
    while (n && isspace((unsigned char)body[n - 1]))
        n--;
    if (n == 0 || n >= KEYWORD_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!isalpha((unsigned char)body[i])) {
            out[0] = '\0';
            return;
        }
        out[i] = (char)toupper((unsigned char)body[i]);
    }
    out[n] = '\0';
}

static bool signed_by_twilio(http_req_t *req, const form_t *f)
{
    app_t *app = req->app;
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
    bool ok = sig_twilio_valid(app->cfg->twilio_token, url.data, f,
                               http_header(req, "X-Twilio-Signature"));
    if (!ok)
        log_warn("Twilio inbound webhook refused: signature missing or wrong", "url", url.data);
    buf_free(&url);
    return ok;
}

static void twiml(http_req_t *req)
{
    static const char empty[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";
    http_reply_bytes(req, 200, "text/xml", empty, sizeof(empty) - 1);
}

void api_webhook_twilio_inbound(http_req_t *req)
{
    app_t *app = req->app;
    hd_err_t err;
    form_t f;
    if (form_parse(req->body.data ? req->body.data : "", req->body.len, &f, &err) != 0) {
        http_reply_error(req, 400, "invalid_form", "%s", err.msg);
        return;
    }
    if (!signed_by_twilio(req, &f)) {
        form_free(&f);
        http_reply_error(req, 403, "forbidden", "X-Twilio-Signature is missing or does not match");
        return;
    }
    const char *from = form_get(&f, "From");
    if (from == NULL || !addr_is_e164(from)) {
        form_free(&f);
        http_reply_error(req, 400, "invalid_field", "From: missing or not an E.164 number");
        return;
    }
    char kw[KEYWORD_MAX];
    keyword_of(form_get(&f, "Body"), kw);
    inbound_act_t act;
    if (listed(kw, STOP_WORDS, sizeof(STOP_WORDS) / sizeof(STOP_WORDS[0])))
        act = INBOUND_OPT_OUT;
    else if (listed(kw, START_WORDS, sizeof(START_WORDS) / sizeof(START_WORDS[0])))
        act = INBOUND_OPT_IN;
    else if (strcmp(kw, "HELP") == 0)
        act = INBOUND_NOTE;
    else {
        form_free(&f);
        twiml(req); /* not a keyword: nothing to record */
        return;
    }
    char index[65];
    if (fe_blind_index(app->keyring, "phone", from, index) != 0) {
        form_free(&f);
        http_reply_error(req, 500, "internal", "cannot compute the number's blind index");
        return;
    }
    form_free(&f);
    char **clients = NULL;
    int n = 0;
    if (inbound_apply(app->db, index, "sms", act, kw, "webhook:twilio", &clients, &n, &err) != 0) {
        log_warn("cannot record an inbound keyword; Twilio retries", "keyword", kw, "reason",
                 err.msg);
        http_reply_error(req, 503, "unavailable", "cannot record the message; retry");
        http_reply_header(req, "Retry-After", "5");
        return;
    }
    for (int i = 0; i < n; i++) {
        prefs_cache_forget(app, clients[i]);
        free(clients[i]);
    }
    free(clients);
    log_info("inbound keyword recorded", "keyword", kw, "channel", "sms");
    twiml(req);
}
