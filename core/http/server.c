/*
 * server.c - libmicrohttpd glue (see server.h). Uses router, auth, metrics
 * and the log; handlers live in one file per API resource.
 */
#include "http/server.h"
#include "base/addr.h"
#include "base/log.h"
#include "crypto/codec.h"
#include "crypto/hash.h"
#include "http/conn_guard.h"
#include "http/query.h"
#include "http/ratelimit.h"
#include "obs/metrics.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_server {
    app_t *app;
    struct MHD_Daemon *daemon;
    http_guard_t *guard; /* header deadline, quiet log */
    /* suspended requests and the thread that answers them */
    pthread_mutex_t wait_mu;
    http_req_t *waiting;  /* under wait_mu */
    http_req_t *incoming; /* under wait_mu: suspended, not yet seen by the waiter */
    bool stopping;        /* under wait_mu */
    pthread_t waiter;
};

void http_suspend(http_req_t *req, int ms, bool (*fn)(http_req_t *req, bool timed_out))
{
    clock_gettime(CLOCK_MONOTONIC, &req->wait_until);
    req->wait_until.tv_sec += ms / 1000;
    req->wait_until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (req->wait_until.tv_nsec >= 1000000000L) {
        req->wait_until.tv_sec++;
        req->wait_until.tv_nsec -= 1000000000L;
    }
    req->wait_fn = fn;
}

static bool past(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Polls the suspended requests; resumes each one whose answer is ready. */
static void *run_waiter(void *arg)
{
    http_server_t *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->wait_mu);
        bool stopping = srv->stopping;
        /* take the newly suspended ones into the list */
        while (srv->incoming) {
            http_req_t *r = srv->incoming;
            srv->incoming = r->wait_next;
            r->wait_next = srv->waiting;
            srv->waiting = r;
        }
        http_req_t *list = srv->waiting;
        srv->waiting = NULL;
        pthread_mutex_unlock(&srv->wait_mu);
        http_req_t *keep = NULL;
        while (list) {
            http_req_t *r = list;
            list = r->wait_next;
            bool timed_out = stopping || past(&r->wait_until);
            if (r->wait_fn(r, timed_out) || timed_out) {
                r->resumed = true;
                MHD_resume_connection(r->conn);
            } else {
                r->wait_next = keep;
                keep = r;
            }
        }
        pthread_mutex_lock(&srv->wait_mu);
        while (keep) {
            http_req_t *r = keep;
            keep = r->wait_next;
            r->wait_next = srv->waiting;
            srv->waiting = r;
        }
        bool done = srv->stopping && srv->waiting == NULL && srv->incoming == NULL;
        pthread_mutex_unlock(&srv->wait_mu);
        if (done && stopping)
            break;
        usleep(50000);
    }
    return NULL;
}

static double elapsed_s(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

const char *http_header(http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(http_req_t *req, const char *name)
{
    /* libmicrohttpd is told not to unescape (see on_unescape), so the value
     * is raw: decode it here, once. dispatch() refused a query with a NUL
     * byte or invalid UTF-8 before any handler runs. */
    const char *raw = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (raw == NULL || req->nscratch == HTTP_MAX_SCRATCH)
        return NULL;
    size_t n;
    char *out = query_decode(raw, &n);
    if (strlen(out) != n) { /* an encoded NUL: never read as a shorter value */
        free(out);
        return NULL;
    }
    req->scratch[req->nscratch++] = out;
    return out;
}

/* The first query parameter that is not text: a NUL byte or invalid UTF-8
 * in its name or value. */
typedef struct query_problem {
    char name[64];
    const char *why;
} query_problem_t;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    query_problem_t *q = cls;
    const char *parts[] = {key, value};
    for (int i = 0; i < 2 && q->why == NULL; i++)
        if (parts[i] != NULL)
            q->why = query_problem(parts[i]);
    if (q->why) {
        /* named as sent when it is plain ASCII, never echoing raw bytes */
        bool plain = strlen(key) < sizeof(q->name);
        for (const char *p = key; plain && *p; p++)
            plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
        snprintf(q->name, sizeof(q->name), "%s", plain ? key : "a query parameter");
        return MHD_NO;
    }
    return MHD_YES;
}

/* Keeps URLs and query values exactly as sent: the router decodes path
 * captures once, http_query decodes values once. Decoding here as well
 * would decode twice (%2541 -> A) and let %00 cut a path short. */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    buf_t *b = cls;
    if (b->len)
        buf_putc(b, '&');
    buf_puts(b, key);
    if (value) {
        buf_putc(b, '=');
        buf_puts(b, value);
    }
    return MHD_YES;
}

