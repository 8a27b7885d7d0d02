/*
 * api_inbound.c - texts the clients send us (issue 12 item 3):
 *
 *   POST /api/crm/webhooks/twilio/inbound   Twilio's incoming-message webhook
 *                                           (form-encoded, X-Twilio-Signature)
 *
 * The signature is checked as for the status callback (api_webhooks.c): a
 * bad or missing one is 403 and changes nothing. The engine records the
 * number's time of contact and does what the policy says the text means
 * (scripts/inbound.lua: STOP, START, HELP and the like; engine/inbound.h).
 * Neither the number nor the text is ever logged. The answer is an empty
 * TwiML <Response/> (Twilio sends its own STOP / HELP replies); 503 with
 * Retry-After when the engine cannot take it (Twilio retries). WhatsApp's
 * inbound messages come with Meta's status notifications (api_webhooks.c).
 */
#include "base/addr.h"
#include "base/buf.h"
#include "base/log.h"
#include "engine/inbound.h"
#include "http/api.h"
#include "http/form.h"
#include "http/webhook_sig.h"

#include <stdlib.h>
#include <string.h>

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
    const char *body = form_get(&f, "Body");
    inbound_msg_t m = {.channel = "sms", .from = from, .text = body, .source = "webhook:twilio"};
    policy_inbound_t what;
    int rc = inbound_receive(app, &m, &what, &err);
    form_free(&f);
    if (rc != 0) {
        http_reply_error(req, 503, "unavailable", "cannot record the message; retry");
        http_reply_header(req, "Retry-After", "5");
        return;
    }
    twiml(req);
}
