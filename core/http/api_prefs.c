/*
 * api_prefs.c - POST /api/crm/preferences (create or update, scope send) and
 * GET /api/crm/preferences/{client_id} (scope read). Checks every field of
 * the request and names the first bad one, calls engine/prefs, and answers
 * with the API's shape of the stored row.
 */
#include "base/buf.h"
#include "base/locale.h"
#include "base/timefmt.h"
#include "base/tz.h"
#include "engine/prefs.h"
#include "http/api.h"
#include "base/addr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TEXT_CHARS  200
#define MAX_ZONE_LEN    64
#define CONSENT_SKEW_S  300 /* a consent time this far ahead is a clock, not the future */
#define SHOW_UNKNOWN    5   /* unknown field names quoted in an error */
#define SHOW_NAME_CHARS 64

static const char *const TOP_FIELDS[] = {"client_id", "name",        "email",    "phone",
                                         "timezone",  "locale",      "channels", "quiet_hours",
                                         "opted_out", "digest_time", "consent"};
static const char *const QUIET_FIELDS[] = {"start", "end"};
static const char *const CONSENT_FIELDS[] = {"given", "at", "source"};
static const char *const CHANNELS[] = {"email", "sms", "whatsapp"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int bad(http_req_t *req, const char *field, const char *expected)
{
    http_reply_error(req, 400, "invalid_request", "%s: %s", field, expected);
    return -1;
}

static bool listed(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* Refuses members of obj not in allowed (a typo must not be ignored) and
 * members given twice (which one would win is a guess). prefix names obj in
 * messages ("" for the body, "consent." ...). */
static int check_members(http_req_t *req, const cJSON *obj, const char *prefix,
                         const char *const *allowed, size_t n)
{
    buf_t unknown, expected;
    buf_init(&unknown);
    int nunknown = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        if (!listed(m->string, allowed, n)) {
            if (nunknown < SHOW_UNKNOWN)
                buf_printf(&unknown, "%s%s%.*s", nunknown ? ", " : "", prefix, SHOW_NAME_CHARS,
                           m->string);
            else if (nunknown == SHOW_UNKNOWN)
                buf_puts(&unknown, ", ...");
            nunknown++;
            continue;
        }
        for (const cJSON *o = obj->child; o != m; o = o->next)
            if (strcmp(o->string, m->string) == 0) {
                buf_free(&unknown);
                http_reply_error(req, 400, "invalid_request", "%s%s: given more than once", prefix,
                                 m->string);
                return -1;
            }
    }
    if (nunknown == 0) {
        buf_free(&unknown);
        return 0;
    }
    buf_init(&expected);
    for (size_t i = 0; i < n; i++)
        buf_printf(&expected, "%s%s", i ? ", " : "", allowed[i]);
    http_reply_error(req, 400, "invalid_request", "%s: unknown field%s (expected %s)", unknown.data,
                     nunknown > 1 ? "s" : "", expected.data);
    buf_free(&unknown);
    buf_free(&expected);
    return -1;
}

/* Characters in s when it is valid UTF-8 without control characters, else
 * -1 (these strings end up in logs, headers and templates). */
static long text_chars(const char *s)
{
    long n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; n++) {
        int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && *p < 0xc2) || *p > 0xf4)
            return -1;
        unsigned cp = len == 1 ? *p : *p & (0x7f >> len);
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF, C1 controls */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
            return -1;
        p += len;
    }
    return n;
}

static bool text_ok(const cJSON *v, long max_chars)
{
    if (!cJSON_IsString(v))
        return false;
    long n = text_chars(v->valuestring);
    return n >= 1 && n <= max_chars;
}

/* "HH:MM", 00:00 to 23:59. */
static bool clock_ok(const cJSON *v)
{
    if (!cJSON_IsString(v))
        return false;
    const char *s = v->valuestring;
    if (strlen(s) != 5 || s[2] != ':')
        return false;
    for (int i = 0; i < 5; i++)
        if (i != 2 && !isdigit((unsigned char)s[i]))
            return false;
    return (s[0] - '0') * 10 + (s[1] - '0') < 24 && s[3] < '6';
}

/* A list of distinct channels into list[]; *n their count. */
static int channel_list(http_req_t *req, const cJSON *v, const char *field, const char **list,
                        int *n)
{
    static const char expected[] = "expected a list of distinct channels among email, sms, "
                                   "whatsapp";
    if (!cJSON_IsArray(v))
        return bad(req, field, expected);
    *n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || !listed(e->valuestring, CHANNELS, COUNT(CHANNELS))) {
            http_reply_error(req, 400, "invalid_request", "%s: unknown channel %s%.32s%s; %s",
                             field, cJSON_IsString(e) ? "\"" : "",
                             cJSON_IsString(e) ? e->valuestring : "(not a string)",
                             cJSON_IsString(e) ? "\"" : "", expected);
            return -1;
        }
        for (int i = 0; i < *n; i++)
            if (strcmp(list[i], e->valuestring) == 0) {
                http_reply_error(req, 400, "invalid_request", "%s: \"%s\" is listed twice; %s",
                                 field, e->valuestring, expected);
                return -1;
            }
        list[(*n)++] = e->valuestring;
    }
    return 0;
}