char *http_raw_query(http_req_t *req)
{
    /* Arguments come raw (on_unescape) and in request order, so joining
     * them gives back the query string as sent. */
    buf_t b;
    buf_init(&b);
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, add_arg, &b);
    if (b.len == 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

void http_set_response(http_req_t *req, int status, struct MHD_Response *resp)
{
    if (req->resp) /* a second reply replaces the first; the first is a bug */
        MHD_destroy_response(req->resp);
    req->resp = resp;
    req->status = status;
    req->replied = true;
}

void http_reply_bytes(http_req_t *req, int status, const char *content_type, const void *data,
                      size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (content_type)
        MHD_add_response_header(r, "Content-Type", content_type);
    http_set_response(req, status, r);
}

void http_reply_json(http_req_t *req, int status, cJSON *doc)
{
    char *s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    size_t n = s ? strlen(s) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        n, s ? s : (void *)"", s ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    http_set_response(req, status, r);
}

void http_reply_error(http_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    http_reply_json(req, status, doc);
    /* a client told only "unavailable" would retry at once, or never */
    if (status == 503)
        http_reply_header(req, "Retry-After", "1");
}

void http_reply_header(http_req_t *req, const char *name, const char *value)
{
    if (req->resp == NULL)
        return;
    const char *old = MHD_get_response_header(req->resp, name);
    if (old) /* one value per name; the delete compares before it frees */
        MHD_del_response_header(req->resp, name, old);
    MHD_add_response_header(req->resp, name, value);
}

bool http_parse_traceparent(const char *v, char trace_id[33])
{
    /* version "00": 00-<32 hex trace>-<16 hex parent>-<2 hex flags> */
    if (v == NULL || strlen(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if (v[0] == 'f' && v[1] == 'f')
        return false;
    static const int spans[][2] = {{0, 2}, {3, 32}, {36, 16}, {53, 2}};
    for (size_t s = 0; s < 4; s++) {
        bool nonzero = false;
        for (int i = spans[s][0]; i < spans[s][0] + spans[s][1]; i++) {
            if (!isxdigit((unsigned char)v[i]) || isupper((unsigned char)v[i]))
                return false;
            nonzero |= v[i] != '0';
        }
        if ((s == 1 || s == 2) && !nonzero)
            return false;
    }
    if (v[55] != '\0' && (v[0] == '0' && v[1] == '0'))
        return false; /* version 00 has exactly four fields */
    memcpy(trace_id, v + 3, 32);
    trace_id[32] = '\0';
    return true;
}

static void random_hex(char *out, size_t nbytes)
{
    uint8_t raw[32];
    if (hash_random(raw, nbytes) != 0)
        memset(raw, 0, nbytes);
    hex_encode(raw, nbytes, out);
}

static bool safe_request_id(const char *v)
{
    if (v == NULL || *v == '\0' || strlen(v) > 64)
        return false;
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

static void begin_request(http_req_t *req)
{
    const char *rid = http_header(req, "X-Request-Id");
    if (safe_request_id(rid))
        snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
    else
        random_hex(req->request_id, 16);
    const char *tp = http_header(req, "traceparent");
    bool inherited = http_parse_traceparent(tp, req->trace_id);
    if (!inherited)
        random_hex(req->trace_id, 16);
    random_hex(req->span_id, 8);
    const char *flags = inherited ? tp + 53 : "01";
    snprintf(req->traceparent, sizeof(req->traceparent), "00-%s-%s-%.2s", req->trace_id,
             req->span_id, flags);
}

/* A string with a \u0000 escape (NUL) in a body that parsed as JSON: cJSON
 * would keep only the part before it ("c-42\u0000x" read as "c-42"), so
 * such a body is refused. Returns the escape's byte offset, or -1; *key
 * (up to keyn bytes) names the member it belongs to when that is plain. */
static long json_nul_escape(const char *s, size_t n, char *key, size_t keyn)
{
    size_t start = 0;
    bool in = false;
    snprintf(key, keyn, "?");
    for (size_t i = 0; i < n; i++) {
        if (!in) {
            if (s[i] == '"') {
                in = true;
                start = i + 1;
            }
            continue;
        }
        if (s[i] == '\\') {
            if (i + 5 < n && memcmp(s + i + 1, "u0000", 5) == 0)
                return (long)i;
            i++; /* the escaped character */
            continue;
        }
        if (s[i] != '"')
            continue;
        in = false;
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n'))
            j++;
        if (j < n && s[j] == ':' && i - start < keyn && memchr(s + start, '\\', i - start) == NULL)
            snprintf(key, keyn, "%.*s", (int)(i - start), s + start);
    }
    return -1;
}

static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static bool is_form_type(const char *ct)
{
    if (ct == NULL)
        return false;
    size_t n = strcspn(ct, "; ");
    return n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

static bool has_body_method(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* Authentication, scope and body checks, then the handler. */
static void dispatch(http_req_t *req)
{
    app_t *app = req->app;
    if (req->too_large) {
        http_reply_error(req, 413, "payload_too_large", "request body exceeds %ld bytes",
                         req->body_limit);
        return;
    }
    route_status_t rs = router_match(app->router, req->method, req->path, &req->match);
    if (rs == ROUTE_NOT_FOUND) {
        http_reply_error(req, 404, "not_found", "no route matches %s on this path", req->method);
        return;
    }
    if (rs == ROUTE_BAD_METHOD) {
        http_reply_error(req, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
                         req->method, req->match.allow);
        http_reply_header(req, "Allow", req->match.allow);
        return;
    }
    query_problem_t qp = {.why = NULL};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_arg, &qp);
    if (qp.why) {
        http_reply_error(req, 400, "invalid_query", "%s %s", qp.name, qp.why);
        return;
    }
    const route_t *rt = req->match.route;
    if (http_refuse_source_flood(req))
        return;
    if (rt->scope != 0) {
        hd_err_t err;
        int arc = http_authenticate_limited(req, &err);
        if (arc == 1)
            return; /* 429, replied */
        if (arc == -2) {
            http_reply_error(req, 503, "unavailable", "%s", err.msg);
            http_reply_header(req, "Retry-After", "1");
            return;
        }
        if (arc != 0) {
            http_reply_error(req, 401, "unauthorized", "%s", err.msg);
            http_reply_header(req, "WWW-Authenticate", "Bearer realm=\"herald\"");
            return;
        }
        unsigned need = rt->scope & SCOPE_ALL;
        if (need && (req->principal.scopes & need) != need) {
            http_reply_error(req, 403, "forbidden", "this token lacks the %s scope",
                             scope_name(need));
            return;
        }
    }
    bool json_body = rt->body == BODY_JSON || (rt->body == BODY_JSON_OPT && req->body.len > 0);
    if (has_body_method(req->method) && json_body) {
        if (!is_json_type(http_header(req, "Content-Type"))) {
            http_reply_error(req, 415, "unsupported_media_type",
                             "Content-Type must be application/json");
            return;
        }
        if (req->body.len == 0) {
            http_reply_error(req, 400, "invalid_json",
                             "request body is empty; expected a JSON "
                             "object");
            return;
        }
        const char *end = NULL;
        req->json = cJSON_ParseWithLengthOpts(req->body.data, req->body.len, &end, false);
        if (req->json == NULL) {
            size_t off = end ? (size_t)(end - req->body.data) : 0;
            http_reply_error(req, 400, "invalid_json", "malformed JSON at byte %zu", off);
            return;
        }
        /* cJSON stops after the first value; anything but whitespace after
         * it makes the document malformed. */
        size_t off = (size_t)(end - req->body.data);
        while (off < req->body.len && (req->body.data[off] == ' ' || req->body.data[off] == '\t' ||
                                       req->body.data[off] == '\r' || req->body.data[off] == '\n'))
            off++;
        if (off < req->body.len) {
            http_reply_error(req, 400, "invalid_json", "malformed JSON at byte %zu", off);
            return;
        }
        if (!cJSON_IsObject(req->json)) {
            http_reply_error(req, 400, "invalid_json", "expected a JSON object at byte 0");
            return;
        }
        char key[64];
        long nul = json_nul_escape(req->body.data, req->body.len, key, sizeof(key));
        if (nul >= 0) {
            http_reply_error(req, 400, "invalid_json",
                             "%s: a string holds \\u0000 (NUL) at byte %ld; no field may", key,
                             nul);
            return;
        }
    } else if (has_body_method(req->method) && rt->body == BODY_FORM) {
        if (!is_form_type(http_header(req, "Content-Type"))) {
            http_reply_error(req, 415, "unsupported_media_type",
                             "Content-Type must be application/x-www-form-urlencoded");
            return;
        }
    }
    ((http_handler_fn)rt->handler)(req);
    if (!req->replied)
        http_reply_error(req, 500, "internal", "the handler gave no answer");
}

static enum MHD_Result send_reply(http_req_t *req)
{
    if (req->resp == NULL)
        http_reply_error(req, 500, "internal", "no response");
    MHD_add_response_header(req->resp, "X-Request-Id", req->request_id);
    MHD_add_response_header(req->resp, "traceparent", req->traceparent);
    MHD_add_response_header(req->resp, "X-Content-Type-Options", "nosniff");
    if (MHD_get_response_header(req->resp, "Cache-Control") == NULL)
        MHD_add_response_header(req->resp, "Cache-Control", "no-store");
    req->queued = true;
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, req->resp);
    MHD_destroy_response(req->resp);
    req->resp = NULL;
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    http_server_t *srv = cls;
    http_req_t *req = *con_cls;
    if (req == NULL) {
        req = xcalloc(1, sizeof(*req));
        req->app = srv->app;
        req->conn = conn;
        req->method = method;
        req->path = xstrdup(url);
        http_guard_headers_in(conn);
        req->match.route = NULL;
        buf_init(&req->body);
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        begin_request(req);
        *con_cls = req;
        /* A declared length over the limit is refused before reading it. */
        const cfg_t *cfg = srv->app->cfg;
        req->body_limit = strncmp(url, "/api/crm/webhooks/", 18) == 0 ? cfg->webhook_max_bytes
                                                                      : cfg->max_body_bytes;
        const char *cl = http_header(req, "Content-Length");
        if (cl && strtoll(cl, NULL, 10) > req->body_limit) {
            req->too_large = true;
            dispatch(req);
            return send_reply(req);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t max = (size_t)req->body_limit;
        if (!req->too_large && req->body.len + *upload_size > max) {
            req->too_large = true;
            req->discarded = req->body.len;
            buf_free(&req->body);
        }
        if (req->too_large) {
            /* A body a little over the limit is read and dropped so the
             * client, still sending, can read the 413; an endless one is
             * answered at 4x the limit and the connection closed. */
            req->discarded += *upload_size;
            *upload_size = 0;
            if (req->discarded > 4 * max) {
                dispatch(req);
                return send_reply(req);
            }
            return MHD_YES;
        }
        buf_append(&req->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->queued)
        return MHD_YES; /* already answered (early 413) */
    if (req->resumed)   /* a suspended request, its answer now ready */
        return send_reply(req);
    dispatch(req);
    if (req->wait_fn) {
        /* Suspended before the waiter can see it: a resume never comes
         * before its suspend. */
        MHD_suspend_connection(conn);
        pthread_mutex_lock(&srv->wait_mu);
        req->wait_next = srv->incoming;
        srv->incoming = req;
        pthread_mutex_unlock(&srv->wait_mu);
        return MHD_YES;
    }
    return send_reply(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server_t *srv = cls;
    http_req_t *req = *con_cls;
    if (req == NULL)
        return;
    http_guard_request_done(srv->guard, conn);
    double secs = elapsed_s(&req->start);
    int idx = req->match.route ? req->match.route->index : -1;
    metrics_http_observe(srv->app->metrics, idx, req->status, secs);
    buf_t f;
    buf_init(&f);
    buf_puts(&f, "\"method\":\"");
    buf_json_escape(&f, req->method);
    buf_puts(&f, "\",\"path\":\"");
    char *path = addr_mask_path(req->path); /* an address in a path is not logged */
    buf_json_escape(&f, path ? path : "");
    free(path);
    buf_printf(&f, "\",\"route\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,\"bytes_in\":%zu",
               req->match.route ? req->match.route->pattern : "", req->status, secs * 1000.0,
               req->body.len);
    buf_printf(&f, ",\"request_id\":\"%s\",\"trace_id\":\"%s\"", req->request_id, req->trace_id);
    if (req->authenticated) {
        buf_puts(&f, ",\"sub\":\"");
        buf_json_escape(&f, req->principal.sub);
        buf_putc(&f, '"');
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        buf_printf(&f, ",\"terminated\":%d", (int)toe);
    log_write_raw(LOG_INFO, "request", f.data);
    buf_free(&f);
    if (req->resp)
        MHD_destroy_response(req->resp);
    cJSON_Delete(req->json);
    free(req->wait_data);
    if (req->wait_release)
        req->wait_release(req->wait_obj);
    for (int i = 0; i < req->nscratch; i++)
        free(req->scratch[i]);
    buf_free(&req->body);
    free(req->path);
    free(req);
    *con_cls = NULL;
}

http_server_t *http_start(app_t *app, hd_err_t *err)
{
    const cfg_t *cfg = app->cfg;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai != 0) {
        hd_err_set(err, "http.listen: cannot resolve %s: %s", cfg->listen_host, gai_strerror(gai));
        return NULL;
    }
    http_server_t *srv = xcalloc(1, sizeof(*srv));
    srv->app = app;
    srv->guard = http_guard_start(cfg);
    unsigned max_conns = http_guard_fd_budget(cfg);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->guard)
        srv->daemon = MHD_start_daemon(
            flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, srv,
            MHD_OPTION_EXTERNAL_LOGGER, http_guard_mhd_log, srv->guard,
            MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)cfg->http_idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, max_conns,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_conns_per_addr,
            MHD_OPTION_NOTIFY_CONNECTION, http_guard_notify, srv->guard,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    freeaddrinfo(ai);
    pthread_mutex_init(&srv->wait_mu, NULL);
    if (srv->daemon != NULL && pthread_create(&srv->waiter, NULL, run_waiter, srv) != 0) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    if (srv->daemon == NULL) {
        http_guard_stop(srv->guard);
        pthread_mutex_destroy(&srv->wait_mu);
        free(srv);
        hd_err_set(err,
                   "http.listen: cannot listen on %s (in use, or not an address of this "
                   "machine)",
                   cfg->listen);
        return NULL;
    }
    return srv;
}

void http_stop(http_server_t *srv)
{
    if (srv == NULL)
        return;
    /* Suspended requests get their answer first: the daemon does not stop
     * while connections are suspended. */
    pthread_mutex_lock(&srv->wait_mu);
    srv->stopping = true;
    pthread_mutex_unlock(&srv->wait_mu);
    pthread_join(srv->waiter, NULL);
    MHD_stop_daemon(srv->daemon);
    http_guard_stop(srv->guard);
    pthread_mutex_destroy(&srv->wait_mu);
    free(srv);
}
