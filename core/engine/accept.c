/*
 * accept.c - accepting a message (see accept.h). Uses store/repo_idem for
 * the Idempotency-Key, engine/recipient for the client, engine/policy for
 * strategy.decide, store/repo_comms to write the message and its job in one
 * statement, and engine/worker to wake the workers.
 */
#include "engine/accept.h"
#include "engine/acceptq.h"
#include "base/buf.h"
#include "base/addr.h"
#include "base/locale.h"
#include "base/log.h"
#include "base/timefmt.h"
#include "base/tz.h"
#include "crypto/codec.h"
#include "crypto/field.h"
#include "crypto/hash.h"
#include "engine/policy.h"
#include "engine/prefs.h"
#include "engine/recipient.h"
#include "engine/worker.h"
#include "store/repo_comms.h"
#include "store/repo_idem.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONTEXT_BYTES    (64 * 1024)
#define MAX_CONTEXT_STRING   (4 * 1024) /* one string of the context */
#define MAX_CONTEXT_DEPTH    8
#define MAX_ATTACHMENTS      10
#define MAX_ATTACHMENT_BYTES (10 * 1024 * 1024)

/* Sets the refusal; returns false so checks can `return refuse(...)`. */
static bool refuse(accept_out_t *o, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool refuse(accept_out_t *o, int status, const char *code, const char *fmt, ...)
{
    o->status = status;
    snprintf(o->code, sizeof(o->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof(o->message), fmt, ap);
    va_end(ap);
    return false;
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

/* A checked request. Strings are borrowed from the request body. */
typedef struct request {
    const char *plan, *client, *type, *urgency, *channel, *send_at_text;
    int64_t send_at;
    const cJSON *ctx; /* the context object, or NULL */
    char *context;    /* owned: the context as JSON text */
    cJSON *warnings;  /* owned: undeclared fields of the context (types.check) */
    char *payload;    /* owned: {"attachments": [...]} or NULL */
    cJSON *recipient; /* owned: the checked override or NULL */
    int wait_ms;
} request_t;

static void request_free(request_t *r)
{
    free(r->context);
    free(r->payload);
    cJSON_Delete(r->warnings);
    cJSON_Delete(r->recipient);
}

/* A required or optional string member of 1 to max characters. */
static bool get_str(const cJSON *body, const char *name, bool required, size_t max,
                    const char **out, accept_out_t *o)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return required ? refuse(o, 400, "invalid_request", "%s: required", name) : true;
    if (!cJSON_IsString(v) || !id_text(v->valuestring, max))
        return refuse(o, 400, "invalid_request", "%s: expected a string of 1 to %zu characters",
                      name, max);
    *out = v->valuestring;
    return true;
}

/* attachments: [{filename, content_type, content_base64}] for the email
 * channel (the blueprint PDF). Checked here, decoded again at send time. */
static bool attachments_of(const cJSON *body, request_t *r, accept_out_t *o)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "attachments");
    if (list == NULL || cJSON_IsNull(list))
        return true;
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
                 addr_check_header_value("filename", fn->valuestring, strlen(fn->valuestring),
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
        if (index >= 0 && cJSON_IsArray(list))
            return refuse(o, 400, "invalid_request", "attachments[%d]: %s", index, why);
        return refuse(o, 400, "invalid_request", "attachments: %s", why);
    }
    cJSON *payload = cJSON_CreateObject();
    cJSON_AddItemToObject(payload, "attachments", cJSON_Duplicate(list, true));
    r->payload = cJSON_PrintUnformatted(payload);
    cJSON_Delete(payload);
    return true;
}

/* The request's recipient override: {name, email, phone, timezone, locale}. */
static bool recipient_of(const cJSON *body, request_t *r, accept_out_t *o)
{
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(body, "recipient");
    if (rc == NULL || cJSON_IsNull(rc))
        return true;
    if (!cJSON_IsObject(rc))
        return refuse(o, 400, "invalid_request", "recipient: expected an object");
    static const char *const allowed[] = {"name", "email", "phone", "timezone", "locale"};
    r->recipient = cJSON_CreateObject();
    const cJSON *f;
    cJSON_ArrayForEach(f, rc)
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
        else if (strcmp(f->string, "email") == 0 && addr_check_email(f->valuestring, &err))
            why = "not an email address";
        else if (strcmp(f->string, "phone") == 0 && !addr_is_e164(f->valuestring))
            why = "expected an E.164 number like +14155550100";
        else if (strcmp(f->string, "timezone") == 0 && tz_get(f->valuestring, NULL) == NULL)
            why = "not an IANA time zone";
        else if (strcmp(f->string, "locale") == 0 && !locale_tag_ok(f->valuestring))
            why = "expected a locale like en, fr_FR or pt-BR";
        if (why)
            return refuse(o, 400, "invalid_request", "recipient.%s: %s", f->string, why);
        cJSON_AddStringToObject(r->recipient, f->string, f->valuestring);
    }
    return true;
}

