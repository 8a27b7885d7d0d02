/*
 * api_comms.c - the send API (DESIGN.md §5):
 *   POST   /api/crm/communications        (send)  validate, decide, store, 202
 *   GET    /api/crm/communications        (read)  history with filters, cursor pages
 *   GET    /api/crm/communications/{id}   (read)  one message, its attempts and events
 *   DELETE /api/crm/communications/{id}   (send)  cancel what no provider has yet
 * Uses store/repo_prefs for the client, the policy's strategy.decide, and
 * store/repo_comms to write the message and its job in one transaction.
 */
#include "base/buf.h"
#include "base/log.h"
#include "base/timefmt.h"
#include "crypto/codec.h"
#include "crypto/hash.h"
#include "store/repo_idem.h"
#include "base/tz.h"
#include "crypto/field.h"
#include "http/api.h"
#include "engine/worker.h"
#include "store/repo_comms.h"
#include "engine/prefs.h"
#include "transport/mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONTEXT_BYTES (64 * 1024)

static bool is_e164(const char *p)
{
    if (p == NULL || *p != '+')
        return false;
    size_t n = strlen(p + 1);
    return n >= 8 && n <= 15 && strspn(p + 1, "0123456789") == n;
}

static bool id_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20)
            return false;
    return true;
}

#define MAX_ATTACHMENTS      10
#define MAX_ATTACHMENT_BYTES (10 * 1024 * 1024)

/* attachments: [{filename, content_type, content_base64}] for the email
 * channel (the blueprint PDF). Checked here, decoded again at send time;
 * returns the job payload {"attachments": [...]} or NULL (none, or *bad
 * after replying 400). */
static char *attachments_of(http_req_t *req, bool *bad)
{
    *bad = false;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(req->json, "attachments");
    if (list == NULL || cJSON_IsNull(list))
        return NULL;
    const char *why = NULL;
    int index = -1;
    size_t total = 0;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > MAX_ATTACHMENTS)
        why = "expected a list of at most 10 {filename, content_type, content_base64}";
    const cJSON *a, *items = cJSON_IsArray(list) ? list : NULL;
    cJSON_ArrayForEach(a, items)
    {
        index++;
        if (why)
            break;
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(a, "filename");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(a, "content_type");
        const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(a, "content_base64");
        hd_err_t err;
        uint8_t *raw = NULL;
        size_t n = 0;
        if (!cJSON_IsObject(a) || cJSON_GetArraySize(a) != 3 || !cJSON_IsString(fn) ||
            !cJSON_IsString(ct) || !cJSON_IsString(b64))
            why = "expected exactly {filename, content_type, content_base64}, all strings";
        else if (!id_text(fn->valuestring, 255) ||
                 mime_check_header_value("filename", fn->valuestring, strlen(fn->valuestring),
                                         &err) != 0)
            why = "filename: 1 to 255 printable characters";
        else if (strchr(ct->valuestring, '/') == NULL || strpbrk(ct->valuestring, " ;\r\n"))
            why = "content_type: a type/subtype like application/pdf";
        else if (b64_decode(b64->valuestring, strlen(b64->valuestring), &raw, &n) != 0)
            why = "content_base64: not valid base64";
        free(raw);
        total += n;
        if (!why && total > MAX_ATTACHMENT_BYTES)
            why = "larger than 10 MiB in all";
    }
    if (why) {
        *bad = true;
        if (index >= 0 && cJSON_IsArray(list))
            http_reply_error(req, 400, "invalid_request", "attachments[%d]: %s", index, why);
        else
            http_reply_error(req, 400, "invalid_request", "attachments: %s", why);
        return NULL;
    }
    cJSON *payload = cJSON_CreateObject();
    cJSON_AddItemToObject(payload, "attachments", cJSON_Duplicate(list, true));
    char *s = cJSON_PrintUnformatted(payload);
    cJSON_Delete(payload);
    /* freed with the request, whichever way the handler returns */
    if (s && req->nscratch < HTTP_MAX_SCRATCH) {
        req->scratch[req->nscratch++] = s;
        return s;
    }
    free(s);
    *bad = true;
    http_reply_error(req, 500, "internal", "cannot keep the attachments");
    return NULL;
}

/* A required or optional string member; replies 400 and returns false when
 * it is the wrong type or shape. */
