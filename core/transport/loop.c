/*
 * loop.c - the libcurl multi loop (see transport.h). One thread owns the
 * multi handle; other threads only append to the submission list (a mutex
 * held for a pointer swap) and wake the loop with curl_multi_wakeup. Each
 * channel has its own in-flight cap, so a slow provider fills only its own
 * slots and never holds up another channel.
 */
#include "transport/internal.h"
#include "transport/mime.h"
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A lane per channel, and one for operations POSTs (tr_message_t.post_url). */
#define POST_LANE TR_NCHANNELS
#define NLANES    (TR_NCHANNELS + 1)

static int lane_of(const tr_message_t *m)
{
    return m->post_url ? POST_LANE : (int)m->channel;
}

struct tr_engine {
    tr_settings_t s;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    tr_xfer_t *submitted; /* under mu: new messages, newest first */
    bool draining;        /* under mu: start nothing more (tr_drain) */
    bool stopping;        /* under mu: draining, and the thread ends when idle */
    /* loop thread only: */
    tr_xfer_t *waiting[NLANES]; /* FIFO per lane, over the cap */
    tr_xfer_t *waiting_tail[NLANES];
    int active[NLANES];
    atomic_int pending; /* submitted + waiting + active */
};

static const char *const channel_names[] = {"email", "sms", "whatsapp"};

const char *tr_channel_name(tr_channel_t ch)
{
    return ch < TR_NCHANNELS ? channel_names[ch] : "?";
}

int tr_channel_parse(const char *s, tr_channel_t *out)
{
    for (int i = 0; i < TR_NCHANNELS; i++)
        if (s && strcmp(s, channel_names[i]) == 0) {
            *out = (tr_channel_t)i;
            return 0;
        }
    return -1;
}

tr_message_t *tr_message_new(void)
{
    return xcalloc(1, sizeof(tr_message_t));
}

void tr_message_free(tr_message_t *m)
{
    if (m == NULL)
        return;
    free(m->comm_id);
    free(m->to);
    free(m->to_name);
    free(m->subject);
    free(m->text);
    free(m->html);
    for (int i = 0; i < m->nattachments; i++) {
        free(m->attachments[i].filename);
        free(m->attachments[i].content_type);
        free(m->attachments[i].data);
    }
    free(m->attachments);
    free(m->unsubscribe_url);
    free(m->unsubscribe_mailto);
    free(m->unsubscribe_subject);
    free(m->wa_template);
    free(m->wa_components);
    free(m->wa_language);
    free(m->locale);
    for (int i = 0; i < m->nwa_params; i++)
        free(m->wa_params[i]);
    free(m->wa_params);
    free(m->traceparent);
    free(m->post_url);
    free(m);
}

int tr_refuse(tr_result_t *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
    res->ok = false;
    snprintf(res->kind, sizeof(res->kind), "local");
    res->request_sent = false;
    return 1;
}

cJSON *tr_result_to_json(const tr_result_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", r->ok);
    cJSON_AddStringToObject(o, "kind", r->kind);
    if (r->provider_id[0])
        cJSON_AddStringToObject(o, "provider_id", r->provider_id);
    if (r->smtp_code)
        cJSON_AddNumberToObject(o, "smtp_code", r->smtp_code);
    if (r->enhanced_code[0])
        cJSON_AddStringToObject(o, "enhanced_code", r->enhanced_code);
    if (r->smtp_stage[0])
        cJSON_AddStringToObject(o, "smtp_stage", r->smtp_stage);
    if (r->http_status)
        cJSON_AddNumberToObject(o, "http_status", r->http_status);
    if (r->provider_code[0])
        cJSON_AddStringToObject(o, "provider_code", r->provider_code);
    if (r->provider_subcode[0])
        cJSON_AddStringToObject(o, "provider_subcode", r->provider_subcode);
    if (r->network_error[0])
        cJSON_AddStringToObject(o, "network_error", r->network_error);
    if (r->io_error[0])
        cJSON_AddStringToObject(o, "io_error", r->io_error);
    cJSON_AddBoolToObject(o, "request_sent", r->request_sent);
    if (r->retry_after)
        cJSON_AddNumberToObject(o, "retry_after", r->retry_after);
    cJSON_AddStringToObject(o, "text", r->text);
    cJSON_AddNumberToObject(o, "latency_ms", (double)(long)(r->latency_ms * 1000) / 1000);
    return o;
}

