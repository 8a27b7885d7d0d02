/*
 * api_analytics.c - GET /api/crm/analytics (scope read):
 *
 *   ?from=YYYY-MM-DD&to=YYYY-MM-DD   UTC days, inclusive (default: the last
 *                                    30 days, today included; at most 366)
 *   &group_by=channel|message_type|day   (default: totals only)
 *
 * Read from the daily rollups (store/repo_analytics.h), summed here: counts
 * by status, how many reached a provider, were delivered, opened, clicked,
 * delivery / open / click rates (delivered / reached, opened / delivered,
 * clicked / delivered), failures by category, fallbacks, and the time from
 * sent to delivered (p50, p95) read from the rollups' histograms. as_of says
 * how fresh the oldest row used is.
 */
#include "http/api.h"
#include "store/repo_analytics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DAYS 366
#define BUCKETS  128

typedef struct group {
    char key[80];
    double total, reached, delivered, opened, clicked, fallbacks;
    cJSON *by_status, *failures; /* summed objects */
    double hist[BUCKETS];
} group_t;

/* "YYYY-MM-DD" that is a real date -> days since the epoch; -1 otherwise. */
static long parse_day(const char *s)
{
    int y, m, d;
    char tail;
    if (s == NULL || strlen(s) != 10)
        return -1;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : !(s[i] >= '0' && s[i] <= '9'))
            return -1;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || s[4] != '-' || s[7] != '-' || m < 1 ||
        m > 12 || d < 1 || y < 1970 || y > 9999)
        return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] + (m == 2 && leap))
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (long)(timegm(&tm) / 86400);
}

static void day_text(long day, char out[16])
{
    time_t t = (time_t)day * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static void add_counts(cJSON **into, const cJSON *from)
{
    if (*into == NULL)
        *into = cJSON_CreateObject();
    const cJSON *e;
    cJSON_ArrayForEach(e, from)
    {
        if (!cJSON_IsNumber(e))
            continue;
        cJSON *have = cJSON_GetObjectItemCaseSensitive(*into, e->string);
        if (have)
            cJSON_SetNumberValue(have, have->valuedouble + e->valuedouble);
        else
            cJSON_AddNumberToObject(*into, e->string, e->valuedouble);
    }
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void add_row(group_t *g, const cJSON *row)
{
    g->total += num(row, "total");
    g->reached += num(row, "reached");
    g->delivered += num(row, "delivered");
    g->opened += num(row, "opened");
    g->clicked += num(row, "clicked");
    g->fallbacks += num(row, "fallbacks");
    add_counts(&g->by_status, cJSON_GetObjectItemCaseSensitive(row, "by_status"));
    add_counts(&g->failures, cJSON_GetObjectItemCaseSensitive(row, "failures"));
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(row, "delivery_hist"))
    {
        int k = atoi(e->string);
        if (k >= 0 && cJSON_IsNumber(e))
            g->hist[k < BUCKETS ? k : BUCKETS - 1] += e->valuedouble;
    }
}

/* The q-quantile of the bucketed times: bucket k holds [2^(k/4) - 1,
 * 2^((k+1)/4) - 1) seconds; linear inside the bucket. */
static double quantile(const double *hist, double q)
{
    double n = 0;
    for (int k = 0; k < BUCKETS; k++)
        n += hist[k];
    if (n <= 0)
        return -1;
    double want = q * n, seen = 0;
    for (int k = 0; k < BUCKETS; k++) {
        if (hist[k] <= 0)
            continue;
        if (seen + hist[k] >= want) {
            double lo = pow(2, k / 4.0) - 1, hi = pow(2, (k + 1) / 4.0) - 1;
            double v = lo + (hi - lo) * ((want - seen) / hist[k]);
            return round(v * 10) / 10;
        }
        seen += hist[k];
    }
    return pow(2, BUCKETS / 4.0) - 1;
}

static cJSON *rate(double a, double b)
{
    return b > 0 ? cJSON_CreateNumber(round(a / b * 10000) / 10000) : cJSON_CreateNull();
}

static cJSON *group_json(const group_t *g, bool keyed)
{
    cJSON *o = cJSON_CreateObject();
    if (keyed)
        cJSON_AddStringToObject(o, "key", g->key);
    cJSON_AddNumberToObject(o, "total", g->total);
    cJSON_AddItemToObject(
        o, "by_status", g->by_status ? cJSON_Duplicate(g->by_status, true) : cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "reached", g->reached);
    cJSON_AddNumberToObject(o, "delivered", g->delivered);
    cJSON_AddNumberToObject(o, "opened", g->opened);
    cJSON_AddNumberToObject(o, "clicked", g->clicked);
    cJSON_AddItemToObject(o, "delivery_rate", rate(g->delivered, g->reached));
    cJSON_AddItemToObject(o, "open_rate", rate(g->opened, g->delivered));
    cJSON_AddItemToObject(o, "click_rate", rate(g->clicked, g->delivered));
    cJSON_AddItemToObject(o, "failures",
                          g->failures ? cJSON_Duplicate(g->failures, true) : cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "fallbacks", g->fallbacks);
    cJSON *t = cJSON_AddObjectToObject(o, "delivery_seconds");
    double p50 = quantile(g->hist, 0.5), p95 = quantile(g->hist, 0.95);
    cJSON_AddItemToObject(t, "p50", p50 < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(p50));
    cJSON_AddItemToObject(t, "p95", p95 < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(p95));
    return o;
}

static void group_free(group_t *g)
{
    cJSON_Delete(g->by_status);
    cJSON_Delete(g->failures);
}

/* ?group_by=variant&message_type=T: the arms of T's experiments, side by
 * side, with the same rates as the other groupings. */
static void by_variant(http_req_t *req, long from, long to)
{
    const char *mt = http_query(req, "message_type");
    if (mt == NULL || *mt == '\0' || strlen(mt) > 64) {
        http_reply_error(req, 400, "invalid_field",
                         "message_type: required with group_by=variant (the arms of which "
                         "message type's experiment)");
        return;
    }
    char first[16], last[16];
    day_text(from, first);
    day_text(to, last);
    hd_err_t err;
    cJSON *rows = analytics_variants(req->app->db, mt, first, last, &err);
    if (rows == NULL) {
        http_reply_error(req, 503, "unavailable", "cannot read the analytics; retry");
        return;
    }
    cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(row, "experiment");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, "variant");
        char key[140];
        snprintf(key, sizeof(key), "%s%s%s", e->valuestring[0] ? e->valuestring : "none",
                 v->valuestring[0] ? "/" : "", v->valuestring);
        cJSON_AddStringToObject(row, "key", key);
        double reached = cJSON_GetObjectItemCaseSensitive(row, "reached")->valuedouble;
        double delivered = cJSON_GetObjectItemCaseSensitive(row, "delivered")->valuedouble;
        double opened = cJSON_GetObjectItemCaseSensitive(row, "opened")->valuedouble;
        double clicked = cJSON_GetObjectItemCaseSensitive(row, "clicked")->valuedouble;
        cJSON_AddItemToObject(row, "delivery_rate", rate(delivered, reached));
        cJSON_AddItemToObject(row, "open_rate", rate(opened, delivered));
        cJSON_AddItemToObject(row, "click_rate", rate(clicked, delivered));
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "from", first);
    cJSON_AddStringToObject(doc, "to", last);
    cJSON_AddStringToObject(doc, "group_by", "variant");
    cJSON_AddStringToObject(doc, "message_type", mt);
    cJSON_AddItemToObject(doc, "groups", rows);
    http_reply_json(req, 200, doc);
}