static bool get_str(http_req_t *req, const char *name, bool required, size_t max, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->json, name);
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v)) {
        if (required)
            http_reply_error(req, 400, "invalid_request", "%s: required", name);
        return !required;
    }
    if (!cJSON_IsString(v) || !id_text(v->valuestring, max)) {
        http_reply_error(req, 400, "invalid_request",
                         "%s: expected a string of 1 to %zu "
                         "characters",
                         name, max);
        return false;
    }
    *out = v->valuestring;
    return true;
}

/* The request's recipient override, checked: {name, email, phone, timezone,
 * locale}. Returns the cleaned object or NULL after replying 400. */
static cJSON *recipient_of(http_req_t *req, bool *bad)
{
    *bad = false;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(req->json, "recipient");
    if (r == NULL || cJSON_IsNull(r))
        return NULL;
    if (!cJSON_IsObject(r)) {
        *bad = true;
        http_reply_error(req, 400, "invalid_request", "recipient: expected an object");
        return NULL;
    }
    static const char *const allowed[] = {"name", "email", "phone", "timezone", "locale"};
    cJSON *out = cJSON_CreateObject();
    const cJSON *f;
    cJSON_ArrayForEach(f, r)
    {
        bool known = false;
        for (size_t i = 0; i < 5; i++)
            known |= strcmp(f->string, allowed[i]) == 0;
        hd_err_t err;
        const char *why = NULL;
        if (!known)
            why = "unknown field (expected name, email, phone, timezone, locale)";
        else if (!cJSON_IsString(f) || !id_text(f->valuestring, 254))
            why = "expected a string of 1 to 254 characters";
        else if (strcmp(f->string, "email") == 0 && mime_check_address(f->valuestring, &err))
            why = "not an email address";
        else if (strcmp(f->string, "phone") == 0 && !is_e164(f->valuestring))
            why = "expected an E.164 number like +14155550100";
        else if (strcmp(f->string, "timezone") == 0 && tz_get(f->valuestring, NULL) == NULL)
            why = "not an IANA time zone";
        if (why) {
            *bad = true;
            http_reply_error(req, 400, "invalid_request", "recipient.%s: %s", f->string, why);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_AddStringToObject(out, f->string, f->valuestring);
    }
    return out;
}

static void create(http_req_t *req, const char *idem_key);

/* ?wait=S: answers once the message has its first outcome (no longer
 * queued or sending), or after S seconds, with the status at that moment. */
static bool wait_outcome(http_req_t *req, bool timed_out)
{
    cJSON *doc = cJSON_Parse(req->wait_data);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    char status[16] = "";
    bool done = false;
    if (cJSON_IsString(id) && comms_status(req->app->db, id->valuestring, status, NULL) == 0)
        done = strcmp(status, "queued") != 0 && strcmp(status, "sending") != 0;
    if ((done || timed_out) && status[0]) {
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "status", cJSON_CreateString(status));
        char *body = cJSON_PrintUnformatted(doc);
        http_reply_bytes(req, 202, "application/json", body, strlen(body));
        free(body);
    }
    cJSON_Delete(doc);
    return done;
}

/* POST /api/crm/communications: the Idempotency-Key dance around create(). */
void api_comms_create(http_req_t *req)
{
    app_t *app = req->app;
    const char *key = http_header(req, "Idempotency-Key");
    if (key == NULL) {
        create(req, NULL);
        return;
    }
    if (!id_text(key, 255)) {
        http_reply_error(req, 400, "invalid_request",
                         "Idempotency-Key: expected 1 to 255 printable characters");
        return;
    }
    /* The request is the method, the path and the exact body bytes. */
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "POST %s\n", req->path);
    buf_append(&b, req->body.data ? req->body.data : "", req->body.len);
    char hash[65];
    hash_sha256_hex(b.data, b.len, hash);
    buf_free(&b);
    int status = 0;
    char *body = NULL;
    hd_err_t err;
    switch (idem_begin(app->db, req->principal.sub, key, hash, &status, &body, &err)) {
    case IDEM_NEW:
        create(req, key);
        if (req->status != 202) /* nothing was created: the key may be used again */
            idem_abandon(app->db, req->principal.sub, key);
        break;
    case IDEM_REPLAY:
        http_reply_bytes(req, status, "application/json", body, strlen(body));
        http_reply_header(req, "Idempotent-Replayed", "true");
        break;
    case IDEM_MISMATCH:
        http_reply_error(req, 422, "idempotency_mismatch",
                         "this Idempotency-Key was used with a different request");
        break;
    case IDEM_IN_PROGRESS:
        http_reply_error(req, 409, "idempotency_in_progress",
                         "a request with this Idempotency-Key is still being processed");
        http_reply_header(req, "Retry-After", "1");
        break;
    case IDEM_ERROR:
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        break;
    }
    free(body);
}

