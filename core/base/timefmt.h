/*
 * timefmt.h - RFC 3339 timestamps for the API ("2026-11-28T09:00:00Z").
 */
#ifndef HERALD_BASE_TIMEFMT_H
#define HERALD_BASE_TIMEFMT_H

#include <stdint.h>

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" (a space may replace 'T',
 * 't'/'z' accepted), of the years 0001 to 9999 once in UTC. Returns 0 and
 * Unix seconds, or -1. */
int timefmt_parse(const char *s, int64_t *out);

/* Formats t as "YYYY-MM-DDTHH:MM:SSZ" into out (at least 32 bytes). */
void timefmt_format(int64_t t, char *out);

#endif