void api_analytics(http_req_t *req)
{
    app_t *app = req->app;
    const char *from_s = http_query(req, "from"), *to_s = http_query(req, "to");
    const char *by = http_query(req, "group_by");
    long today = (long)(time(NULL) / 86400);
    long to = to_s ? parse_day(to_s) : today;
    if (to < 0) {
        http_reply_error(req, 400, "invalid_field",
                         "to: expected a date like 2026-11-28 (UTC days, inclusive)");
        return;
    }
    long from = from_s ? parse_day(from_s) : to - 29;
    if (from < 0) {
        http_reply_error(req, 400, "invalid_field",
                         "from: expected a date like 2026-11-01 (UTC days, inclusive)");
        return;
    }
    if (from > to) {
        http_reply_error(req, 400, "invalid_field", "from: must not be after to");
        return;
    }
    if (to - from + 1 > MAX_DAYS) {
        http_reply_error(req, 400, "invalid_field", "from: at most %d days from from to to",
                         MAX_DAYS);
        return;
    }
    if (by && strcmp(by, "variant") == 0) {
        by_variant(req, from, to);
        return;
    }
    const char *field = NULL;
    if (by && strcmp(by, "channel") == 0)
        field = "channel";
    else if (by && strcmp(by, "message_type") == 0)
        field = "message_type";
    else if (by && strcmp(by, "day") == 0)
        field = "day";
    else if (by) {
        http_reply_error(req, 400, "invalid_field",
                         "group_by: expected channel, message_type, day or variant");
        return;
    }
    char first[16], last[16];
    day_text(from, first);
    day_text(to, last);
    hd_err_t err;
    cJSON *rows = analytics_rows(app->db, first, last, &err);
    if (rows == NULL) {
        http_reply_error(req, 503, "unavailable", "cannot read the analytics; retry");
        return;
    }
    group_t total;
    memset(&total, 0, sizeof(total));
    group_t *groups = NULL;
    size_t ngroups = 0;
    const char *as_of = NULL;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        add_row(&total, row);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "computed_at");
        if (cJSON_IsString(c) && (as_of == NULL || strcmp(c->valuestring, as_of) < 0))
            as_of = c->valuestring;
        if (field == NULL)
            continue;
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(row, field);
        const char *key = cJSON_IsString(k) && k->valuestring[0] ? k->valuestring : "none";
        size_t i = 0;
        while (i < ngroups && strcmp(groups[i].key, key) != 0)
            i++;
        if (i == ngroups) {
            group_t *p = realloc(groups, (ngroups + 1) * sizeof(*p));
            if (p == NULL)
                abort();
            groups = p;
            memset(&groups[ngroups], 0, sizeof(groups[0]));
            snprintf(groups[ngroups].key, sizeof(groups[0].key), "%s", key);
            ngroups++;
        }
        add_row(&groups[i], row);
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "from", first);
    cJSON_AddStringToObject(doc, "to", last);
    if (field)
        cJSON_AddStringToObject(doc, "group_by", field);
    cJSON_AddItemToObject(doc, "as_of", as_of ? cJSON_CreateString(as_of) : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "total", group_json(&total, false));
    if (field) {
        cJSON *list = cJSON_AddArrayToObject(doc, "groups");
        for (size_t i = 0; i < ngroups; i++)
            cJSON_AddItemToArray(list, group_json(&groups[i], true));
    }
    for (size_t i = 0; i < ngroups; i++)
        group_free(&groups[i]);
    free(groups);
    group_free(&total);
    cJSON_Delete(rows);
    http_reply_json(req, 200, doc);
}