int tr_build_email(const tr_settings_t *s, const tr_message_t *m, buf_t *out, hd_err_t *err)
{
    mime_attachment_t *atts = NULL;
    if (m->nattachments) {
        atts = xcalloc((size_t)m->nattachments, sizeof(*atts));
        for (int i = 0; i < m->nattachments; i++)
            atts[i] =
                (mime_attachment_t){m->attachments[i].filename, m->attachments[i].content_type,
                                    m->attachments[i].data, m->attachments[i].len};
    }
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%d", m->attempt);
    mime_email_t e = {
        .from_name = s->from_name[0] ? s->from_name : NULL,
        .from_addr = s->from_addr,
        .to_name = m->to_name,
        .to_addr = m->to ? m->to : "",
        .reply_to = s->c.email_reply_to,
        .subject = m->subject ? m->subject : "",
        .text = m->text,
        .html = m->html,
        .attachments = atts,
        .nattachments = m->nattachments,
        .comm_id = m->comm_id,
        .domain = s->c.email_domain,
        .date = (int64_t)time(NULL),
        .unsubscribe_url = m->unsubscribe_url,
        .unsubscribe_mailto = m->unsubscribe_mailto,
        .unsubscribe_subject = m->unsubscribe_subject,
        .extra_header_name = "X-Herald-Attempt",
        .extra_header_value = attempt,
    };
    buf_t msg;
    buf_init(&msg);
    int rc = mime_build(&e, &msg, err);
    free(atts);
    /* The signature covers the bytes exactly as built; it goes first. */
    if (rc == 0 && s->dkim)
        rc = dkim_sign(s->dkim, msg.data, msg.len, e.date, out, err);
    if (rc == 0)
        buf_append(out, msg.data, msg.len);
    buf_free(&msg);
    return rc;
}

void tr_easy_common(CURL *e, int timeout_ms)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 10000 ? timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
}

int tr_network_error(CURL *e, CURLcode rc, size_t upload_len, tr_result_t *res)
{
    const char *what = NULL;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        what = "connect_failed";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        what = "dns_failed";
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_USE_SSL_FAILED:
        what = "tls_failed";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        what = "timeout";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        what = "connection_lost";
        break;
    default:
        return 0;
    }
    curl_off_t up = 0;
    curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
    res->ok = false;
    snprintf(res->kind, sizeof(res->kind), "network");
    snprintf(res->network_error, sizeof(res->network_error), "%s", what);
    /* Whether the provider may have the message: every byte of the request
     * left us (a timeout waiting for the answer), or not even that. */
    res->request_sent = upload_len > 0 && (size_t)up >= upload_len;
    snprintf(res->text, sizeof(res->text), "%s", curl_easy_strerror(rc));
    return 1;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void complete(tr_engine_t *t, tr_xfer_t *x, tr_result_t *res)
{
    res->latency_ms = ms_since(&x->start);
    x->done(x->ctx, x->msg, res); /* takes the message */
    x->msg = NULL;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->list);
    curl_slist_free_all(x->headers);
    buf_free(&x->body);
    buf_free(&x->resp);
    free(x);
    atomic_fetch_sub(&t->pending, 1);
}

/* Sets up and adds x to the multi handle, or completes it at once. */
static void start(tr_engine_t *t, tr_xfer_t *x)
{
    tr_result_t res;
    memset(&res, 0, sizeof(res));
    int rc;
    switch (x->msg->post_url ? -1 : (int)t->s.c.driver[x->msg->channel]) {
    case -1:
        rc = tr_post_prepare(&t->s, x, &res);
        break;
    case TR_DRIVER_SMTP:
        rc = tr_smtp_prepare(&t->s, x, &res);
        break;
    case TR_DRIVER_TWILIO:
        rc = tr_twilio_prepare(&t->s, x, &res);
        break;
    case TR_DRIVER_WHATSAPP:
        rc = tr_whatsapp_prepare(&t->s, x, &res);
        break;
    default:
        tr_outbox_write(&t->s, x->msg, &res); /* done either way: res says how */
        rc = 1;
        break;
    }
    if (rc != 0) {
        complete(t, x, &res);
        return;
    }
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    t->active[lane_of(x->msg)]++;
    curl_multi_add_handle(t->multi, x->easy);
}

