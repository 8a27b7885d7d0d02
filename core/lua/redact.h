/*
 * redact.h - keeps personal data out of script errors: the text of an
 * error (and its traceback) with every value of a call's personal
 * arguments (a message context, a client's preferences) replaced by its
 * path and length, e.g. "got '<venue: 23 bytes>'". Uses cJSON only.
 *
 * Strings of REDACT_MIN_BYTES or more are replaced wherever they occur;
 * shorter ones and numbers only as whole words, so "en" does not eat
 * "content.lua". A one-byte value is left alone: it says nothing.
 */
#ifndef HERALD_LUA_REDACT_H
#define HERALD_LUA_REDACT_H

#include <cjson/cJSON.h>

#define REDACT_MIN_BYTES 4 /* replaced anywhere from this length up */

/* text with the values of vals[0..n) masked; caller frees. NULL on OOM.
 * Top-level strings are named "argN" (1-based), members by their path
 * ("planner.name", "next_steps[2]", 1-based as Lua counts). */
char *redact_text(const char *text, cJSON *const *vals, int n);

#endif
