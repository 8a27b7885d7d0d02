/*
 * api_unsub.c - the unsubscribe page of every email (DESIGN.md §5):
 *
 *   GET  /u/{token}   a small HTML page (no script) naming the client's
 *                     channels, with two buttons (forms posting here):
 *                     email only, or everything. Never unsubscribes.
 *   POST /u/{token}   "List-Unsubscribe=One-Click" (RFC 8058: a mail
 *                     client's one-click, no cookie or login): email, 200,
 *                     no redirect. "scope=email" or "scope=all" (the page's
 *                     buttons): those channels, then a confirmation page.
 *                     Any other body: 400.
 *
 * The token is a tracking token of kind 'u' (engine/tracking.h): signed
 * with a key of the keyring, naming the message that carried it, never
 * expiring. A tampered or unknown token answers 404 and changes nothing; a
 * replay is harmless (store/repo_unsub.h writes only what changes). A token
 * whose message is gone (an erased client) answers that the address is
 * unsubscribed, and nothing else: no page says whether an address exists.
 */
#include "base/buf.h"
#include "base/log.h"
#include "engine/prefs.h"
#include "engine/tracking.h"
#include "http/api.h"
#include "http/form.h"
#include "store/repo_unsub.h"

#include <string.h>
#include <time.h>

static void page(http_req_t *req, int status, const char *title, const char *body)
{
    buf_t b;
    buf_init(&b);
    buf_printf(&b,
               "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
               "content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\">"
               "<title>%s</title></head><body style=\"font-family:sans-serif;max-width:32em;"
               "margin:2em auto;padding:0 1em\"><h1 style=\"font-size:1.3em\">%s</h1>%s"
               "</body></html>",
               title, title, body);
    http_reply_bytes(req, status, "text/html; charset=utf-8", b.data, b.len);
    http_reply_header(req, "Cache-Control", "no-store, private");
    http_reply_header(req, "Referrer-Policy", "no-referrer");
    buf_free(&b);
}

static void done_page(http_req_t *req)
{
    page(req, 200, "You are unsubscribed",
         "<p>This address is unsubscribed. You will not receive these messages any more.</p>");
}

/* The message the token names, when it is a valid unsubscribe token. */
static bool claim_of(http_req_t *req, track_claim_t *c)
{
    const char *token = router_param(&req->match, "token");
    return track_verify_ring(&req->app->track, token, (int64_t)time(NULL), c) == TRACK_OK &&
           c->kind == 'u';
}

static void invalid(http_req_t *req)
{
    page(req, 404, "Link not valid",
         "<p>This unsubscribe link is not valid. Please use the link in the message you "
         "received.</p>");
}

static void unavailable(http_req_t *req, const hd_err_t *err)
{
    log_warn("cannot read or record an unsubscribe", "reason", err->msg);
    page(req, 503, "Please try again",
         "<p>We cannot record your choice right now. Please try again in a few minutes.</p>");
}

void api_unsub_page(http_req_t *req)
{
    track_claim_t c;
    if (!claim_of(req, &c)) {
        invalid(req);
        return;
    }
    unsub_target_t t;
    hd_err_t err;
    int found = unsub_find(req->app->db, c.comm_id, &t, &err);
    if (found < 0) {
        unavailable(req, &err);
        return;
    }
    if (found == 0 || (t.opted_out_email && t.opted_out_sms && t.opted_out_whatsapp)) {
        done_page(req);
        return;
    }
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<p>We send you messages by email%s.</p>",
               t.has_phone ? ", text message (SMS) and WhatsApp" : "");
    if (t.opted_out_email)
        buf_puts(&b, "<p>This address is already unsubscribed from email.</p>");
    else
        buf_puts(&b, "<form method=\"post\"><input type=\"hidden\" name=\"scope\" "
                     "value=\"email\"><p><button type=\"submit\">Unsubscribe from email"
                     "</button></p></form>");
    buf_puts(&b, "<form method=\"post\"><input type=\"hidden\" name=\"scope\" value=\"all\">"
                 "<p><button type=\"submit\">Unsubscribe from everything</button></p></form>");
    page(req, 200, "Unsubscribe", b.data);
    buf_free(&b);
}

void api_unsub_post(http_req_t *req)
{
    track_claim_t c;
    if (!claim_of(req, &c)) {
        invalid(req);
        return;
    }
    form_t f = {0};
    hd_err_t err;
    if (form_parse(req->body.data ? req->body.data : "", req->body.len, &f, &err) != 0) {
        http_reply_error(req, 400, "invalid_body", "%s", err.msg);
        return;
    }
    const char *one = form_get(&f, "List-Unsubscribe");
    const char *scope = form_get(&f, "scope");
    const char *channels = NULL, *source = NULL;
    if (one && strcmp(one, "One-Click") == 0)
        channels = "email", source = "one_click";
    else if (scope && strcmp(scope, "email") == 0)
        channels = "email", source = "unsubscribe_link";
    else if (scope && strcmp(scope, "all") == 0)
        channels = "email,sms,whatsapp", source = "unsubscribe_link";
    form_free(&f);
    if (channels == NULL) {
        http_reply_error(req, 400, "invalid_body",
                         "the body must be List-Unsubscribe=One-Click (RFC 8058), scope=email "
                         "or scope=all");
        return;
    }
    unsub_target_t t;
    int found = unsub_find(req->app->db, c.comm_id, &t, &err);
    bool changed = false;
    if (found < 0 || (found == 1 && unsub_record(req->app->db, t.client_id, channels, source,
                                                 c.comm_id, &changed, &err) != 0)) {
        unavailable(req, &err);
        return;
    }
    if (changed) {
        prefs_cache_forget(req->app, t.client_id);
        log_info("a recipient unsubscribed", "comm_id", c.comm_id, "channels", channels, "source",
                 source);
    }
    if (strcmp(source, "one_click") == 0) {
        /* RFC 8058: 200, no redirect; the mail client shows nothing */
        http_reply_bytes(req, 200, "text/plain; charset=utf-8", "unsubscribed\n", 13);
        return;
    }
    done_page(req);
}
