/* webhook_parse.c - see webhook_parse.h. */
#include "http/webhook_parse.h"
#include "base/buf.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool wh_plain_token(const char *s, size_t max)
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

static char *own(wh_receipts_t *w, char *s)
{
    char **p = realloc(w->owned, (w->nowned + 1) * sizeof(*p));
    if (p == NULL)
        abort(); /* OOM is fatal (buf.h) */
    w->owned = p;
    w->owned[w->nowned++] = s;
    return s;
}

void wh_receipts_free(wh_receipts_t *w)
{
    for (size_t i = 0; i < w->nowned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->rs);
    free(w->in);
    cJSON_Delete(w->doc);
    memset(w, 0, sizeof(*w));
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

int wh_twilio_parse(const form_t *f, const char *comm_hint, wh_receipts_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *sid = form_get(f, "MessageSid");
    const char *status = form_get(f, "MessageStatus");
    if (sid == NULL)
        sid = form_get(f, "SmsSid");
    if (status == NULL)
        status = form_get(f, "SmsStatus");
    const char *bad = sid == NULL || !wh_plain_token(sid, 64)         ? "MessageSid"
                      : status == NULL || !wh_plain_token(status, 32) ? "MessageStatus"
                                                                      : NULL;
    if (bad)
        return hd_err_set(err, "%s: missing or not a Twilio value", bad);
    const char *code = form_get(f, "ErrorCode");
    if (code && *code == '\0')
        code = NULL;
    /* Counted once per message and status. Not keyed on
     * I-Twilio-Idempotency-Token alone: the signature does not cover that
     * header, so a replayed callback with a fresh token would count again. */
    buf_t dk;
    buf_init(&dk);
    buf_printf(&dk, "twilio:%s:%s", sid, status);
    out->rs = xcalloc(1, sizeof(receipt_t));
    out->n = 1;
    out->rs[0] = (receipt_t){
        .provider = "twilio",
        .channel = "sms",
        .provider_id = sid,
        .comm_hint = comm_hint,
        .kind = twilio_kind(status),
        .raw_status = status,
        .error_code = code,
        .error_text = form_get(f, "ErrorMessage"),
        .dedup_key = own(out, buf_steal(&dk)),
        .details_json = own(out, twilio_details(f)),
    };
    return 0;
}

/* ---- WhatsApp (Meta) ---------------------------------------------------- */

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
            goto bad;
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
                goto bad;
            }
            int si = 0;
            const cJSON *s;
            cJSON_ArrayForEach(s, statuses)
            {
                const cJSON *id = member(s, "id"), *st = member(s, "status");
                const cJSON *ts = member(s, "timestamp");
                if (!cJSON_IsObject(s) || !cJSON_IsString(id) ||
                    !wh_plain_token(id->valuestring, 200) || !cJSON_IsString(st) ||
                    !wh_plain_token(st->valuestring, 32) ||
                    (ts && !cJSON_IsString(ts) && !cJSON_IsNumber(ts))) {
                    snprintf(where, wn,
                             "entry[%d].changes[%d].value.statuses[%d]: needs id and status "
                             "strings (and a timestamp string, if any)",
                             ei, ci, si);
                    goto bad;
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
bad:
    free(*out);
    *out = NULL;
    *n = 0;
    return where;
}

/* A status's time: Unix seconds as a string or a number; 0 (now) when
 * absent or not a time. A number is a time from 1 to 2^53 seconds: a double
 * beyond int64_t (1e300) converted would be undefined behaviour (found by
 * tests/fuzz/fuzz_whatsapp.c). */
static int64_t wa_time(const cJSON *ts)
{
    if (cJSON_IsString(ts)) {
        long long at = strtoll(ts->valuestring, NULL, 10); /* saturates */
        return at > 0 ? at : 0;
    }
    if (cJSON_IsNumber(ts) && ts->valuedouble >= 1 && ts->valuedouble <= 9007199254740992.0)
        return (int64_t)ts->valuedouble;
    return 0;
}

/* The receipt of one checked status; its strings are owned by w. */
static receipt_t wa_receipt(wh_receipts_t *w, const cJSON *s)
{
    const char *id = member(s, "id")->valuestring;
    const char *st = member(s, "status")->valuestring;
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
    /* kept: the status and its errors; not recipient_id (a phone number) */
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "status", st);
    if (errors)
        cJSON_AddItemToObject(d, "errors", cJSON_Duplicate(errors, true));
    if (member(s, "conversation"))
        cJSON_AddItemToObject(d, "conversation", cJSON_Duplicate(member(s, "conversation"), true));
    if (member(s, "pricing"))
        cJSON_AddItemToObject(d, "pricing", cJSON_Duplicate(member(s, "pricing"), true));
    char *details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    return (receipt_t){
        .provider = "whatsapp",
        .channel = "whatsapp",
        .provider_id = id,
        .comm_hint = cJSON_IsString(opaque) ? opaque->valuestring : NULL,
        .kind = wa_kind(st),
        .raw_status = st,
        .error_code = codebuf[0] ? own(w, xstrdup(codebuf)) : NULL,
        .error_text = cJSON_IsString(msg)     ? msg->valuestring
                      : cJSON_IsString(title) ? title->valuestring
                                              : NULL,
        .dedup_key = own(w, buf_steal(&dk)),
        .occurred_at = wa_time(member(s, "timestamp")),
        .details_json = own(w, details),
    };
}

