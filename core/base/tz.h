/*
 * tz.h - IANA time zones without TZ/tzset: a reader of the system's compiled
 * zoneinfo (TZif v2+ files under /usr/share/zoneinfo, or $TZDIR) and of the
 * POSIX TZ rule in their footer for instants past the last transition.
 *
 * Thread-safe: zones are parsed once, cached process-wide, immutable after.
 */
#ifndef HERALD_BASE_TZ_H
#define HERALD_BASE_TZ_H

#include "base/err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tz_zone tz_zone_t;

typedef struct tz_local {
    int year, month, day; /* month 1-12, day 1-31 */
    int hour, min, sec;
    int wday;   /* ISO: 1 = Monday ... 7 = Sunday */
    int yday;   /* 1-366 */
    int offset; /* seconds east of UTC */
    bool isdst;
    char abbr[16]; /* "CEST", "+03" */
} tz_local_t;

/* Returns the zone called name ("Europe/Paris", "UTC"), loading it on first
 * use. NULL with err for a name that is not a zone: unknown, malformed, or
 * trying to leave the zoneinfo directory ("../", absolute paths). The zone
 * lives until tz_cache_clear(). */
const tz_zone_t *tz_get(const char *name, hd_err_t *err);

/* The canonical name the zone was loaded under. */
const char *tz_name(const tz_zone_t *z);

/* Converts a UTC instant to local wall-clock fields. */
void tz_to_local(const tz_zone_t *z, int64_t utc, tz_local_t *out);

/* Converts local wall-clock fields to a UTC instant. A time skipped by a
 * forward change (02:30 on a spring-forward night) is moved forward by the
 * size of the gap (03:30); a repeated time (autumn) maps to the earlier
 * instant. Fields out of range are normalised (month 13 = January next
 * year, min 90 = +1 h 30). */
int64_t tz_from_local(const tz_zone_t *z, int year, int month, int day, int hour, int min, int sec);

/* Frees every cached zone (at exit, for leak checkers). */
void tz_cache_clear(void);

#endif
