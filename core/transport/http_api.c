/*
 * http_api.c - the HTTP provider drivers: Twilio's Messages API (form
 * encoded, Basic auth) and Meta's WhatsApp Cloud API (JSON, Bearer token).
 * Both share the outcome reading: status, the provider's error code, the
 * message id, Retry-After.
 */
#include "transport/internal.h"
#include "base/addr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RESPONSE (64 * 1024)

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    tr_xfer_t *x = arg;
    size_t len = size * n;
    if (x->resp.len + len <= MAX_RESPONSE)
        buf_append(&x->resp, data, len);
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    tr_xfer_t *x = arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        const char *p = data + 12;
        while (*p == ' ' || *p == '\t')
            p++;
        /* delta-seconds only; an HTTP date is rare from these APIs */
        if (isdigit((unsigned char)*p))
            x->retry_after = atoi(p);
    }
    return len;
}

/* Headers and callbacks common to both APIs. */
static int setup_http(const tr_settings_t *s, tr_xfer_t *x, const char *url, const char *ctype,
                      tr_result_t *res)
{
    x->easy = curl_easy_init();
    if (x->easy == NULL)
        return tr_refuse(res, "http: out of memory");
    CURL *h = x->easy;
    tr_easy_common(h, x->msg->post_url ? TR_POST_TIMEOUT_MS : s->c.timeout_ms[x->msg->channel]);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body.data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    char line[300];
    snprintf(line, sizeof(line), "Content-Type: %s", ctype);
    x->headers = curl_slist_append(x->headers, line);
    x->headers = curl_slist_append(x->headers, "Accept: application/json");
    /* no 100-continue round trip for these small bodies */
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (x->msg->traceparent) {
        snprintf(line, sizeof(line), "traceparent: %s", x->msg->traceparent);
        x->headers = curl_slist_append(x->headers, line);
    }
    return 0;
}

static bool has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
            return true;
    return false;
}

static void form_add(CURL *h, buf_t *b, const char *k, const char *v)
{
    char *ev = curl_easy_escape(h, v, 0);
    buf_printf(b, "%s%s=%s", b->len ? "&" : "", k, ev ? ev : "");
    curl_free(ev);
}

int tr_twilio_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res)
{
    const tr_message_t *m = x->msg;
    if (!s->c.twilio_sid || !*s->c.twilio_sid || !s->c.twilio_token || !*s->c.twilio_token)
        return tr_refuse(res, "twilio: account not configured (set HERALD_TWILIO_ACCOUNT_SID "
                              "and HERALD_TWILIO_AUTH_TOKEN)");
    if (!s->c.twilio_from || !*s->c.twilio_from)
        return tr_refuse(res, "twilio: no sender (set HERALD_TWILIO_FROM)");
    if (!addr_is_e164(m->to))
        return tr_refuse(res, "recipient: not an E.164 phone number");
    if (m->text == NULL || *m->text == '\0' || has_ctl(m->text))
        return tr_refuse(res, "sms: empty text or control characters");
    char url[1024];
    snprintf(url, sizeof(url), "%s/2010-04-01/Accounts/%s/Messages.json", s->c.twilio_base_url,
             s->c.twilio_sid);
    if (setup_http(s, x, url, "application/x-www-form-urlencoded", res))
        return 1;
    form_add(x->easy, &x->body, "To", m->to);
    /* A Messaging Service picks the sender itself. */
    form_add(x->easy, &x->body,
             strncmp(s->c.twilio_from, "MG", 2) == 0 ? "MessagingServiceSid" : "From",
             s->c.twilio_from);
    form_add(x->easy, &x->body, "Body", m->text);
    if (s->c.public_url && *s->c.public_url) {
        /* Our id rides along so a receipt finds its message even before the
         * provider id is stored. */
        char *id = curl_easy_escape(x->easy, m->comm_id ? m->comm_id : "", 0);
        char cb[1200];
        snprintf(cb, sizeof(cb), "%s/api/crm/webhooks/twilio?comm_id=%s", s->c.public_url,
                 id ? id : "");
        curl_free(id);
        form_add(x->easy, &x->body, "StatusCallback", cb);
    }
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body.data);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(x->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(x->easy, CURLOPT_USERNAME, s->c.twilio_sid);
    curl_easy_setopt(x->easy, CURLOPT_PASSWORD, s->c.twilio_token);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    return 0;
}

