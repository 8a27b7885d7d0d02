/*
 * webhook_sig.h - provider webhook signatures, checked in constant time
 * before anything is acted on.
 *
 *   Twilio  X-Twilio-Signature = base64(HMAC-SHA1(auth token, URL + every
 *           posted name and value, sorted by name)), URL being the one
 *           Twilio requested, query string included.
 *   Meta    X-Hub-Signature-256 = "sha256=" hex(HMAC-SHA256(app secret,
 *           the raw body)).
 */
#ifndef HERALD_HTTP_WEBHOOK_SIG_H
#define HERALD_HTTP_WEBHOOK_SIG_H

#include "http/form.h"

#include <stdbool.h>
#include <stddef.h>

/* The signature for one URL (base64 into out, NUL-terminated). */
void sig_twilio(const char *token, const char *url, const form_t *params, char out[32]);

/* Whether signature matches url as given, or url with its scheme's default
 * port added (when it has none) or removed (when it has it): Twilio signs
 * the URL as configured, and proxies differ on whether they keep ":443". */
bool sig_twilio_valid(const char *token, const char *url, const form_t *params,
                      const char *signature);

bool sig_meta_valid(const char *secret, const char *body, size_t len, const char *header);

#endif
