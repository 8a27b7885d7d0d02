/*
 * tz.c - IANA time zones read straight from compiled zoneinfo (see tz.h).
 *
 * Parses TZif files (RFC 8536, version 2 and later: only the 64-bit data
 * block and the footer are used), converts between UTC and local time, and
 * caches the zones. The footer's POSIX TZ rule, which governs instants past
 * the last transition, is tz_rule.c's. Never touches TZ, tzset() or
 * localtime(): those share process-wide state, and Herald converts times for
 * many recipients' zones from many threads at once. Uses buf.h for
 * allocation and pthreads for the cache lock.
 */
#include "base/tz.h"
#include "base/buf.h"
#include "base/tz_rule.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX    255
/* The largest real file is a few KB; the cap keeps every count below 2^20,
 * so size arithmetic on counts cannot overflow. */
#define TZ_FILE_MAX  (1 << 20)
#define TZ_TYPES_MAX 256 /* transition type indices are one byte */
/* Instants beyond about +-142 million years are clamped in tz_to_local: the
 * year must fit an int. */
#define TZ_T_LIMIT    ((int64_t)1 << 52)
#define TZ_FOOTER_MAX 255
#define TZ_BUCKETS    64

struct tz_zone {
    char *name; /* owned */
    size_t ntrans;
    int64_t *trans;    /* owned; strictly ascending UTC instants */
    uint8_t *trans_ty; /* owned; type index in force from trans[i] on */
    size_t ntypes;
    tz_type_t *types; /* owned; at least one */
    bool has_rule;    /* footer present and non-empty */
    tz_rule_t rule;
    struct tz_zone *next; /* cache bucket chain */
};

/* The process-wide cache: the mutex guards the buckets only; zones are
 * immutable once published, so readers use them without the lock. */
static struct {
    pthread_mutex_t lock;
    tz_zone_t *buckets[TZ_BUCKETS];
} cache = {PTHREAD_MUTEX_INITIALIZER, {NULL}};

/* ---------------------------------------------------------------------------
 * Lookup.
 */

static const tz_type_t *type_at(const tz_zone_t *z, int64_t t)
{
    size_t n = z->ntrans;
    if (n == 0 || t >= z->trans[n - 1]) {
        /* RFC 8536 3.2: the footer governs from the last transition on (or
         * always, without transitions); with no footer the last type stays. */
        if (z->has_rule)
            return tz_rule_type(&z->rule, t);
        return &z->types[n == 0 ? 0 : z->trans_ty[n - 1]];
    }
    /* RFC 8536 3.2 names time type 0 for instants before the first
     * transition. zic puts the zone's earliest local time there (LMT in
     * every Debian file), so this agrees with the older "first non-DST
     * type" heuristic on real data. */
    if (t < z->trans[0])
        return &z->types[0];
    size_t lo = 0, hi = n - 1; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return &z->types[z->trans_ty[lo]];
}

/* The first change (transition or rule change) strictly after t. */
static bool next_change(const tz_zone_t *z, int64_t t, int64_t *next)
{
    size_t n = z->ntrans;
    if (n > 0 && t < z->trans[n - 1]) {
        size_t lo = 0, hi = n - 1; /* first index with trans[i] > t lies in [lo, hi] */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->trans[mid] > t)
                hi = mid;
            else
                lo = mid + 1;
        }
        *next = z->trans[lo];
        return true;
    }
    return z->has_rule && tz_rule_next(&z->rule, t, next);
}

const char *tz_name(const tz_zone_t *z)
{
    return z->name;
}

void tz_to_local(const tz_zone_t *z, int64_t utc, tz_local_t *out)
{
    if (utc > TZ_T_LIMIT)
        utc = TZ_T_LIMIT;
    if (utc < -TZ_T_LIMIT)
        utc = -TZ_T_LIMIT;
    const tz_type_t *ty = type_at(z, utc);
    int64_t local = utc + ty->utoff;
    int64_t days = tz_floor_div(local, 86400);
    int64_t secs = local - days * 86400;
    int64_t y;

    memset(out, 0, sizeof(*out));
    tz_civil_from_days(days, &y, &out->month, &out->day);
    out->year = (int)y;
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
    int wd = tz_weekday(days);
    out->wday = wd == 0 ? 7 : wd;
    out->yday = (int)(days - tz_days_from_civil(y, 1, 1)) + 1;
    out->offset = ty->utoff;
    out->isdst = ty->isdst;
    memcpy(out->abbr, ty->abbr, sizeof(out->abbr));
}

