/*
 * api_webhooks.c - delivery receipts from the providers (DESIGN.md §5):
 *
 *   POST /api/crm/webhooks/twilio     form-encoded status callbacks,
 *                                     X-Twilio-Signature
 *   GET  /api/crm/webhooks/whatsapp   Meta's verification challenge
 *   POST /api/crm/webhooks/whatsapp   status notifications, X-Hub-Signature-256
 *
 * The signature is checked before anything is acted on (Twilio's covers
 * the posted parameters, so the form is decoded first; Meta's covers the
 * raw body, checked before parsing); a bad or missing one is 403 and
 * changes nothing. A malformed body is 400 and changes nothing (a WhatsApp
 * payload is checked whole before any of its statuses is applied). What a
 * receipt does is the engine's (engine/receipt.h): this file parses,
 * checks, calls receipt_handle and answers - 200 once the receipt is
 * recorded or parked, 503 with Retry-After when the database cannot take it.
 */
#include "base/buf.h"
#include "base/log.h"
#include "crypto/hash.h"
#include "engine/receipt.h"
#include "http/api.h"
#include "http/form.h"
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

static receipt_kind_t twilio_kind(const char *s)
{
    if (strcmp(s, "sent") == 0)
        return RECEIPT_SENT;
    if (strcmp(s, "delivered") == 0)
        return RECEIPT_DELIVERED;
    if (strcmp(s, "read") == 0)
        return RECEIPT_READ;
    if (strcmp(s, "undelivered") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0)
        return RECEIPT_FAILED;
    return RECEIPT_OTHER; /* queued, accepted, scheduled, sending, receiving ... */
}

/* The fields kept with the event: what the receipt says about delivery,
 * never the phone numbers (From, To) it also carries. */
static char *twilio_details(const form_t *f)
{
    static const char *const keep[] = {"MessageStatus", "SmsStatus",      "ErrorCode",
                                       "ErrorMessage",  "RawDlrDoneDate", "ApiVersion"};
    cJSON *d = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        const char *v = form_get(f, keep[i]);
        if (v)
            cJSON_AddStringToObject(d, keep[i], v);
    }
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    return s;
}

static bool plain_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '='))
            return false;
    }
    return true;
}

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
    const char *sid = form_get(&f, "MessageSid");
    const char *status = form_get(&f, "MessageStatus");
    if (sid == NULL)
        sid = form_get(&f, "SmsSid");
    if (status == NULL)
        status = form_get(&f, "SmsStatus");
    const char *bad = sid == NULL || !plain_token(sid, 64)         ? "MessageSid"
                      : status == NULL || !plain_token(status, 32) ? "MessageStatus"
                                                                   : NULL;
    if (bad) {
        form_free(&f);
        http_reply_error(req, 400, "invalid_field", "%s: missing or not a Twilio value", bad);
        return;
    }
    const char *code = form_get(&f, "ErrorCode");
    if (code && *code == '\0')
        code = NULL;
    /* Counted once per message and status. Not keyed on
     * I-Twilio-Idempotency-Token alone: the signature does not cover that
     * header, so a replayed callback with a fresh token would count again. */
    char dedup[200];
    snprintf(dedup, sizeof(dedup), "twilio:%s:%s", sid, status);
    char *details = twilio_details(&f);
    receipt_t r = {
        .provider = "twilio",
        .channel = "sms",
        .provider_id = sid,
        .comm_hint = http_query(req, "comm_id"),
        .kind = twilio_kind(status),
        .raw_status = status,
        .error_code = code,
        .error_text = form_get(&f, "ErrorMessage"),
        .dedup_key = dedup,
        .details_json = details,
    };
    answer_later(req, receipt_submit(app, &r, 1), twilio_answer);
    free(details);
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
    if (challenge == NULL || !plain_token(challenge, 128)) {
        http_reply_error(req, 400, "invalid_field", "hub.challenge: missing or not a token");
        return;
    }
    http_reply_bytes(req, 200, "text/plain", challenge, strlen(challenge));
}

static receipt_kind_t wa_kind(const char *s)
{
    if (strcmp(s, "sent") == 0)
        return RECEIPT_SENT;
    if (strcmp(s, "delivered") == 0)
        return RECEIPT_DELIVERED;
    if (strcmp(s, "read") == 0)
        return RECEIPT_READ;
    if (strcmp(s, "failed") == 0)
        return RECEIPT_FAILED;
    return RECEIPT_OTHER; /* deleted, warning, ... */
}