/* Every string of the context within MAX_CONTEXT_STRING bytes and every
 * value within MAX_CONTEXT_DEPTH levels: a template filter or pattern never
 * sees client data large enough to stall it. path names the first that is
 * not (e.g. "context.vendors[2].url"). */
static bool context_bounded(const cJSON *v, char *path, size_t pathn, int depth)
{
    if (depth > MAX_CONTEXT_DEPTH)
        return false;
    if (cJSON_IsString(v))
        return strlen(v->valuestring) <= MAX_CONTEXT_STRING;
    size_t len = strlen(path);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        if (cJSON_IsArray(v))
            snprintf(path + len, pathn - len, "[%d]", i++);
        else
            snprintf(path + len, pathn - len, ".%s", c->string ? c->string : "?");
        if (!context_bounded(c, path, pathn, depth + 1))
            return false;
    }
    path[len] = '\0';
    return true;
}

/* Every field of the request, checked before anything is read or stored. */
static bool check(const accept_in_t *in, request_t *r, accept_out_t *o)
{
    const cJSON *body = in->body;
    if (in->wait) {
        char *end;
        double w = strtod(in->wait, &end);
        if (*in->wait == '\0' || *end != '\0' || !(w >= 0 && w <= 30))
            return refuse(o, 400, "invalid_request", "wait: expected seconds from 0 to 30");
        r->wait_ms = (int)(w * 1000);
    }
    static const char *const known[] = {"plan_id", "client_id", "message_type",
                                        "urgency", "context",   "recipient",
                                        "channel", "send_at",   "attachments"};
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strcmp(f->string, known[i]) == 0;
        if (!ok)
            return refuse(o, 400, "invalid_request", "%s: unknown field", f->string);
    }
    if (!get_str(body, "plan_id", true, 200, &r->plan, o) ||
        !get_str(body, "client_id", true, 200, &r->client, o) ||
        !get_str(body, "message_type", true, 64, &r->type, o) ||
        !get_str(body, "urgency", false, 16, &r->urgency, o) ||
        !get_str(body, "channel", false, 16, &r->channel, o) ||
        !get_str(body, "send_at", false, 64, &r->send_at_text, o))
        return false;
    for (const char *p = r->type; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return refuse(o, 400, "invalid_request",
                          "message_type: lower-case letters, digits and _ only");
    if (r->urgency && strcmp(r->urgency, "low") && strcmp(r->urgency, "normal") &&
        strcmp(r->urgency, "high") && strcmp(r->urgency, "critical"))
        return refuse(o, 400, "invalid_request", "urgency: expected low, normal, high or critical");
    if (r->channel && !addr_is_channel(r->channel))
        return refuse(o, 400, "invalid_request", "channel: expected email, sms or whatsapp");
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(body, "context");
    if (ctx != NULL && !cJSON_IsObject(ctx))
        return refuse(o, 400, "invalid_request", "context: expected an object");
    char path[160] = "context";
    if (ctx && !context_bounded(ctx, path, sizeof(path), 0))
        return refuse(o, 400, "invalid_request",
                      "%s: longer than %d bytes, or nested deeper than %d levels", path,
                      MAX_CONTEXT_STRING, MAX_CONTEXT_DEPTH);
    r->ctx = ctx;
    r->context = ctx ? cJSON_PrintUnformatted(ctx) : xstrdup("{}");
    if (r->context == NULL)
        return refuse(o, 500, "internal", "cannot keep the context");
    if (strlen(r->context) > MAX_CONTEXT_BYTES)
        return refuse(o, 422, "invalid_request", "context: larger than %d bytes",
                      MAX_CONTEXT_BYTES);
    if (r->send_at_text && timefmt_parse(r->send_at_text, &r->send_at) != 0)
        return refuse(o, 400, "invalid_request",
                      "send_at: expected an RFC 3339 time like 2026-11-28T09:00:00Z");
    return attachments_of(body, r, o) && recipient_of(body, r, o);
}

/* The context against its type's declaration (types.check in
 * scripts/types.lua): the type must be declared, a problem is a 400
 * invalid_context listing each (path, expected, got: never the value), and
 * undeclared fields are kept and named in the 202's warnings. */
