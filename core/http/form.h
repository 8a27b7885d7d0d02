/*
 * form.h - application/x-www-form-urlencoded bodies (the WHATWG URL
 * standard's form encoding: '&'-separated name=value pairs, '+' is a space,
 * %XX escapes). Used by the Twilio webhook, whose signature covers every
 * posted parameter.
 */
#ifndef HERALD_HTTP_FORM_H
#define HERALD_HTTP_FORM_H

#include "base/err.h"

#include <stddef.h>

typedef struct form_pair {
    char *name, *value; /* decoded, NUL-terminated */
} form_pair_t;

typedef struct form {
    form_pair_t *pairs;
    size_t n;
} form_t;

/* Decodes data[0..len). A malformed escape ("%G1", "%4") or a decoded NUL is
 * an error naming its byte offset; empty segments ("a=1&&b=2") are skipped
 * and a name without '=' has the value "". */
int form_parse(const char *data, size_t len, form_t *out, hd_err_t *err);

/* The value of the first pair named name, or NULL. */
const char *form_get(const form_t *f, const char *name);

void form_free(form_t *f);

#endif
