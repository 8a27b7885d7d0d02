/*
 * tz_rule.c - the POSIX TZ rules of TZif footers ("CET-1CEST,M3.5.0,M10.5.0/3"):
 * parsing them and telling which offset is in force at an instant and when
 * it next changes, for instants past a zone's last transition; and the
 * proleptic Gregorian calendar that both this file and tz.c count days with
 * (see tz_rule.h). Pure computation: uses nothing but the C library.
 */
#include "base/tz_rule.h"

#include <string.h>

/* ---------------------------------------------------------------------------
 * Civil calendar (proleptic Gregorian), after Howard Hinnant's
 * days_from_civil / civil_from_days: shifting the year to start on March 1
 * puts the leap day last, so day-of-year maps to month with one formula, and
 * 400-year eras make negative years work with plain integer division.
 */

int64_t tz_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = tz_floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = tz_floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* 0 = Sunday ... 6 = Saturday; day 0 (1970-01-01) was a Thursday. */
int tz_weekday(int64_t days)
{
    int64_t r = (days + 4) % 7;
    return (int)(r < 0 ? r + 7 : r);
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    int m, d;
    tz_civil_from_days(tz_floor_div(t, 86400), &y, &m, &d);
    return y;
}

/* ---------------------------------------------------------------------------
 * POSIX TZ rule evaluation.
 */

/* Local seconds since the epoch at which date takes effect in year y. */
static int64_t rule_local(const tz_rule_date_t *r, int64_t y)
{
    int64_t days;
    if (r->kind == 'J') {
        /* Jn never counts Feb 29: J60 is March 1 in every year. */
        days = tz_days_from_civil(y, 1, 1) + r->day - 1 + (is_leap(y) && r->day >= 60);
    } else if (r->kind == 'N') {
        days = tz_days_from_civil(y, 1, 1) + r->day;
    } else {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int len = mdays[r->mon - 1] + (r->mon == 2 && is_leap(y));
        int64_t first = tz_days_from_civil(y, r->mon, 1);
        int64_t d = (r->wday - tz_weekday(first) + 7) % 7 + (int64_t)(r->week - 1) * 7;
        while (d >= len) /* week 5 means "last", which may be the 4th */
            d -= 7;
        days = first + d;
    }
    return days * 86400 + r->secs;
}

/*
 * Looks at the rule's changes around t: whether DST is in force at t (the
 * kind of the latest change at or before t) and the first change after it.
 * Deciding by the latest change, rather than by "start < end" within one
 * year, also covers DST spanning the new year (southern hemisphere), rule
 * times past 24 h or negative that move a change into the neighbouring year
 * (RFC 8536 3.3.1), and DST all year (tzfile(5): "J365/25" ending exactly
 * where the next year's "0/0" starts). Rule times stay within +-167 h, so
 * two years either side of t's standard-time year always hold both answers.
 */
static void rule_scan(const tz_rule_t *r, int64_t t, bool *dst, int64_t *next)
{
    int64_t y = year_of(t + r->std.utoff);
    int64_t last = INT64_MIN;
    bool have_next = false;
    *dst = false;
    for (int64_t yy = y - 2; yy <= y + 2; yy++) {
        /* start is written in standard time, end in daylight time; start
         * before end so that, at equal instants, the later one wins: a
         * year's end meeting the next year's start keeps DST, an empty
         * period inside one year does not. */
        int64_t ev[2] = {rule_local(&r->start, yy) - r->std.utoff,
                         rule_local(&r->end, yy) - r->dst.utoff};
        for (int i = 0; i < 2; i++) {
            if (ev[i] <= t && ev[i] >= last) {
                last = ev[i];
                *dst = i == 0;
            } else if (ev[i] > t && (!have_next || ev[i] < *next)) {
                *next = ev[i];
                have_next = true;
            }
        }
    }
}

const tz_type_t *tz_rule_type(const tz_rule_t *r, int64_t t)
{
    if (!r->has_dst)
        return &r->std;
    bool dst;
    int64_t next;
    rule_scan(r, t, &dst, &next);
    return dst ? &r->dst : &r->std;
}

/* The first rule change strictly after t, if the rule has any. */
bool tz_rule_next(const tz_rule_t *r, int64_t t, int64_t *next)
{
    if (!r->has_dst)
        return false;
    bool dst;
    rule_scan(r, t, &dst, next);
    return true;
}

/* ---------------------------------------------------------------------------
 * Footer parsing: std offset [dst [offset] [,start[/time],end[/time]]]
 */

typedef struct cursor {
    const char *p;
    const char *why; /* first error, static string */
} cursor_t;