/* Moves submitted messages into the per-channel queues and starts what the
 * caps allow. Returns false once stopping and nothing is left. */
static bool admit(tr_engine_t *t)
{
    pthread_mutex_lock(&t->mu);
    tr_xfer_t *list = t->submitted;
    t->submitted = NULL;
    bool stopping = t->stopping;
    bool draining = stopping || t->draining;
    pthread_mutex_unlock(&t->mu);
    /* The list is newest first: reverse it to keep submission order. */
    tr_xfer_t *rev = NULL;
    while (list) {
        tr_xfer_t *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    for (tr_xfer_t *x = rev, *n; x; x = n) {
        n = x->next;
        x->next = NULL;
        int ch = lane_of(x->msg);
        if (t->waiting_tail[ch])
            t->waiting_tail[ch]->next = x;
        else
            t->waiting[ch] = x;
        t->waiting_tail[ch] = x;
    }
    for (int ch = 0; ch < NLANES; ch++) {
        int cap = ch == POST_LANE ? TR_POST_IN_FLIGHT : t->s.c.in_flight[ch];
        while (t->waiting[ch] && (draining || t->active[ch] < cap)) {
            tr_xfer_t *x = t->waiting[ch];
            t->waiting[ch] = x->next;
            if (t->waiting[ch] == NULL)
                t->waiting_tail[ch] = NULL;
            x->next = NULL;
            if (draining) {
                tr_result_t res;
                memset(&res, 0, sizeof(res));
                tr_refuse(&res, "not sent: the engine is shutting down");
                res.stopped = true;
                complete(t, x, &res);
            } else {
                start(t, x);
            }
        }
    }
    return !(stopping && atomic_load(&t->pending) == 0);
}

static void harvest(tr_engine_t *t)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(t->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        tr_xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(t->multi, x->easy);
        tr_result_t res;
        memset(&res, 0, sizeof(res));
        int ch = lane_of(x->msg);
        if (ch == POST_LANE)
            tr_post_finish(&t->s, x, rc, &res);
        else if (t->s.c.driver[ch] == TR_DRIVER_SMTP)
            tr_smtp_finish(&t->s, x, rc, &res);
        else
            tr_http_finish(&t->s, x, rc, &res);
        t->active[ch]--;
        complete(t, x, &res);
    }
}

static void *run(void *arg)
{
    pthread_setname_np(pthread_self(), "herald-send");
    tr_engine_t *t = arg;
    for (;;) {
        if (!admit(t))
            break;
        int running = 0;
        curl_multi_perform(t->multi, &running);
        harvest(t);
        if (!admit(t))
            break;
        int fds;
        curl_multi_poll(t->multi, NULL, 0, 1000, &fds);
    }
    return NULL;
}

static const char *keep(tr_settings_t *s, const char *v)
{
    if (v == NULL)
        return NULL;
    char *c = xstrdup(v);
    s->strings[s->nstrings++] = c;
    return c;
}

