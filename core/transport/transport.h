/*
 * transport.h - one interface for sending a message on a channel, many
 * drivers: smtp (libcurl), twilio and whatsapp (HTTPS JSON/form APIs), and
 * outbox (files under var/outbox/, the local default).
 *
 * Sends are asynchronous: tr_send hands the message to a libcurl multi loop
 * running on its own thread, which keeps many transfers in flight (bounded
 * per channel), reuses connections, and calls the done callback - on the
 * loop thread - with a uniform result. The result is raw (what the provider
 * said); its category comes from the policy's classify script, applied by
 * the caller on its own thread (tr_result_to_json gives classify's input).
 */
#ifndef HERALD_TRANSPORT_TRANSPORT_H
#define HERALD_TRANSPORT_TRANSPORT_H

#include "base/err.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TR_EMAIL = 0, TR_SMS, TR_WHATSAPP, TR_NCHANNELS } tr_channel_t;

const char *tr_channel_name(tr_channel_t ch);
int tr_channel_parse(const char *s, tr_channel_t *out);

typedef struct tr_attachment {
    char *filename;
    char *content_type;
    uint8_t *data;
    size_t len;
} tr_attachment_t;

/* A message to send. Every pointer is owned by the message (tr_message_free). */
typedef struct tr_message {
    tr_channel_t channel;
    char *comm_id; /* our communication id: Message-ID, callbacks, file names */
    int attempt;
    char *to; /* email address, or an E.164 phone number */
    char *to_name;
    char *subject; /* email */
    char *text;    /* email text part; the SMS / WhatsApp body */
    char *html;    /* email */
    tr_attachment_t *attachments;
    int nattachments;
    char *unsubscribe_url; /* email: List-Unsubscribe (RFC 8058 one-click) */
    char *unsubscribe_mailto, *unsubscribe_subject; /* email: List-Unsubscribe's mailto */
    char *wa_template; /* WhatsApp: an approved template instead of text */
    char *wa_language;
    char *wa_components; /* with wa_template: a JSON array of Meta template components
                            (whatsapp.choose's); NULL: wa_params as the body's parameters */
    char *locale; /* the locale the content is written in ("fr"), recorded with the attempt */
    char **wa_params;
    int nwa_params;
    char *traceparent; /* passed on to HTTP providers */
    /* Not a message to a client: a JSON POST of `text` to this URL (the
     * operations alert webhook). Its own lane of TR_POST_IN_FLIGHT
     * transfers and a TR_POST_TIMEOUT_MS timeout, apart from every channel;
     * ok on a 2xx answer. */
    char *post_url;
} tr_message_t;

#define TR_POST_IN_FLIGHT  4
#define TR_POST_TIMEOUT_MS 5000

tr_message_t *tr_message_new(void);
void tr_message_free(tr_message_t *m);

/* What a send came to. Raw fields are what classify() reads. */
typedef struct tr_result {
    bool ok;
    char provider_id[160];
    char kind[8];           /* "smtp", "http", "network", "local", "io" */
    int smtp_code;          /* final SMTP reply code */
    char enhanced_code[16]; /* "5.1.1" */
    char smtp_stage[8];     /* the command that failed: connect auth mail rcpt data eom */
    int http_status;
    char provider_code[32];
    char provider_subcode[32];
    char network_error[16]; /* connect_failed dns_failed tls_failed timeout */
    char io_error[16];      /* kind "io" (the outbox): ENOSPC EROFS EACCES ENOTDIR ... */
    bool request_sent;      /* the whole request reached the provider's socket */
    bool stopped;           /* never started: the engine was stopping (tr_drain, tr_free) */
    int retry_after;        /* seconds the provider asked us to wait; 0 none */
    char text[512];         /* the provider's words */
    double latency_ms;
} tr_result_t;

/* classify()'s input (docs/scripting.md): {ok, kind, smtp_code, ...}. */
cJSON *tr_result_to_json(const tr_result_t *r);

/* Driver settings (from config.lua and the environment). */
typedef enum {
    TR_DRIVER_OUTBOX = 0,
    TR_DRIVER_SMTP,
    TR_DRIVER_TWILIO,
    TR_DRIVER_WHATSAPP
} tr_driver_t;

typedef struct tr_config {
    tr_driver_t driver[TR_NCHANNELS];
    int timeout_ms[TR_NCHANNELS];
    int in_flight[TR_NCHANNELS]; /* per channel; for SMTP this is the connection count */
    const char *outbox_dir;
    const char *public_url; /* Twilio StatusCallback base */
    /* smtp */
    const char *smtp_url;
    const char *smtp_username, *smtp_password;
    int smtp_starttls;      /* 0 off, 1 try, 2 required */
    const char *email_from; /* "Name <addr>" or "addr" */
    const char *email_reply_to;
    const char *email_domain; /* Message-ID domain; NULL: the From domain */
    /* DKIM: on when dkim_domain is set (then selector and key file are required) */
    const char *dkim_domain, *dkim_selector;
    const char *dkim_key_file; /* PEM private key (HERALD_DKIM_KEY_FILE) */
    /* twilio */
    const char *twilio_base_url, *twilio_sid, *twilio_token, *twilio_from;
    /* whatsapp */
    const char *wa_base_url, *wa_phone_number_id, *wa_token;
} tr_config_t;

typedef struct tr_engine tr_engine_t;

/* Called once per message on the loop thread. Takes ownership of msg. */
typedef void (*tr_done_fn)(void *ctx, tr_message_t *msg, const tr_result_t *res);

/* Starts the loop thread. The strings in c are copied. */
tr_engine_t *tr_new(const tr_config_t *c, hd_err_t *err);

/* Queues msg (taking ownership); done is called exactly once, also when the
 * message is refused before any I/O (kind "local": bad address, header
 * injection, missing settings). Never blocks on the network. */
void tr_send(tr_engine_t *t, tr_message_t *msg, tr_done_fn done, void *ctx);

/* Transfers queued or in flight right now. */
int tr_in_flight(tr_engine_t *t);

/* Starts no more transfers: each message still waiting for a slot is done at
 * once, not sent (kind "local", stopped = true); transfers in flight go on
 * to their answer or their timeout. For a stop that must not wait for a slow
 * provider to work through the queue. */
void tr_drain(tr_engine_t *t);

/* Lets transfers in flight finish (up to their timeouts), fails what is
 * still queued with a local "shutting down" result, stops the thread. */
void tr_free(tr_engine_t *t);

#endif