static bool reject(cursor_t *c, const char *why)
{
    if (c->why == NULL)
        c->why = why;
    return false;
}

/* Consumes ch if it is next; never steps past the terminating NUL. */
static bool expect(cursor_t *c, char ch)
{
    if (*c->p != ch)
        return false;
    c->p++;
    return true;
}

static bool parse_abbr(cursor_t *c, char out[16])
{
    const char *s = c->p, *e;
    if (*s == '<') {
        s++;
        e = s;
        while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') ||
               *e == '+' || *e == '-')
            e++;
        if (*e != '>')
            return reject(c, "unterminated <abbreviation>");
        c->p = e + 1;
    } else {
        e = s;
        while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z'))
            e++;
        c->p = e;
    }
    if (e - s < 3)
        return reject(c, "abbreviation shorter than 3 characters");
    size_t n = (size_t)(e - s) < 15 ? (size_t)(e - s) : 15;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool parse_num(cursor_t *c, int max, int *out)
{
    if (*c->p < '0' || *c->p > '9')
        return reject(c, "expected a number");
    int v = 0;
    while (*c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p++ - '0');
        if (v > max)
            return reject(c, "number out of range");
    }
    *out = v;
    return true;
}

/* [+-]hh[:mm[:ss]] as seconds; offsets allow hh <= 24, rule times 167. */
static bool parse_hms(cursor_t *c, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, s = 0;
    if (*c->p == '+' || *c->p == '-')
        sign = *c->p++ == '-' ? -1 : 1;
    if (!parse_num(c, max_h, &h))
        return false;
    if (*c->p == ':') {
        c->p++;
        if (!parse_num(c, 59, &m))
            return false;
        if (*c->p == ':') {
            c->p++;
            if (!parse_num(c, 59, &s))
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool parse_date(cursor_t *c, tz_rule_date_t *d)
{
    if (*c->p == 'J') {
        c->p++;
        d->kind = 'J';
        if (!parse_num(c, 365, &d->day) || d->day < 1)
            return reject(c, "Jn day out of range");
    } else if (*c->p == 'M') {
        c->p++;
        d->kind = 'M';
        if (!parse_num(c, 12, &d->mon) || d->mon < 1 || !expect(c, '.') ||
            !parse_num(c, 5, &d->week) || d->week < 1 || !expect(c, '.') ||
            !parse_num(c, 6, &d->wday))
            return reject(c, "bad Mm.w.d date");
    } else {
        d->kind = 'N';
        if (!parse_num(c, 365, &d->day))
            return reject(c, "bad rule date");
    }
    d->secs = 2 * 3600; /* POSIX default: 02:00 */
    if (expect(c, '/')) {
        if (!parse_hms(c, 167, &d->secs))
            return reject(c, "bad rule time");
    }
    return true;
}

/* Fills r from the footer string s (NUL-terminated, non-empty). Returns -1
 * with a static reason in *why. */
int tz_rule_parse(const char *s, tz_rule_t *r, const char **why)
{
    cursor_t c = {s, NULL};
    int32_t off;
    memset(r, 0, sizeof(*r));
    if (!parse_abbr(&c, r->std.abbr) || !parse_hms(&c, 24, &off))
        goto fail;
    r->std.utoff = -off; /* POSIX counts hours west of Greenwich */
    if (*c.p != '\0') {
        if (!parse_abbr(&c, r->dst.abbr))
            goto fail;
        r->has_dst = true;
        r->dst.isdst = true;
        r->dst.utoff = r->std.utoff + 3600;
        if (*c.p != ',' && *c.p != '\0') {
            if (!parse_hms(&c, 24, &off))
                goto fail;
            r->dst.utoff = -off;
        }
        /* zic always writes the rule; POSIX leaves its absence to the
         * implementation, and guessing US dates would be wrong elsewhere. */
        if (!expect(&c, ',')) {
            reject(&c, "daylight time without a rule");
            goto fail;
        }
        if (!parse_date(&c, &r->start) || !expect(&c, ',') || !parse_date(&c, &r->end)) {
            reject(&c, "bad rule");
            goto fail;
        }
    }
    if (*c.p != '\0') {
        reject(&c, "trailing characters");
        goto fail;
    }
    if (r->std.utoff > TZ_OFF_MAX || r->std.utoff < -TZ_OFF_MAX || r->dst.utoff > TZ_OFF_MAX ||
        r->dst.utoff < -TZ_OFF_MAX) {
        reject(&c, "offset out of range");
        goto fail;
    }
    return 0;
fail:
    *why = c.why;
    return -1;
}
