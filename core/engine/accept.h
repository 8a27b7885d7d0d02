/*
 * accept.h - accepting a message (POST /api/crm/communications): the one
 * place a request becomes a stored message. In order: the Idempotency-Key
 * (a replay answers what the first request was answered), every field
 * checked (400 naming it), the context against its message type's
 * declaration (types.check: 400 invalid_context with every problem), the client's preferences with
 * the request's own recipient, strategy.decide, then one statement stores the message, its send job
 * and the key's answer, and the workers are woken. The HTTP layer parses, calls accept_message and
 * replies with what it says.
 */
#ifndef HERALD_ENGINE_ACCEPT_H
#define HERALD_ENGINE_ACCEPT_H

#include "engine/app.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct accept_in {
    const cJSON *body; /* the parsed JSON object */
    const char *raw;   /* the exact body bytes (the idempotency hash) */
    size_t raw_len;
    const char *path;      /* the request path (the idempotency hash) */
    const char *principal; /* the caller (JWT sub) */
    const char *idem_key;  /* Idempotency-Key, or NULL */
    const char *wait;      /* ?wait=, or NULL */
} accept_in_t;

typedef struct accept_out {
    int status;        /* 202, or the error's status */
    char *body;        /* 202 (or replayed) answer, JSON; NULL for an error */
    char code[32];     /* an error's code ("invalid_request", ...) */
    char message[600]; /* an error's message */
    cJSON *problems;   /* invalid_context: [{path, expected, got}]; owned */
    char id[40];       /* the new message's id (202, not replayed) */
    bool replayed;     /* Idempotent-Replayed: the stored answer */
    int retry_after;   /* > 0: send Retry-After */
    int wait_ms;       /* > 0: hold the answer until the first outcome */
} accept_out_t;

/* Fills *out in every case (caller frees with accept_out_free). */
void accept_message(app_t *app, const accept_in_t *in, accept_out_t *out);
void accept_out_free(accept_out_t *out);

#endif
