/*
 * addr.h - the checks every layer applies to outside input before it becomes
 * a recipient or a header: email addresses, header values (injection),
 * E.164 phone numbers and channel names. Pure functions, no allocation.
 */
#ifndef HERALD_BASE_ADDR_H
#define HERALD_BASE_ADDR_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

/* Checks an address for use in SMTP commands and headers: local@domain,
 * printable ASCII only, no spaces/quotes/angle brackets/commas/semicolons,
 * <= 254 chars, local part a dot-atom of <= 64, domain of letters, digits and
 * hyphens with a dot or "localhost". 0, or -1 with err "not an email address
 * (reason)". */
int addr_check_email(const char *addr, hd_err_t *err);

/* Why the n bytes at d are not a domain name (letters, digits and hyphens,
 * dot-separated labels of 1..63 without an edge hyphen, at most 253, with a
 * dot or "localhost"), as a static string; NULL when they are one. */
const char *addr_domain_problem(const char *d, size_t n);

/* Whether c is RFC 5322 atext (what a dot-atom is made of). */
bool addr_is_atext(unsigned char c);

/* Checks len bytes of a header value taken from outside (a JSON or Lua string
 * that knows its length and so may hold a NUL) for CR, LF and NUL. 0, or -1
 * with err "<field>: contains a line break (header injection refused)" or
 * "... a NUL byte ...". The MIME builder applies it to every header value;
 * callers holding counted strings call it before turning them into C
 * strings, where a NUL would silently cut the value short. */
int addr_check_header_value(const char *field, const char *value, size_t len, hd_err_t *err);

/* Whether p is an E.164 number: '+' then 8 to 15 digits, the first not 0 (no
 * country code starts with 0). NULL is not. */
bool addr_is_e164(const char *p);

/* path (as sent, maybe percent-encoded) for the access log: each segment
 * that holds an address (an '@', "%40", or 7 digits or more among only
 * digits, '+' and separators) becomes "{address: N bytes}". Caller frees. */
char *addr_mask_path(const char *path);

/* Whether s names a channel: "email", "sms" or "whatsapp". NULL is not. */
bool addr_is_channel(const char *s);

#endif