static int parse_quiet_hours(http_req_t *req, const cJSON *v, prefs_patch_t *p)
{
    static const char hhmm[] = "expected a time \"HH:MM\" (00:00 to 23:59)";
    if (cJSON_IsNull(v)) {
        p->quiet_op = PREFS_CLEAR;
        return 0;
    }
    if (!cJSON_IsObject(v))
        return bad(req, "quiet_hours",
                   "expected {\"start\": \"HH:MM\", \"end\": \"HH:MM\"}, or null for none");
    if (check_members(req, v, "quiet_hours.", QUIET_FIELDS, COUNT(QUIET_FIELDS)) != 0)
        return -1;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "start");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, "end");
    if (!clock_ok(s))
        return bad(req, "quiet_hours.start", hhmm);
    if (!clock_ok(e))
        return bad(req, "quiet_hours.end", hhmm);
    if (strcmp(s->valuestring, e->valuestring) == 0)
        return bad(req, "quiet_hours",
                   "expected different start and end times (null for no quiet hours)");
    p->quiet_op = PREFS_SET;
    p->quiet_start = s->valuestring;
    p->quiet_end = e->valuestring;
    return 0;
}

static int parse_consent(http_req_t *req, const cJSON *v, prefs_patch_t *p)
{
    if (!cJSON_IsObject(v))
        return bad(req, "consent",
                   "expected {\"given\": true|false, \"at\"?: RFC 3339 time, \"source\"?: text}");
    if (check_members(req, v, "consent.", CONSENT_FIELDS, COUNT(CONSENT_FIELDS)) != 0)
        return -1;
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(v, "given");
    if (!cJSON_IsBool(given))
        return bad(req, "consent.given", "expected true or false");
    p->set_consent = true;
    p->consent_given = cJSON_IsTrue(given);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(v, "at");
    if (at != NULL && !cJSON_IsNull(at)) {
        if (!cJSON_IsString(at) || timefmt_parse(at->valuestring, &p->consent_at) != 0)
            return bad(req, "consent.at", "expected an RFC 3339 time like 2026-11-28T09:00:00Z");
        if (p->consent_at > (int64_t)time(NULL) + CONSENT_SKEW_S)
            return bad(req, "consent.at", "expected a time that is not in the future");
        p->consent_at_set = true;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(v, "source");
    if (src != NULL) {
        if (!cJSON_IsNull(src) && !text_ok(src, MAX_TEXT_CHARS))
            return bad(req, "consent.source",
                       "expected a string of 1 to 200 characters without control characters, "
                       "or null");
        p->consent_source_set = true;
        p->consent_source = cJSON_IsString(src) ? src->valuestring : NULL;
    }
    return 0;
}

/* Trims ASCII whitespace in place, in the request's own copy (the blind
 * index ignores it too, so " A@b.c" and "a@b.c" are one address). */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Fills p from the request body, or replies 400 naming the first bad field.
 * p borrows strings from req->json. */
static int parse_patch(http_req_t *req, prefs_patch_t *p)
{
    const cJSON *body = req->json, *v;
    memset(p, 0, sizeof(*p));
    if (check_members(req, body, "", TOP_FIELDS, COUNT(TOP_FIELDS)) != 0)
        return -1;

    v = cJSON_GetObjectItemCaseSensitive(body, "client_id");
    if (v == NULL)
        return bad(req, "client_id", "required; expected a string of 1 to 200 characters");
    if (!text_ok(v, MAX_TEXT_CHARS))
        return bad(req, "client_id",
                   "expected a string of 1 to 200 characters without control characters");
    p->client_id = v->valuestring;

    if ((v = cJSON_GetObjectItemCaseSensitive(body, "name")) != NULL) {
        if (!cJSON_IsNull(v) && !text_ok(v, MAX_TEXT_CHARS))
            return bad(req, "name",
                       "expected a string of 1 to 200 characters without control characters, "
                       "or null");
        p->name_op = cJSON_IsNull(v) ? PREFS_CLEAR : PREFS_SET;
        p->name = cJSON_IsString(v) ? v->valuestring : NULL;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "email")) != NULL) {
        const char *email = cJSON_IsString(v) ? trim(v->valuestring) : NULL;
        hd_err_t err;
        if (!cJSON_IsNull(v) && (email == NULL || addr_check_email(email, &err) != 0))
            return bad(req, "email", "expected an email address like name@example.com, or null");
        p->email_op = email ? PREFS_SET : PREFS_CLEAR;
        p->email = email;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "phone")) != NULL) {
        if (!cJSON_IsNull(v) && (!cJSON_IsString(v) || !addr_is_e164(v->valuestring)))
            return bad(req, "phone",
                       "expected an E.164 number, '+' and 8 to 15 digits like +33612345678, "
                       "or null");
        p->phone_op = cJSON_IsNull(v) ? PREFS_CLEAR : PREFS_SET;
        p->phone = cJSON_IsString(v) ? v->valuestring : NULL;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "timezone")) != NULL) {
        hd_err_t err;
        if (!cJSON_IsString(v) || strlen(v->valuestring) > MAX_ZONE_LEN ||
            tz_get(v->valuestring, &err) == NULL)
            return bad(req, "timezone", "expected an IANA time zone like Europe/Paris");
        p->timezone = v->valuestring;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "locale")) != NULL) {
        if (!cJSON_IsString(v) || !locale_tag_ok(v->valuestring))
            return bad(req, "locale", "expected a locale like en, fr_FR or pt-BR");
        p->locale = v->valuestring;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "channels")) != NULL) {
        if (channel_list(req, v, "channels", p->channels, &p->nchannels) != 0)
            return -1;
        p->set_channels = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "quiet_hours")) != NULL &&
        parse_quiet_hours(req, v, p) != 0)
        return -1;
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "opted_out")) != NULL) {
        if (channel_list(req, v, "opted_out", p->opted_out, &p->nopted_out) != 0)
            return -1;
        p->set_opted_out = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "digest_time")) != NULL) {
        if (!clock_ok(v))
            return bad(req, "digest_time", "expected a time \"HH:MM\" (00:00 to 23:59)");
        p->digest_time = v->valuestring;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "consent")) != NULL &&
        parse_consent(req, v, p) != 0)
        return -1;
    return 0;
}