int tr_whatsapp_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res)
{
    const tr_message_t *m = x->msg;
    if (!s->c.wa_phone_number_id || !*s->c.wa_phone_number_id || !s->c.wa_token || !*s->c.wa_token)
        return tr_refuse(res, "whatsapp: not configured (set HERALD_WHATSAPP_PHONE_NUMBER_ID "
                              "and HERALD_WHATSAPP_TOKEN)");
    if (!addr_is_e164(m->to))
        return tr_refuse(res, "recipient: not an E.164 phone number");
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "messaging_product", "whatsapp");
    cJSON_AddStringToObject(doc, "recipient_type", "individual");
    cJSON_AddStringToObject(doc, "to", m->to + 1); /* Meta takes the digits */
    if (m->wa_template) {
        cJSON_AddStringToObject(doc, "type", "template");
        cJSON *t = cJSON_AddObjectToObject(doc, "template");
        cJSON_AddStringToObject(t, "name", m->wa_template);
        cJSON *lang = cJSON_AddObjectToObject(t, "language");
        cJSON_AddStringToObject(lang, "code", m->wa_language ? m->wa_language : "en_US");
        cJSON *comps = m->wa_components ? cJSON_Parse(m->wa_components) : NULL;
        if (cJSON_IsArray(comps)) {
            cJSON_AddItemToObject(t, "components", comps);
        } else if (m->wa_components) {
            cJSON_Delete(comps);
            cJSON_Delete(doc);
            return tr_refuse(res, "whatsapp: template components are not a JSON array");
        } else if (m->nwa_params) {
            cJSON *comp = cJSON_CreateObject();
            cJSON_AddStringToObject(comp, "type", "body");
            cJSON *params = cJSON_AddArrayToObject(comp, "parameters");
            for (int i = 0; i < m->nwa_params; i++) {
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "type", "text");
                cJSON_AddStringToObject(p, "text", m->wa_params[i]);
                cJSON_AddItemToArray(params, p);
            }
            cJSON_AddItemToArray(cJSON_AddArrayToObject(t, "components"), comp);
        }
    } else {
        if (m->text == NULL || *m->text == '\0') {
            cJSON_Delete(doc);
            return tr_refuse(res, "whatsapp: empty text");
        }
        cJSON_AddStringToObject(doc, "type", "text");
        cJSON *t = cJSON_AddObjectToObject(doc, "text");
        cJSON_AddStringToObject(t, "body", m->text);
        cJSON_AddBoolToObject(t, "preview_url", strstr(m->text, "https://") != NULL);
    }
    if (m->comm_id)
        cJSON_AddStringToObject(doc, "biz_opaque_callback_data", m->comm_id);
    char *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (json == NULL)
        return tr_refuse(res, "whatsapp: out of memory");
    buf_puts(&x->body, json);
    free(json);
    char url[1024];
    snprintf(url, sizeof(url), "%s/%s/messages", s->c.wa_base_url, s->c.wa_phone_number_id);
    if (setup_http(s, x, url, "application/json", res))
        return 1;
    char auth[600];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->c.wa_token);
    x->headers = curl_slist_append(x->headers, auth);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    return 0;
}

static void code_of(const cJSON *v, char *out, size_t n)
{
    if (cJSON_IsNumber(v))
        snprintf(out, n, "%d", (int)v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(out, n, "%s", v->valuestring);
}

void tr_http_finish(const tr_settings_t *s, tr_xfer_t *x, CURLcode rc, tr_result_t *res)
{
    (void)s;
    snprintf(res->kind, sizeof(res->kind), "http");
    if (tr_network_error(x->easy, rc, x->body.len, res))
        return;
    if (rc != CURLE_OK) {
        res->ok = false;
        snprintf(res->text, sizeof(res->text), "%s", curl_easy_strerror(rc));
        return;
    }
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = (int)status;
    res->request_sent = true;
    res->retry_after = x->retry_after;
    cJSON *doc = cJSON_ParseWithLength(x->resp.data ? x->resp.data : "", x->resp.len);
    bool twilio = x->msg->channel == TR_SMS;
    if (status >= 200 && status < 300) {
        const cJSON *id = NULL;
        if (twilio) {
            id = cJSON_GetObjectItemCaseSensitive(doc, "sid");
        } else {
            const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(doc, "messages");
            id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "id");
        }
        if (cJSON_IsString(id)) {
            res->ok = true;
            snprintf(res->provider_id, sizeof(res->provider_id), "%s", id->valuestring);
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "status");
            snprintf(res->text, sizeof(res->text), "%s",
                     cJSON_IsString(st) ? st->valuestring : "accepted");
        } else {
            /* 2xx without an id: accepted, but we cannot follow it. */
            res->ok = false;
            snprintf(res->text, sizeof(res->text), "provider answered %ld without a message id",
                     status);
        }
    } else {
        res->ok = false;
        const cJSON *err = twilio ? doc : cJSON_GetObjectItemCaseSensitive(doc, "error");
        code_of(cJSON_GetObjectItemCaseSensitive(err, "code"), res->provider_code,
                sizeof(res->provider_code));
        code_of(cJSON_GetObjectItemCaseSensitive(err, "error_subcode"), res->provider_subcode,
                sizeof(res->provider_subcode));
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
        const cJSON *trace = cJSON_GetObjectItemCaseSensitive(err, "fbtrace_id");
        if (cJSON_IsString(msg))
            snprintf(res->text, sizeof(res->text), "%s%s%s", msg->valuestring,
                     cJSON_IsString(trace) ? " fbtrace_id=" : "",
                     cJSON_IsString(trace) ? trace->valuestring : "");
        else
            snprintf(res->text, sizeof(res->text), "HTTP %ld", status);
    }
    cJSON_Delete(doc);
}

/* ---- operations POSTs (the alert webhook) ---- */

int tr_post_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res)
{
    const char *url = x->msg->post_url;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return tr_refuse(res, "post: the URL must be http:// or https://");
    buf_puts(&x->body, x->msg->text ? x->msg->text : "{}");
    if (setup_http(s, x, url, "application/json", res))
        return 1;
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    return 0;
}

void tr_post_finish(const tr_settings_t *s, tr_xfer_t *x, CURLcode rc, tr_result_t *res)
{
    (void)s;
    snprintf(res->kind, sizeof(res->kind), "http");
    if (tr_network_error(x->easy, rc, x->body.len, res))
        return;
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = (int)status;
    res->request_sent = true;
    res->retry_after = x->retry_after;
    res->ok = rc == CURLE_OK && status >= 200 && status < 300;
    snprintf(res->text, sizeof(res->text), "%s",
             rc != CURLE_OK ? curl_easy_strerror(rc)
             : res->ok      ? "accepted"
                            : "not a 2xx answer");
}
