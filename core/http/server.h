/*
 * server.h - the HTTP server on libmicrohttpd: request life cycle, body
 * limits, content types, JSON errors, authentication, access log, metrics.
 *
 * A handler receives a fully read, checked request (route matched, token
 * verified and scoped, JSON body parsed when the route takes one) and answers
 * with exactly one http_reply_* call. Errors are always
 *   {"error":{"code":"...","message":"..."}}
 */
#ifndef HERALD_HTTP_SERVER_H
#define HERALD_HTTP_SERVER_H

#include "base/buf.h"
#include "base/err.h"
#include "engine/app.h"
#include "http/auth.h"
#include "http/router.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <time.h>

typedef struct http_server http_server_t;

#define HTTP_MAX_SCRATCH 16

typedef struct http_req {
    app_t *app;
    struct MHD_Connection *conn;
    const char *method;
    char *path; /* owned copy, without the query string */
    route_match_t match;
    buf_t body;
    bool too_large;
    long body_limit;  /* http.max_body_bytes, or webhook_max_bytes for a webhook */
    size_t discarded; /* body bytes dropped after the limit was crossed */
    cJSON *json;      /* parsed body for BODY_JSON routes; owned */
    auth_principal_t principal;
    bool authenticated;
    char request_id[65];
    char trace_id[33];
    char span_id[17];
    char traceparent[56]; /* what we pass on: our span under the caller's trace */
    struct timespec start;
    int status;
    struct MHD_Response *resp;
    bool replied;
    char *scratch[HTTP_MAX_SCRATCH]; /* decoded query values, freed with the request */
    int nscratch;
    /* suspended requests (http_suspend) */
    bool queued;                /* the response went to libmicrohttpd */
    bool resumed;               /* woken with its response ready */
    struct timespec wait_until; /* CLOCK_MONOTONIC deadline */
    bool (*wait_fn)(struct http_req *req, bool timed_out);
    char *wait_data; /* the handler's, freed with the request */
    void *wait_obj;  /* the handler's, released with wait_release when the request ends */
    void (*wait_release)(void *obj);
    struct http_req *wait_next;
} http_req_t;

typedef void (*http_handler_fn)(http_req_t *req);

/* Starts listening on cfg->listen with cfg->http_threads threads. The app
 * (and its router) must outlive the server. */
http_server_t *http_start(app_t *app, hd_err_t *err);
void http_stop(http_server_t *srv);

/* Replies with a JSON document; takes ownership of doc. */
void http_reply_json(http_req_t *req, int status, cJSON *doc);
/* Replies {"error":{"code":code,"message":<formatted>}}. A 503 (a
 * dependency is down) carries "Retry-After: 1" unless the caller sets
 * another with http_reply_header. */
void http_reply_error(http_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies with bytes of the given content type (copied). */
void http_reply_bytes(http_req_t *req, int status, const char *content_type, const void *data,
                      size_t len);
/* Replies with a response the caller made (a streamed one:
 * MHD_create_response_from_callback); takes ownership of resp. */
void http_set_response(http_req_t *req, int status, struct MHD_Response *resp);
/* Sets a header of the reply made by the last http_reply_* call, replacing
 * one of that name already set. */
void http_reply_header(http_req_t *req, const char *name, const char *value);

/* Answers later without holding an HTTP thread: after the handler returns
 * the connection is suspended, and a waiter thread calls fn about every
 * 50 ms (timed_out set once ms have passed) until it returns true, having
 * made the reply with http_reply_*; then the reply goes out. fn runs on the
 * waiter thread. The reply made before this call is the one sent if the
 * server stops first. */
void http_suspend(http_req_t *req, int ms, bool (*fn)(http_req_t *req, bool timed_out));

/* Request header or query argument, NULL when absent. */
const char *http_header(http_req_t *req, const char *name);
const char *http_query(http_req_t *req, const char *name);

/* The query string as sent ("a=1&b=%20"), without '?'; NULL when none.
 * Caller frees. (Webhook signatures cover it byte for byte.) */
char *http_raw_query(http_req_t *req);

/* Parses a W3C traceparent header; fills trace_id (32 hex) when valid. */
bool http_parse_traceparent(const char *v, char trace_id[33]);

#endif
