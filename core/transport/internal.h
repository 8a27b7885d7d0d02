/*
 * internal.h - what the multi loop (loop.c) and the drivers (smtp.c,
 * http_api.c, outbox.c) share. Not part of the transport's public contract.
 */
#ifndef HERALD_TRANSPORT_INTERNAL_H
#define HERALD_TRANSPORT_INTERNAL_H

#include "base/buf.h"
#include "crypto/dkim.h"
#include "transport/transport.h"

#include <curl/curl.h>
#include <time.h>

/* One message on its way: the easy handle and everything it points into. */
typedef struct tr_xfer {
    tr_message_t *msg;
    tr_done_fn done;
    void *ctx;
    CURL *easy;
    struct curl_slist *list;    /* SMTP recipients */
    struct curl_slist *headers; /* HTTP headers */
    buf_t body;                 /* what is uploaded */
    size_t body_off;
    buf_t resp;      /* HTTP response body (bounded) */
    char line[512];  /* SMTP: the last reply line */
    char stage[8];   /* SMTP: the last command sent */
    bool quitting;   /* SMTP: QUIT went out; later replies are not the outcome */
    int retry_after; /* from a Retry-After header */
    struct timespec start;
    struct tr_xfer *next;
} tr_xfer_t;

/* The settings, owned copies (see tr_config_t). */
typedef struct tr_settings {
    tr_config_t c;
    char *strings[32]; /* the copies behind c's pointers, freed with it */
    int nstrings;
    char from_addr[256];
    char from_name[256];
    dkim_signer_t *dkim; /* NULL: email goes out unsigned */
} tr_settings_t;

/* Driver hooks. prepare() sets up x->easy, or returns 1 after filling *res
 * when the message is done without network I/O (outbox, refused input), or
 * -1 on an internal failure (res filled too). finish() reads the outcome. */
int tr_smtp_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res);
void tr_smtp_finish(const tr_settings_t *s, tr_xfer_t *x, CURLcode rc, tr_result_t *res);
int tr_twilio_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res);
int tr_whatsapp_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res);
void tr_http_finish(const tr_settings_t *s, tr_xfer_t *x, CURLcode rc, tr_result_t *res);
int tr_post_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res);
void tr_post_finish(const tr_settings_t *s, tr_xfer_t *x, CURLcode rc, tr_result_t *res);
int tr_outbox_write(const tr_settings_t *s, const tr_message_t *m, tr_result_t *res);

/* The email as both the SMTP and the outbox drivers send it (the same bytes),
 * DKIM-signed over those bytes when s->dkim is set. */
int tr_build_email(const tr_settings_t *s, const tr_message_t *m, buf_t *out, hd_err_t *err);

/* Common easy-handle set-up: timeouts, no signals, keep-alive. */
void tr_easy_common(CURL *e, int timeout_ms);

/* Maps a libcurl failure to the network fields of res; returns 1 when rc
 * was a transport-level failure (res filled), 0 otherwise. */
int tr_network_error(CURL *e, CURLcode rc, size_t upload_len, tr_result_t *res);

/* Fills res as a refusal before any I/O. */
int tr_refuse(tr_result_t *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