static bool conforms(app_t *app, request_t *r, accept_out_t *o)
{
    policy_context_check_t c;
    hd_err_t err;
    if (policy_check_context(app->policy, r->type, r->ctx, &c, &err) != 0)
        return refuse(o, 422, "policy_error", "%s", err.msg);
    bool ok = true;
    int n = cJSON_GetArraySize(c.problems);
    if (!c.known) {
        ok = refuse(o, 400, "invalid_request",
                    "message_type: '%s' is not declared in scripts/types.lua "
                    "(GET /api/crm/message-types lists the types)",
                    r->type);
    } else if (n > 0) {
        const cJSON *p = cJSON_GetArrayItem(c.problems, 0);
        ok = refuse(o, 400, "invalid_context",
                    "context: %d problem%s, the first: %s: expected %s, got %s", n,
                    n == 1 ? "" : "s", cJSON_GetObjectItemCaseSensitive(p, "path")->valuestring,
                    cJSON_GetObjectItemCaseSensitive(p, "expected")->valuestring,
                    cJSON_GetObjectItemCaseSensitive(p, "got")->valuestring);
        o->problems = c.problems;
        c.problems = NULL;
    } else if (cJSON_GetArraySize(c.warnings) > 0) {
        r->warnings = c.warnings;
        c.warnings = NULL;
    }
    policy_context_check_free(&c);
    return ok;
}

/* The client as the policy sees it, then strategy.decide. With guess (the
 * request carries its own recipient), a client this process has not seen
 * with a preferences row (prefs_maybe_stored) is taken to have none,
 * without reading Redis or PostgreSQL, and *guessed says so: the insert
 * then checks it (comm_new_t.unless_prefs). A guess that the policy
 * refuses is not trusted with the refusal: the client is read and decided
 * again. */
static bool decide(app_t *app, const request_t *r, bool guess, bool *guessed, policy_decision_t *d,
                   accept_out_t *o)
{
    hd_err_t err;
    /* Any cached copy will do here: it chooses the chain, and every channel
     * of it is checked again before its attempt against the row's current
     * version (dispatch.c). A stale copy may pick a channel that is then
     * refused, never send on one. */
    cJSON *prefs = NULL;
    *guessed = false;
    if (guess && !prefs_maybe_stored(app, r->client)) {
        prefs = cJSON_CreateObject();
        *guessed = true;
    } else {
        prefs = recipient_load(app, r->client, NULL, NULL, &err);
    }
    if (prefs == NULL) {
        log_warn("cannot load a client's preferences", "client_id", r->client, "reason", err.msg);
        refuse(o, 503, "unavailable", "cannot load the client's preferences; retry");
        o->retry_after = 1;
        return false;
    }
    recipient_merge(prefs, r->recipient);
    policy_request_t rq = {
        .message_type = r->type,
        .urgency = r->urgency,
        .channel = r->channel,
        .plan_id = r->plan,
        .client_id = r->client,
        .has_send_at = r->send_at_text != NULL,
        .send_at = r->send_at,
    };
    int rc = policy_decide(app->policy, &rq, prefs, (int64_t)time(NULL), d, &err);
    cJSON_Delete(prefs);
    if (*guessed && (rc != 0 || d->nchain == 0)) {
        policy_decision_free(d);
        memset(d, 0, sizeof(*d));
        return decide(app, r, false, guessed, d, o);
    }
    if (rc != 0)
        /* strategy.decide names what it could not decide (an unknown
         * message type, for one): the request cannot be processed. */
        return refuse(o, 422, "policy_error", "%s", err.msg);
    if (d->nchain == 0) {
        char *why = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(d->doc, "reasons"));
        refuse(o, 422, "no_channel", "no channel can reach this client: %s", why ? why : "");
        free(why);
        return false;
    }
    return true;
}

/* Stores the message, its job and the key's answer in one statement: 0
 * when stored (202) or refused (o says why), or COMMS_PREFS_EXIST with o
 * untouched when guessed and the client has a preferences row after all
 * (decide again from it). */
