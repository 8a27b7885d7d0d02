/*
 * tz_rule.h - shared by tz.c and tz_rule.c only (the public interface is
 * tz.h): the local time types of a zone, the POSIX TZ rule of a TZif footer
 * ("std offset [dst [offset] [,start[/time],end[/time]]]", RFC 8536 3.3),
 * and the proleptic Gregorian calendar both files count days with.
 */
#ifndef HERALD_BASE_TZ_RULE_H
#define HERALD_BASE_TZ_RULE_H

#include <stdbool.h>
#include <stdint.h>

/* RFC 8536 asks for UT offsets in (-25 h, +26 h); bounding them keeps every
 * "instant + offset" far from overflow and bounds the window searched by
 * tz_from_local. */
#define TZ_OFF_MAX (26 * 3600)

typedef struct tz_type {
    int32_t utoff; /* seconds east of UTC */
    bool isdst;
    char abbr[16]; /* truncated to 15 characters, NUL-terminated */
} tz_type_t;

/* One end of the DST period in a POSIX TZ rule. */
typedef struct tz_rule_date {
    char kind; /* 'J': Julian day 1-365 without Feb 29; 'N': day 0-365; 'M': month.week.day */
    int day;   /* J and N forms */
    int mon, week, wday; /* M form: month 1-12, week 1-5 (5 = last), weekday 0 = Sunday */
    int32_t secs;        /* local time of day, may be negative or past 24 h (RFC 8536 3.3.1) */
} tz_rule_date_t;

typedef struct tz_rule {
    tz_type_t std;
    bool has_dst;
    tz_type_t dst;
    tz_rule_date_t start; /* given in standard time */
    tz_rule_date_t end;   /* given in daylight time */
} tz_rule_t;

/* a / b rounded towards minus infinity. */
int64_t tz_floor_div(int64_t a, int64_t b);
/* Days since 1970-01-01 of the date y-m-d (month 1-12), any year. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
/* The date of a day count since 1970-01-01. */
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* 0 = Sunday ... 6 = Saturday of a day count since 1970-01-01. */
int tz_weekday(int64_t days);

/* Fills r from the footer string s (NUL-terminated, non-empty). Returns -1
 * with a static reason in *why: a malformed rule, daylight time without
 * dates, an offset beyond TZ_OFF_MAX. */
int tz_rule_parse(const char *s, tz_rule_t *r, const char **why);

/* The type (standard or daylight) in force at UTC instant t. */
const tz_type_t *tz_rule_type(const tz_rule_t *r, int64_t t);

/* The first rule change strictly after t; false when the rule has no DST. */
bool tz_rule_next(const tz_rule_t *r, int64_t t, int64_t *next);

#endif