static const cJSON *member(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Checks the whole payload; the statuses are collected into *out (borrowed
 * pointers into doc). NULL, or the problem's path. */
static const char *wa_check(const cJSON *doc, const cJSON ***out, size_t *n, char *where, size_t wn)
{
    *out = NULL;
    *n = 0;
    const cJSON *entry = member(doc, "entry");
    if (!cJSON_IsArray(entry))
        return "entry: expected an array";
    size_t cap = 0;
    int ei = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entry)
    {
        const cJSON *changes = member(e, "changes");
        if (!cJSON_IsObject(e) || (changes && !cJSON_IsArray(changes))) {
            snprintf(where, wn, "entry[%d]: expected an object with a changes array", ei);
            free(*out);
            *out = NULL;
            *n = 0;
            return where;
        }
        int ci = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, changes)
        {
            const cJSON *value = member(c, "value");
            const cJSON *statuses = value ? member(value, "statuses") : NULL;
            if (!cJSON_IsObject(c) || (value && !cJSON_IsObject(value)) ||
                (statuses && !cJSON_IsArray(statuses))) {
                snprintf(where, wn, "entry[%d].changes[%d]: malformed value", ei, ci);
                free(*out);
                *out = NULL;
                *n = 0;
                return where;
            }
            int si = 0;
            const cJSON *s;
            cJSON_ArrayForEach(s, statuses)
            {
                const cJSON *id = member(s, "id"), *st = member(s, "status");
                const cJSON *ts = member(s, "timestamp");
                if (!cJSON_IsObject(s) || !cJSON_IsString(id) ||
                    !plain_token(id->valuestring, 200) || !cJSON_IsString(st) ||
                    !plain_token(st->valuestring, 32) ||
                    (ts && !cJSON_IsString(ts) && !cJSON_IsNumber(ts))) {
                    snprintf(where, wn,
                             "entry[%d].changes[%d].value.statuses[%d]: needs id and status "
                             "strings (and a timestamp string, if any)",
                             ei, ci, si);
                    free(*out);
                    *out = NULL;
                    *n = 0;
                    return where;
                }
                if (*n == cap) {
                    cap = cap ? 2 * cap : 8;
                    const cJSON **p = realloc(*out, cap * sizeof(*p));
                    if (p == NULL)
                        abort();
                    *out = p;
                }
                (*out)[(*n)++] = s;
                si++;
            }
            ci++;
        }
        ei++;
    }
    return NULL;
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
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, req->body.len, &end, false);
    if (!cJSON_IsObject(doc)) {
        size_t off = end ? (size_t)(end - body) : 0;
        cJSON_Delete(doc);
        http_reply_error(req, 400, "invalid_json", "expected a JSON object (problem at byte %zu)",
                         off);
        return;
    }
    const cJSON **statuses = NULL;
    size_t n = 0;
    char where[200];
    const char *problem = wa_check(doc, &statuses, &n, where, sizeof(where));
    if (problem) {
        cJSON_Delete(doc);
        http_reply_error(req, 400, "invalid_field", "%s", problem);
        return;
    }
    receipt_t *rs = xcalloc(n + 1, sizeof(receipt_t));
    char **owned = xcalloc(3 * n + 1, sizeof(char *)); /* dedup keys, details, codes */
    for (size_t i = 0; i < n; i++) {
        const cJSON *s = statuses[i];
        const char *id = member(s, "id")->valuestring;
        const char *st = member(s, "status")->valuestring;
        const cJSON *ts = member(s, "timestamp");
        int64_t at = cJSON_IsString(ts)   ? strtoll(ts->valuestring, NULL, 10)
                     : cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble
                                          : 0;
        const cJSON *errors = member(s, "errors");
        const cJSON *e0 = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : NULL;
        const cJSON *code = e0 ? member(e0, "code") : NULL;
        const cJSON *title = e0 ? member(e0, "title") : NULL;
        const cJSON *msg = e0 ? member(e0, "message") : NULL;
        char codebuf[32] = "";
        if (cJSON_IsNumber(code))
            snprintf(codebuf, sizeof(codebuf), "%d", code->valueint);
        else if (cJSON_IsString(code))
            snprintf(codebuf, sizeof(codebuf), "%.31s", code->valuestring);
        const cJSON *opaque = member(s, "biz_opaque_callback_data");
        buf_t dk;
        buf_init(&dk);
        buf_printf(&dk, "wa:%s:%s", id, st);
        char *dedup = owned[3 * i] = buf_steal(&dk);
        /* kept: the status and its errors; not recipient_id (a phone number) */
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "status", st);
        if (errors)
            cJSON_AddItemToObject(d, "errors", cJSON_Duplicate(errors, true));
        if (member(s, "conversation"))
            cJSON_AddItemToObject(d, "conversation",
                                  cJSON_Duplicate(member(s, "conversation"), true));
        if (member(s, "pricing"))
            cJSON_AddItemToObject(d, "pricing", cJSON_Duplicate(member(s, "pricing"), true));
        char *details = owned[3 * i + 1] = cJSON_PrintUnformatted(d);
        cJSON_Delete(d);
        char *code_text = owned[3 * i + 2] = codebuf[0] ? xstrdup(codebuf) : NULL;
        rs[i] = (receipt_t){
            .provider = "whatsapp",
            .channel = "whatsapp",
            .provider_id = id,
            .comm_hint = cJSON_IsString(opaque) ? opaque->valuestring : NULL,
            .kind = wa_kind(st),
            .raw_status = st,
            .error_code = code_text,
            .error_text = cJSON_IsString(msg)     ? msg->valuestring
                          : cJSON_IsString(title) ? title->valuestring
                                                  : NULL,
            .dedup_key = dedup,
            .occurred_at = at > 0 ? at : 0,
            .details_json = details,
        };
    }
    /* Meta retries the whole payload on a 503; what was recorded is counted once. */
    answer_later(req, receipt_submit(app, rs, (int)n), whatsapp_answer);
    for (size_t i = 0; i < 3 * n; i++)
        free(owned[i]);
    free(owned);
    free(rs);
    free(statuses);
    cJSON_Delete(doc);
}