static int store(app_t *app, const accept_in_t *in, const request_t *r, const policy_decision_t *d,
                 bool guessed, accept_out_t *o)
{
    hd_err_t err;
    char *recipient_enc = NULL;
    if (r->recipient && cJSON_GetArraySize(r->recipient) > 0) {
        char *plain = cJSON_PrintUnformatted(r->recipient);
        int erc = fe_encrypt(app->keyring, "recipient", plain, strlen(plain), &recipient_enc, &err);
        free(plain);
        if (erc != 0) {
            refuse(o, 500, "internal", "cannot encrypt the recipient");
            return 0;
        }
    }
    cJSON *strategy = policy_decision_json(d);
    char *strategy_json = cJSON_PrintUnformatted(strategy);
    char *id = hash_uuid4();
    snprintf(o->id, sizeof(o->id), "%s", id);
    /* The answer is built before the insert so an idempotency record can
     * keep it in the same transaction. */
    const char *status = d->send_at <= (int64_t)time(NULL) ? "queued" : "scheduled";
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "id", id);
    cJSON_AddStringToObject(doc, "status", status);
    cJSON_AddItemToObject(doc, "strategy", strategy);
    if (r->warnings)
        cJSON_AddItemReferenceToObject(doc, "warnings", r->warnings);
    o->body = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    comm_new_t c = {
        .plan_id = r->plan,
        .client_id = r->client,
        .message_type = r->type,
        .urgency = d->urgency,
        .context_json = r->context,
        .strategy_json = strategy_json,
        .recipient_enc = recipient_enc,
        .primary_channel = tr_channel_name(d->chain[0]),
        .fallbacks_csv = d->fallbacks_csv,
        .id = id,
        .send_at = d->send_at,
        .priority = d->priority,
        .batch = d->batch,
        .requested_by = in->principal,
        .idempotency_key = in->idem_key,
        .idem_principal = in->idem_key ? in->principal : NULL,
        .idem_response = o->body,
        .payload_json = r->payload,
        .unless_prefs = guessed,
    };
    /* durable before the 202: committed with whatever else is being accepted */
    int rc = acceptq_create(app->acceptq, app->db, app->keyring, &c, &err);
    free(strategy_json);
    free(recipient_enc);
    free(id);
    if (rc == COMMS_PREFS_EXIST) {
        free(o->body);
        o->body = NULL;
        o->id[0] = '\0';
        return COMMS_PREFS_EXIST;
    }
    if (rc != 0) {
        log_warn("cannot store a message", "reason", err.msg);
        free(o->body);
        o->body = NULL;
        o->id[0] = '\0';
        refuse(o, 503, "unavailable", "cannot store the message; retry");
        o->retry_after = 1;
        return 0;
    }
    metrics_comm(app->metrics, c.primary_channel, status, c.message_type);
    o->status = 202;
    if (r->wait_ms > 0 && strcmp(status, "queued") == 0)
        o->wait_ms = r->wait_ms;
    /* Wake the workers: ours at once, other processes' by one NOTIFY. */
    if (!engine_kick(app->engine) && comms_notify(app->db, &err) != 0)
        log_warn("cannot notify the workers; they find the message at their next poll", "reason",
                 err.msg);
    return 0;
}

static void accept_new(app_t *app, const accept_in_t *in, accept_out_t *o)
{
    request_t r;
    memset(&r, 0, sizeof(r));
    policy_decision_t d;
    memset(&d, 0, sizeof(d));
    /* a request with its own recipient, for a client this process has not
     * seen with a preferences row, is decided without reading it; the
     * insert checks there is none, else it is decided again from the row */
    if (check(in, &r, o) && conforms(app, &r, o)) {
        bool guess = r.recipient && cJSON_GetArraySize(r.recipient) > 0, guessed = false;
        if (decide(app, &r, guess, &guessed, &d, o) &&
            store(app, in, &r, &d, guessed, o) == COMMS_PREFS_EXIST) {
            policy_decision_free(&d);
            memset(&d, 0, sizeof(d));
            if (decide(app, &r, false, &guessed, &d, o))
                store(app, in, &r, &d, false, o);
        }
    }
    policy_decision_free(&d);
    request_free(&r);
}

void accept_message(app_t *app, const accept_in_t *in, accept_out_t *o)
{
    memset(o, 0, sizeof(*o));
    const char *key = in->idem_key;
    if (key == NULL) {
        accept_new(app, in, o);
        return;
    }
    if (!id_text(key, 255)) {
        refuse(o, 400, "invalid_request",
               "Idempotency-Key: expected 1 to 255 printable characters");
        return;
    }
    /* The request is the method, the path and the exact body bytes. */
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "POST %s\n", in->path);
    buf_append(&b, in->raw ? in->raw : "", in->raw_len);
    char hash[65];
    hash_sha256_hex(b.data, b.len, hash);
    buf_free(&b);
    int status = 0;
    char *body = NULL;
    hd_err_t err;
    switch (idem_begin(app->db, in->principal, key, hash, &status, &body, &err)) {
    case IDEM_NEW:
        accept_new(app, in, o);
        if (o->status != 202) /* nothing was created: the key may be used again */
            idem_abandon(app->db, in->principal, key);
        break;
    case IDEM_REPLAY:
        o->status = status;
        o->body = body;
        o->replayed = true;
        body = NULL;
        break;
    case IDEM_MISMATCH:
        refuse(o, 422, "idempotency_mismatch",
               "this Idempotency-Key was used with a different request");
        break;
    case IDEM_IN_PROGRESS:
        refuse(o, 409, "idempotency_in_progress",
               "a request with this Idempotency-Key is still being processed");
        o->retry_after = 1;
        break;
    case IDEM_ERROR:
        refuse(o, 503, "unavailable", "database unavailable; retry later");
        break;
    }
    free(body);
}

void accept_out_free(accept_out_t *o)
{
    free(o->body);
    o->body = NULL;
    cJSON_Delete(o->problems);
    o->problems = NULL;
}