/* The text of a message a client sent, or NULL: what a keyword can be in. */
static const char *wa_text(const cJSON *m)
{
    const cJSON *t = member(m, "text"), *b = member(m, "button"), *i = member(m, "interactive");
    const cJSON *v = t ? member(t, "body") : b ? member(b, "text") : NULL;
    if (v == NULL && cJSON_IsObject(i)) {
        const cJSON *r = member(i, "button_reply");
        if (r == NULL)
            r = member(i, "list_reply");
        v = r ? member(r, "title") : NULL;
    }
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Collects value.messages[] of every change into out->in (after wa_check
 * accepted the payload's shape). NULL, or the problem's path. */
static const char *wa_inbound(const cJSON *doc, wh_receipts_t *out, char *where, size_t wn)
{
    int ei = 0, cap = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, member(doc, "entry"))
    {
        int ci = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, member(e, "changes"))
        {
            const cJSON *value = member(c, "value");
            const cJSON *msgs = value ? member(value, "messages") : NULL;
            if (msgs && !cJSON_IsArray(msgs)) {
                snprintf(where, wn, "entry[%d].changes[%d].value.messages: expected an array", ei,
                         ci);
                return where;
            }
            int mi = 0;
            const cJSON *m;
            cJSON_ArrayForEach(m, msgs)
            {
                const cJSON *from = member(m, "from"), *ts = member(m, "timestamp");
                size_t len = cJSON_IsString(from) ? strlen(from->valuestring) : 0;
                bool digits = len >= 7 && len <= 15 && from->valuestring[0] != '0';
                for (size_t k = 0; digits && k < len; k++)
                    digits = from->valuestring[k] >= '0' && from->valuestring[k] <= '9';
                if (!cJSON_IsObject(m) || !digits ||
                    (ts && !cJSON_IsString(ts) && !cJSON_IsNumber(ts))) {
                    snprintf(where, wn,
                             "entry[%d].changes[%d].value.messages[%d]: needs from (the sender's "
                             "number, 7 to 15 digits) and a timestamp string, if any",
                             ei, ci, mi);
                    return where;
                }
                if (out->nin == cap) {
                    cap = cap ? 2 * cap : 4;
                    wh_inbound_t *p = realloc(out->in, (size_t)cap * sizeof(*p));
                    if (p == NULL)
                        abort();
                    out->in = p;
                }
                wh_inbound_t *in = &out->in[out->nin++];
                snprintf(in->from, sizeof(in->from), "+%s", from->valuestring);
                in->text = wa_text(m);
                in->at = wa_time(ts);
                mi++;
            }
            ci++;
        }
        ei++;
    }
    return NULL;
}

wh_status_t wh_whatsapp_parse(const char *body, size_t len, wh_receipts_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!cJSON_IsObject(doc)) {
        size_t off = end ? (size_t)(end - body) : 0;
        cJSON_Delete(doc);
        hd_err_set(err, "expected a JSON object (problem at byte %zu)", off);
        return WH_INVALID_JSON;
    }
    const cJSON **statuses = NULL;
    size_t n = 0;
    char where[200];
    const char *problem = wa_check(doc, &statuses, &n, where, sizeof(where));
    if (problem) {
        cJSON_Delete(doc);
        hd_err_set(err, "%s", problem);
        return WH_INVALID_FIELD;
    }
    problem = wa_inbound(doc, out, where, sizeof(where));
    if (problem) {
        free(statuses);
        free(out->in);
        memset(out, 0, sizeof(*out));
        cJSON_Delete(doc);
        hd_err_set(err, "%s", problem);
        return WH_INVALID_FIELD;
    }
    out->doc = doc;
    out->rs = xcalloc(n + 1, sizeof(receipt_t));
    out->n = (int)n;
    for (size_t i = 0; i < n; i++)
        out->rs[i] = wa_receipt(out, statuses[i]);
    free(statuses);
    return WH_OK;
}