static cJSON *text_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *channel_array(const char *const *list, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(list[i]));
    return arr;
}

/* The API's shape of a stored row:
 *   {client_id, name, email, phone, timezone, locale, channels: [..] | null,
 *    quiet_hours: {start, end} | null, opted_out: [..], digest_time,
 *    consent: {given, at, source}, created_at, updated_at}
 * (absent values are null, times RFC 3339 UTC, clock times "HH:MM"). */
static cJSON *api_shape(const prefs_row_t *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "client_id", row->client_id);
    cJSON_AddItemToObject(o, "name", text_or_null(row->name));
    cJSON_AddItemToObject(o, "email", text_or_null(row->email));
    cJSON_AddItemToObject(o, "phone", text_or_null(row->phone));
    cJSON_AddStringToObject(o, "timezone", row->timezone);
    cJSON_AddStringToObject(o, "locale", row->locale);
    cJSON_AddItemToObject(o, "channels",
                          row->channels_stated ? channel_array(row->channels, row->nchannels)
                                               : cJSON_CreateNull());
    if (row->quiet_start[0] && row->quiet_end[0]) {
        cJSON *q = cJSON_AddObjectToObject(o, "quiet_hours");
        cJSON_AddStringToObject(q, "start", row->quiet_start);
        cJSON_AddStringToObject(q, "end", row->quiet_end);
    } else {
        cJSON_AddNullToObject(o, "quiet_hours");
    }
    cJSON_AddItemToObject(o, "opted_out", channel_array(row->opted_out, row->nopted_out));
    cJSON_AddStringToObject(o, "digest_time", row->digest_time);
    cJSON *consent = cJSON_AddObjectToObject(o, "consent");
    cJSON_AddBoolToObject(consent, "given", row->consent_given);
    cJSON_AddItemToObject(consent, "at", text_or_null(row->consent_at[0] ? row->consent_at : NULL));
    cJSON_AddItemToObject(consent, "source", text_or_null(row->consent_source));
    cJSON_AddStringToObject(o, "created_at", row->created_at);
    cJSON_AddStringToObject(o, "updated_at", row->updated_at);
    return o;
}

/* Answers a failure to read or save with the status that fits it. */
static void reply_failure(http_req_t *req, int rc, const hd_err_t *err)
{
    switch (rc) {
    case PREFS_ERR_INVALID:
        http_reply_error(req, 400, "invalid_request", "%s", err->msg);
        break;
    case PREFS_ERR_CRYPTO:
        /* the details are in the log; the caller learns only that the
         * stored value is unusable */
        http_reply_error(req, 500, "internal", "cannot decrypt the stored preferences");
        break;
    default:
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        break;
    }
}

void api_prefs_put(http_req_t *req)
{
    prefs_patch_t patch;
    if (parse_patch(req, &patch) != 0)
        return;
    bool created = false;
    prefs_row_t row;
    hd_err_t err;
    int rc = prefs_save(req->app, &patch, req->principal.sub, &created, &row, &err);
    if (rc != PREFS_OK) {
        reply_failure(req, rc, &err);
        return;
    }
    http_reply_json(req, created ? 201 : 200, api_shape(&row));
    prefs_row_free(&row);
}

void api_prefs_get(http_req_t *req)
{
    const char *id = router_param(&req->match, "client_id");
    prefs_row_t row;
    hd_err_t err;
    int rc = prefs_get(req->app, id, &row, &err);
    if (rc == PREFS_OK) {
        http_reply_json(req, 200, api_shape(&row));
        prefs_row_free(&row);
    } else if (rc == PREFS_NOT_FOUND) {
        http_reply_error(req, 404, "not_found", "no preferences are stored for this client");
    } else {
        reply_failure(req, rc, &err);
    }
}