static void create(http_req_t *req, const char *idem_key)
{
    app_t *app = req->app;
    int wait_ms = 0;
    const char *wait = http_query(req, "wait");
    if (wait) {
        char *end;
        double w = strtod(wait, &end);
        if (*wait == '\0' || *end != '\0' || !(w >= 0 && w <= 30)) {
            http_reply_error(req, 400, "invalid_request", "wait: expected seconds from 0 to 30");
            return;
        }
        wait_ms = (int)(w * 1000);
    }
    cJSON *body = req->json;
    static const char *const known[] = {"plan_id", "client_id", "message_type",
                                        "urgency", "context",   "recipient",
                                        "channel", "send_at",   "attachments"};
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strcmp(f->string, known[i]) == 0;
        if (!ok) {
            http_reply_error(req, 400, "invalid_request", "%s: unknown field", f->string);
            return;
        }
    }
    const char *plan, *client, *type, *urgency, *channel;
    if (!get_str(req, "plan_id", true, 200, &plan) ||
        !get_str(req, "client_id", true, 200, &client) ||
        !get_str(req, "message_type", true, 64, &type) ||
        !get_str(req, "urgency", false, 16, &urgency) ||
        !get_str(req, "channel", false, 16, &channel))
        return;
    for (const char *p = type; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_')) {
            http_reply_error(req, 400, "invalid_request",
                             "message_type: lower-case letters, digits and _ only");
            return;
        }
    if (urgency && strcmp(urgency, "low") && strcmp(urgency, "normal") && strcmp(urgency, "high") &&
        strcmp(urgency, "critical")) {
        http_reply_error(req, 400, "invalid_request",
                         "urgency: expected low, normal, high or critical");
        return;
    }
    if (channel && strcmp(channel, "email") && strcmp(channel, "sms") &&
        strcmp(channel, "whatsapp")) {
        http_reply_error(req, 400, "invalid_request", "channel: expected email, sms or whatsapp");
        return;
    }
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(body, "context");
    if (ctx != NULL && !cJSON_IsObject(ctx)) {
        http_reply_error(req, 400, "invalid_request", "context: expected an object");
        return;
    }
    char *ctx_json = ctx ? cJSON_PrintUnformatted(ctx) : NULL;
    if (ctx_json == NULL)
        ctx_json = xstrdup("{}");
    if (strlen(ctx_json) > MAX_CONTEXT_BYTES) {
        free(ctx_json);
        http_reply_error(req, 422, "invalid_request", "context: larger than %d bytes",
                         MAX_CONTEXT_BYTES);
        return;
    }
    int64_t send_at = 0;
    const char *sa;
    if (!get_str(req, "send_at", false, 64, &sa)) {
        free(ctx_json);
        return;
    }
    if (sa && timefmt_parse(sa, &send_at) != 0) {
        free(ctx_json);
        http_reply_error(req, 400, "invalid_request",
                         "send_at: expected an RFC 3339 time like 2026-11-28T09:00:00Z");
        return;
    }
    bool bad;
    char *payload = attachments_of(req, &bad);
    if (bad) {
        free(ctx_json);
        return;
    }
    cJSON *recipient = recipient_of(req, &bad);
    if (bad) {
        free(ctx_json);
        return;
    }

    /* The client as the policy sees it: stored preferences, overridden by
     * this request's recipient. */
    hd_err_t err;
    cJSON *prefs = NULL;
    if (prefs_load(app, client, &prefs, &err) != 0) {
        free(ctx_json);
        cJSON_Delete(recipient);
        http_reply_error(req, 503, "unavailable", "cannot load the client's preferences; retry");
        return;
    }
    if (prefs == NULL)
        prefs = cJSON_CreateObject();
    const cJSON *rf;
    cJSON_ArrayForEach(rf, recipient)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(prefs, rf->string);
        cJSON_AddStringToObject(prefs, rf->string, rf->valuestring);
    }
    cJSON *request = cJSON_CreateObject();
    cJSON_AddStringToObject(request, "message_type", type);
    if (urgency)
        cJSON_AddStringToObject(request, "urgency", urgency);
    if (channel)
        cJSON_AddStringToObject(request, "channel", channel);
    if (sa)
        cJSON_AddNumberToObject(request, "send_at", (double)send_at);
    cJSON_AddStringToObject(request, "plan_id", plan);
    cJSON_AddStringToObject(request, "client_id", client);
    cJSON *now = cJSON_CreateNumber((double)time(NULL));
    cJSON *args[] = {request, prefs, now};
    cJSON *decision = NULL;
    int rc = lrt_call(app->policy, "strategy", "decide", args, 3, &decision, &err);
    cJSON_Delete(request);
    cJSON_Delete(prefs);
    cJSON_Delete(now);
    if (rc != 0) {
        free(ctx_json);
        cJSON_Delete(recipient);
        /* strategy.decide names what it could not decide (an unknown
         * message type, for one): the request cannot be processed. */
        http_reply_error(req, 422, "policy_error", "%s", err.msg);
        return;
    }
    const char *primary = NULL;
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(decision, "primary_channel");
    if (cJSON_IsString(pv))
        primary = pv->valuestring;
    if (primary == NULL) {
        cJSON *reasons = cJSON_GetObjectItemCaseSensitive(decision, "reasons");
        char *why = cJSON_PrintUnformatted(reasons);
        http_reply_error(req, 422, "no_channel", "no channel can reach this client: %s",
                         why ? why : "");
        free(why);
        free(ctx_json);
        cJSON_Delete(recipient);
        cJSON_Delete(decision);
        return;
    }
    char fallbacks[64] = "";
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(decision, "fallback_channels"))
    {
        if (cJSON_IsString(e))
            snprintf(fallbacks + strlen(fallbacks), sizeof(fallbacks) - strlen(fallbacks), "%s%s",
                     fallbacks[0] ? "," : "", e->valuestring);
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(decision, "send_at");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(decision, "priority");
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(decision, "urgency");
    bool batch = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(decision, "batch"));
    char *recipient_enc = NULL;
    if (recipient && cJSON_GetArraySize(recipient) > 0) {
        char *plain = cJSON_PrintUnformatted(recipient);
        int erc = fe_encrypt(app->keyring, "recipient", plain, strlen(plain), &recipient_enc, &err);
        free(plain);
        if (erc != 0) {
            free(ctx_json);
            cJSON_Delete(recipient);
            cJSON_Delete(decision);
            http_reply_error(req, 500, "internal", "cannot encrypt the recipient");
            return;
        }
    }
    cJSON *stored = public_strategy_of(decision);
    char *strategy_json = cJSON_PrintUnformatted(stored);
    char *id = hash_uuid4();
    int64_t when = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : (int64_t)time(NULL);
    /* The answer is built before the insert so an idempotency record can
     * keep it in the same transaction. */
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "id", id);
    const char *doc_status = when <= (int64_t)time(NULL) ? "queued" : "scheduled";
    cJSON_AddStringToObject(doc, "status", doc_status);
    cJSON_AddItemToObject(doc, "strategy", stored);
    char *answer = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    comm_new_t c = {
        .plan_id = plan,
        .client_id = client,
        .message_type = type,
        .urgency = cJSON_IsString(ur) ? ur->valuestring : (urgency ? urgency : "normal"),
        .context_json = ctx_json,
        .strategy_json = strategy_json,
        .recipient_enc = recipient_enc,
        .primary_channel = primary,
        .fallbacks_csv = fallbacks,
        .id = id,
        .send_at = when,
        .priority = cJSON_IsNumber(pr) ? pr->valueint : 50,
        .batch = batch,
        .requested_by = req->principal.sub,
        .idempotency_key = idem_key,
        .idem_principal = idem_key ? req->principal.sub : NULL,
        .idem_response = answer,
        .payload_json = payload,
    };
    rc = comms_create(app->db, &c, &err);
    if (rc == 0)
        metrics_comm(app->metrics, primary, doc_status, c.message_type);
    free(ctx_json);
    free(strategy_json);
    free(recipient_enc);
    cJSON_Delete(recipient);
    cJSON_Delete(decision);
    if (rc != 0) {
        free(id);
        free(answer);
        http_reply_error(req, 503, "unavailable", "cannot store the message; retry");
        return;
    }
    /* Wake the workers: ours at once, other processes' by one NOTIFY. */
    if (!engine_kick(app->engine) && comms_notify(app->db, &err) != 0)
        log_warn("cannot notify the workers; they find the message at their next poll", "reason",
                 err.msg);
    char loc[128];
    snprintf(loc, sizeof(loc), "/api/crm/communications/%s", id);
    http_reply_bytes(req, 202, "application/json", answer, strlen(answer));
    http_reply_header(req, "Location", loc);
    if (wait_ms > 0 && strcmp(doc_status, "queued") == 0) {
        req->wait_data = xstrdup(answer);
        http_suspend(req, wait_ms, wait_outcome);
    }
    free(id);
    free(answer);
}

