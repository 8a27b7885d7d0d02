/*
 * scope.h - the API's authorization scopes (send, read, admin) as a bit mask,
 * and their text form: "send read" in tokens (RFC 8693 style), "send,read"
 * on the command line and in the API key table. Used by http/ (routes and
 * tokens), store/ (API keys) and cli/; depends on base/err only.
 */
#ifndef HERALD_BASE_SCOPE_H
#define HERALD_BASE_SCOPE_H

#include "base/err.h"

#include <stddef.h>

enum { SCOPE_SEND = 1u, SCOPE_READ = 2u, SCOPE_ADMIN = 4u, SCOPE_ALL = 7u };

/* Parses "send,read" or "send read" into a mask; unknown or empty -> -1 with err. */
int scope_parse(const char *s, unsigned *mask, hd_err_t *err);

/* Writes the space-separated scope list of mask into out (cut short when n
 * is too small). */
void scope_format(unsigned mask, char *out, size_t n);

/* Name of a single scope bit ("send", "read", "admin"); "?" for anything else. */
const char *scope_name(unsigned scope);

#endif