/* "Name <addr>" or "addr" into the from fields. */
static int parse_from(tr_settings_t *s, const char *from, hd_err_t *err)
{
    const char *lt = strchr(from, '<');
    if (lt) {
        const char *gt = strchr(lt, '>');
        if (gt == NULL || gt[1] != '\0')
            return hd_err_set(err, "email from: expected \"Name <address>\", got \"%s\"", from);
        size_t nlen = (size_t)(lt - from);
        while (nlen && from[nlen - 1] == ' ')
            nlen--;
        snprintf(s->from_name, sizeof(s->from_name), "%.*s", (int)nlen, from);
        snprintf(s->from_addr, sizeof(s->from_addr), "%.*s", (int)(gt - lt - 1), lt + 1);
    } else {
        s->from_name[0] = '\0';
        snprintf(s->from_addr, sizeof(s->from_addr), "%s", from);
    }
    return 0;
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

tr_engine_t *tr_new(const tr_config_t *c, hd_err_t *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init); /* curl_global_init is not thread-safe */
    tr_engine_t *t = xcalloc(1, sizeof(*t));
    t->s.c = *c;
    tr_settings_t *s = &t->s;
    s->c.outbox_dir = keep(s, c->outbox_dir ? c->outbox_dir : "var/outbox");
    s->c.public_url = keep(s, c->public_url);
    s->c.smtp_url = keep(s, c->smtp_url);
    s->c.smtp_username = keep(s, c->smtp_username);
    s->c.smtp_password = keep(s, c->smtp_password);
    s->c.email_from = keep(s, c->email_from ? c->email_from : "Herald <noreply@localhost>");
    s->c.email_reply_to = keep(s, c->email_reply_to);
    s->c.email_domain = keep(s, c->email_domain);
    s->c.twilio_base_url = keep(s, c->twilio_base_url);
    s->c.twilio_sid = keep(s, c->twilio_sid);
    s->c.twilio_token = keep(s, c->twilio_token);
    s->c.twilio_from = keep(s, c->twilio_from);
    s->c.wa_base_url = keep(s, c->wa_base_url);
    s->c.wa_phone_number_id = keep(s, c->wa_phone_number_id);
    s->c.wa_token = keep(s, c->wa_token);
    int total = 0;
    for (int ch = 0; ch < TR_NCHANNELS; ch++) {
        if (s->c.in_flight[ch] <= 0)
            s->c.in_flight[ch] = ch == TR_EMAIL ? 8 : 100;
        if (s->c.timeout_ms[ch] <= 0)
            s->c.timeout_ms[ch] = 30000;
        total += s->c.in_flight[ch];
    }
    if (parse_from(s, s->c.email_from, err) != 0)
        goto fail;
    if (c->dkim_domain || c->dkim_selector) {
        if (!c->dkim_domain || !c->dkim_selector) {
            hd_err_set(err, "channels.email: dkim_domain and dkim_selector go together");
            goto fail;
        }
        s->dkim = dkim_signer_new(c->dkim_domain, c->dkim_selector, c->dkim_key_file, err);
        if (s->dkim == NULL)
            goto fail;
    }
    s->c.dkim_domain = s->c.dkim_selector = s->c.dkim_key_file = NULL; /* the signer has them */
    t->multi = curl_multi_init();
    if (t->multi == NULL) {
        hd_err_set(err, "libcurl: cannot create a multi handle");
        goto fail;
    }
    /* Keep every connection the caps allow open between messages. */
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)total);
    curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->pending, 0);
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        hd_err_set(err, "cannot start the transport thread");
        pthread_mutex_destroy(&t->mu);
        curl_multi_cleanup(t->multi);
        goto fail;
    }
    return t;
fail:
    dkim_signer_free(s->dkim);
    for (int i = 0; i < s->nstrings; i++)
        free(s->strings[i]);
    free(t);
    return NULL;
}

void tr_send(tr_engine_t *t, tr_message_t *msg, tr_done_fn done, void *ctx)
{
    tr_xfer_t *x = xcalloc(1, sizeof(*x));
    x->msg = msg;
    x->done = done;
    x->ctx = ctx;
    buf_init(&x->body);
    buf_init(&x->resp);
    clock_gettime(CLOCK_MONOTONIC, &x->start);
    atomic_fetch_add(&t->pending, 1);
    pthread_mutex_lock(&t->mu);
    x->next = t->submitted;
    t->submitted = x;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->multi);
}

int tr_in_flight(tr_engine_t *t)
{
    return atomic_load(&t->pending);
}

void tr_drain(tr_engine_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->draining = true;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->multi);
}

void tr_free(tr_engine_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->multi);
    pthread_join(t->thread, NULL);
    curl_multi_cleanup(t->multi);
    pthread_mutex_destroy(&t->mu);
    dkim_signer_free(t->s.dkim);
    for (int i = 0; i < t->s.nstrings; i++) {
        /* the password and tokens do not outlive the engine */
        memset(t->s.strings[i], 0, strlen(t->s.strings[i]));
        free(t->s.strings[i]);
    }
    free(t);
}