void api_comms_get(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    bool found;
    hd_err_t err = {{0}};
    cJSON *doc = comms_get(req->app->db, id, &found, &err);
    if (doc == NULL && !found && err.msg[0] == '\0') {
        http_reply_error(req, 404, "not_found", "no communication with this id");
        return;
    }
    if (doc == NULL) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    http_reply_json(req, 200, doc);
}

void api_comms_list(http_req_t *req)
{
    comms_filter_t f = {
        .plan_id = http_query(req, "plan_id"),
        .client_id = http_query(req, "client_id"),
        .status = http_query(req, "status"),
        .channel = http_query(req, "channel"),
        .message_type = http_query(req, "message_type"),
        .cursor = http_query(req, "cursor"),
        .limit = 50,
    };
    static const char *const statuses[] = {"scheduled", "queued",    "sending", "sent",
                                           "delivered", "opened",    "clicked", "failed",
                                           "cancelled", "suppressed"};
    if (f.status) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
            ok |= strcmp(f.status, statuses[i]) == 0;
        if (!ok) {
            http_reply_error(req, 400, "invalid_request", "status: not a message status");
            return;
        }
    }
    if (f.channel && strcmp(f.channel, "email") && strcmp(f.channel, "sms") &&
        strcmp(f.channel, "whatsapp")) {
        http_reply_error(req, 400, "invalid_request", "channel: expected email, sms or whatsapp");
        return;
    }
    const char *limit = http_query(req, "limit");
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (*end || v < 1 || v > 200) {
            http_reply_error(req, 400, "invalid_request", "limit: expected 1 to 200");
            return;
        }
        f.limit = (int)v;
    }
    char from[40], to[40];
    const char *bounds[][2] = {{"from", NULL}, {"to", NULL}};
    char *bufs[] = {from, to};
    for (int i = 0; i < 2; i++) {
        const char *v = http_query(req, bounds[i][0]);
        int64_t t;
        if (v == NULL)
            continue;
        if (timefmt_parse(v, &t) != 0) {
            http_reply_error(req, 400, "invalid_request",
                             "%s: expected an RFC 3339 time like 2026-11-28T09:00:00Z",
                             bounds[i][0]);
            return;
        }
        timefmt_format(t, bufs[i]);
        if (i == 0)
            f.from = from;
        else
            f.to = to;
    }
    hd_err_t err;
    cJSON *doc = comms_list(req->app->db, &f, &err);
    if (doc == NULL) {
        if (strncmp(err.msg, "cursor:", 7) == 0)
            http_reply_error(req, 400, "invalid_request", "%s", err.msg);
        else
            http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    http_reply_json(req, 200, doc);
}

void api_comms_cancel(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    char status[16];
    hd_err_t err;
    int rc = comms_cancel(req->app->db, id, status, &err);
    if (rc == 1) {
        http_reply_error(req, 404, "not_found", "no communication with this id");
    } else if (rc == 2) {
        http_reply_error(req, 409, "conflict",
                         "too late to cancel: the message is %s (already handed to a provider "
                         "or finished)",
                         status);
    } else if (rc < 0) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
    } else {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "status", "cancelled");
        http_reply_json(req, 200, doc);
    }
}