/*
 * Local time L (seconds since the epoch as if the zone were UTC) is reached
 * by every instant t with t + offset(t) == L. Since offsets are bounded by
 * TZ_OFF_MAX, such t lie in [L - TZ_OFF_MAX, L + TZ_OFF_MAX]; so we try each
 * offset in force somewhere in that window (the one at its start and the one
 * after each change inside it) and keep the candidates that round-trip:
 *   - one: the normal case;
 *   - two: a repeated hour (autumn), the earlier instant wins, as the
 *     header promises and as a reminder "at 02:30" should fire once, early;
 *   - none: L falls in a gap (spring forward). We read L with the offset in
 *     force before the change, which lands past the change, i.e. the wall
 *     time moves forward by the size of the gap: 02:30 in Paris's
 *     02:00 -> 03:00 gap gives 01:30 UTC = 03:30 CEST.
 * Both choices are the ones iCalendar makes (RFC 5545 3.3.5), so a time
 * picked in a calendar app means the same instant here.
 * Scanning the window rather than only "a day before / a day after" also
 * handles changes closer together than a day and offsets beyond 24 h.
 */
int64_t tz_from_local(const tz_zone_t *z, int year, int month, int day, int hour, int min, int sec)
{
    /* Normalise in 64 bits: month 13 is next January, min 90 is +1 h 30,
     * day 0 is the last day of the previous month. */
    int64_t y = (int64_t)year + tz_floor_div((int64_t)month - 1, 12);
    int m = (int)((int64_t)month - 1 - tz_floor_div((int64_t)month - 1, 12) * 12) + 1;
    int64_t days = tz_days_from_civil(y, m, 1) + (int64_t)day - 1;
    int64_t local = days * 86400 + (int64_t)hour * 3600 + (int64_t)min * 60 + sec;

    int64_t t = local - TZ_OFF_MAX;
    int32_t off = type_at(z, t)->utoff;
    bool found = false, gap = false;
    int64_t best = 0, gap_t = 0;
    /* A sane zone has a handful of changes in a 52-hour window; the bound
     * only stops a hostile file with a transition every second. */
    for (int steps = 0; steps < 1000; steps++) {
        int64_t cand = local - off;
        if (type_at(z, cand)->utoff == off && (!found || cand < best)) {
            best = cand;
            found = true;
        }
        int64_t next;
        if (!next_change(z, t, &next) || next > local + TZ_OFF_MAX)
            break;
        int32_t after = type_at(z, next)->utoff;
        if (!gap && after > off && local >= next + off && local < next + after) {
            gap_t = local - off;
            gap = true;
        }
        t = next;
        off = after;
    }
    if (found)
        return best;
    if (gap)
        return gap_t;
    return local - type_at(z, local)->utoff; /* unreachable with a sane zone */
}

/* ---------------------------------------------------------------------------
 * TZif parsing.
 */

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chr;
} tzif_counts_t;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Reads a 44-byte header at p[off]; fills *version ('\0', '2', '3', ...). */
static bool read_header(const unsigned char *p, size_t n, size_t off, char *version,
                        tzif_counts_t *c, const char **why)
{
    if (n - off < 44) {
        *why = "truncated header";
        return false;
    }
    p += off;
    if (memcmp(p, "TZif", 4) != 0) {
        *why = "bad magic (not a TZif file)";
        return false;
    }
    *version = (char)p[4];
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chr = be32(p + 40);
    /* No count can exceed the file size; checking it here keeps the block
     * size computations below far from overflow. */
    if (c->isut > TZ_FILE_MAX || c->isstd > TZ_FILE_MAX || c->leap > TZ_FILE_MAX ||
        c->time > TZ_FILE_MAX || c->type > TZ_FILE_MAX || c->chr > TZ_FILE_MAX) {
        *why = "count larger than the file";
        return false;
    }
    return true;
}

static size_t block_size(const tzif_counts_t *c, size_t tsize)
{
    return (size_t)c->time * tsize + c->time + (size_t)c->type * 6 + c->chr +
           (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

static void zone_free(tz_zone_t *z)
{
    if (z == NULL)
        return;
    free(z->name);
    free(z->trans);
    free(z->trans_ty);
    free(z->types);
    free(z);
}

/* Parses the n bytes at p into z (whose arrays it allocates; zone_free
 * releases them even on failure). Returns -1 with a static reason in *why. */
static int parse_tzif(const unsigned char *p, size_t n, tz_zone_t *z, const char **why)
{
    tzif_counts_t c;
    char v1, v2;
    if (!read_header(p, n, 0, &v1, &c, why))
        return -1;
    if (v1 < '2') {
        *why = "version 1 file without 64-bit data";
        return -1;
    }
    size_t off = 44 + block_size(&c, 4); /* skip the 32-bit block */
    if (off > n) {
        *why = "truncated version 1 data block";
        return -1;
    }
    if (!read_header(p, n, off, &v2, &c, why))
        return -1;
    off += 44;
    if (v2 < '2') {
        *why = "bad version in second header";
        return -1;
    }
    if (c.type == 0 || c.type > TZ_TYPES_MAX || c.chr == 0 || (c.isut != 0 && c.isut != c.type) ||
        (c.isstd != 0 && c.isstd != c.type)) {
        *why = "inconsistent counts";
        return -1;
    }
    if (c.leap != 0) {
        /* right/ zones count leap seconds in their instants; Herald's
         * timestamps are POSIX (no leap seconds), so they would be wrong. */
        *why = "leap-second zones (right/) are not supported";
        return -1;
    }
    if (block_size(&c, 8) > n - off) {
        *why = "truncated data block";
        return -1;
    }

    const unsigned char *tp = p + off;
    const unsigned char *ip = tp + (size_t)c.time * 8;
    const unsigned char *typ = ip + c.time;
    const unsigned char *chr = typ + (size_t)c.type * 6;
    off += block_size(&c, 8);

    z->ntrans = c.time;
    z->trans = xmalloc((size_t)c.time * sizeof(*z->trans));
    z->trans_ty = xmalloc(c.time);
    for (size_t i = 0; i < c.time; i++) {
        z->trans[i] = be64(tp + i * 8);
        z->trans_ty[i] = ip[i];
        if (i > 0 && z->trans[i] <= z->trans[i - 1]) {
            *why = "transitions not in ascending order";
            return -1;
        }
        if (ip[i] >= c.type) {
            *why = "transition type index out of range";
            return -1;
        }
    }
    if (chr[c.chr - 1] != '\0') {
        /* With the block NUL-terminated, any in-range index is a C string. */
        *why = "abbreviations not NUL-terminated";
        return -1;
    }
    z->ntypes = c.type;
    z->types = xcalloc(c.type, sizeof(*z->types));
    for (size_t i = 0; i < c.type; i++) {
        const unsigned char *e = typ + i * 6;
        int32_t utoff = (int32_t)be32(e);
        if (utoff > TZ_OFF_MAX || utoff < -TZ_OFF_MAX || e[4] > 1 || e[5] >= c.chr) {
            *why = "bad local time type";
            return -1;
        }
        z->types[i].utoff = utoff;
        z->types[i].isdst = e[4];
        snprintf(z->types[i].abbr, sizeof(z->types[i].abbr), "%s", (const char *)chr + e[5]);
    }

    /* Footer: "\n" TZ-string "\n" (RFC 8536 3.3), mandatory from version 2. */
    if (off >= n || p[off] != '\n') {
        *why = "missing footer";
        return -1;
    }
    const unsigned char *fs = p + off + 1;
    const unsigned char *fe = memchr(fs, '\n', n - off - 1);
    if (fe == NULL || fe - fs > TZ_FOOTER_MAX || memchr(fs, '\0', (size_t)(fe - fs)) != NULL) {
        *why = "bad footer";
        return -1;
    }
    if (fe > fs) {
        char footer[TZ_FOOTER_MAX + 1];
        memcpy(footer, fs, (size_t)(fe - fs));
        footer[fe - fs] = '\0';
        if (tz_rule_parse(footer, &z->rule, why) != 0)
            return -1;
        z->has_rule = true;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Loading and the cache.
 */

/* [A-Za-z0-9_+-] segments separated by single '/'; no leading or trailing
 * '/'. With '.' outside the alphabet, "." and ".." segments cannot occur, so
 * the name cannot leave the zoneinfo directory. */
static bool name_valid(const char *name)
{
    size_t len = strnlen(name, TZ_NAME_MAX + 1);
    if (len == 0 || len > TZ_NAME_MAX)
        return false;
    bool seg_empty = true;
    for (const char *s = name; *s; s++) {
        char ch = *s;
        if (ch == '/') {
            if (seg_empty)
                return false;
            seg_empty = true;
        } else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' || ch == '-') {
            seg_empty = false;
        } else {
            return false;
        }
    }
    return !seg_empty;
}

/* Copies name for an error message: bounded, control bytes replaced, so a
 * hostile name cannot forge log lines. */
static void quote_name(const char *name, char *out, size_t size)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 4 < size; i++)
        out[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    if (name[i] != '\0' && i >= 3) {
        memcpy(out + i - 3, "...", 3);
    }
    out[i] = '\0';
}

/* Reads the whole file into a buffer (caller frees). NULL with err. */
static unsigned char *read_zone_file(const char *name, const char *path, size_t *len, hd_err_t *err)
{
    /* O_NONBLOCK: a FIFO planted in the directory must not hang us. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    unsigned char *data = NULL;
    struct stat st;
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            hd_err_set(err, "unknown time zone \"%s\"", name);
        else
            hd_err_set(err, "time zone \"%s\": cannot open %s: %s", name, path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        hd_err_set(err, "time zone \"%s\": cannot stat %s: %s", name, path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) { /* "Europe" is a directory, not a zone */
        hd_err_set(err, "unknown time zone \"%s\"", name);
        goto fail;
    }
    if (st.st_size > TZ_FILE_MAX) {
        hd_err_set(err, "time zone \"%s\": %s: malformed TZif file: too large", name, path);
        goto fail;
    }
    /* One byte more than expected tells us if the file grew under us. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    data = xmalloc(cap);
    for (;;) {
        ssize_t r = read(fd, data + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            hd_err_set(err, "time zone \"%s\": cannot read %s: %s", name, path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            hd_err_set(err, "time zone \"%s\": %s changed while being read", name, path);
            goto fail;
        }
    }
    close(fd);
    *len = n;
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

/* Reads and parses the zone (caller owns the result). NULL with err. */
static tz_zone_t *zone_load(const char *name, hd_err_t *err)
{
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = TZ_DEFAULT_DIR;
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        hd_err_set(err, "time zone \"%s\": path too long", name);
        return NULL;
    }
    size_t len;
    unsigned char *data = read_zone_file(name, path, &len, err);
    if (data == NULL)
        return NULL;
    tz_zone_t *z = xcalloc(1, sizeof(*z));
    const char *why = NULL;
    if (parse_tzif(data, len, z, &why) != 0) {
        hd_err_set(err, "time zone \"%s\": %s: malformed TZif file: %s", name, path,
                   why ? why : "bad footer");
        zone_free(z);
        z = NULL;
    } else {
        z->name = xstrdup(name);
    }
    free(data);
    return z;
}

static unsigned bucket_of(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h % TZ_BUCKETS;
}

/* Caller holds cache.lock. */
static tz_zone_t *cache_find(const char *name, unsigned b)
{
    for (tz_zone_t *z = cache.buckets[b]; z != NULL; z = z->next)
        if (strcmp(z->name, name) == 0)
            return z;
    return NULL;
}

const tz_zone_t *tz_get(const char *name, hd_err_t *err)
{
    if (name == NULL || !name_valid(name)) {
        char q[72];
        quote_name(name ? name : "", q, sizeof(q));
        hd_err_set(err, "invalid time zone name \"%s\"", q);
        return NULL;
    }
    unsigned b = bucket_of(name);
    pthread_mutex_lock(&cache.lock);
    tz_zone_t *z = cache_find(name, b);
    pthread_mutex_unlock(&cache.lock);
    if (z != NULL)
        return z;

    /* Parse outside the lock so a slow disk never stalls lookups of cached
     * zones. Two threads may both parse a new zone; the first to publish
     * wins and the other frees its copy, so callers share one zone. */
    tz_zone_t *fresh = zone_load(name, err);
    if (fresh == NULL)
        return NULL;
    pthread_mutex_lock(&cache.lock);
    z = cache_find(name, b);
    if (z == NULL) {
        fresh->next = cache.buckets[b];
        cache.buckets[b] = fresh; /* the cache takes ownership */
        z = fresh;
        fresh = NULL;
    }
    pthread_mutex_unlock(&cache.lock);
    zone_free(fresh);
    return z;
}

void tz_cache_clear(void)
{
    pthread_mutex_lock(&cache.lock);
    for (size_t b = 0; b < TZ_BUCKETS; b++) {
        tz_zone_t *z = cache.buckets[b];
        while (z != NULL) {
            tz_zone_t *next = z->next;
            zone_free(z);
            z = next;
        }
        cache.buckets[b] = NULL;
    }
    pthread_mutex_unlock(&cache.lock);
}
