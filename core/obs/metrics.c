/* metrics.c - lock-free counters and Prometheus text output (see metrics.h). Uses base/buf. */
#include "obs/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSLOTS (METRICS_MAX_ROUTES + 1) /* last slot: unmatched */

static const int statuses[] = {200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404,
                               405, 409, 413, 415, 422, 429, 500, 502, 503, 504, 0};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0])) /* 0: any other */

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bounds) / sizeof(bounds[0]))

static const char *const CHANNELS[] = {"email", "sms", "whatsapp", "none"};
#define NCHAN 4
static const char *const COMM_STATUSES[] = {"scheduled", "queued",    "sending", "sent",
                                            "delivered", "opened",    "clicked", "failed",
                                            "cancelled", "suppressed"};
#define NCSTATUS 10
#define NTYPES   32 /* message types; the last slot takes any beyond */
static const char *const CATEGORIES[] = {"transient",    "permanent", "rate_limit",
                                         "auth_failure", "invalid",   "other"};
#define NCAT 6
/* sent -> delivered: seconds to days */
static const double dbounds[] = {1, 5, 15, 30, 60, 300, 900, 1800, 3600, 10800, 43200, 86400};
#define NDBUCKETS (sizeof(dbounds) / sizeof(dbounds[0]))

struct metrics {
    atomic_uint_fast64_t requests[NSLOTS][NSTATUS];
    atomic_uint_fast64_t buckets[NSLOTS][NBUCKETS]; /* non-cumulative; summed at render */
    atomic_uint_fast64_t count[NSLOTS];
    atomic_uint_fast64_t sum_us[NSLOTS];
    /* crm_* */
    atomic_uint_fast64_t comms[NCHAN][NCSTATUS][NTYPES];
    char types[NTYPES][65]; /* written once under types_mu, then published by ntypes */
    atomic_int ntypes;
    pthread_mutex_t types_mu;
    atomic_uint_fast64_t dbuckets[NDBUCKETS];
    atomic_uint_fast64_t dcount, dsum_ms;
    atomic_uint_fast64_t retries[NCAT], fallbacks[NCAT];
    atomic_int_fast64_t in_flight;
    atomic_uint_fast64_t limited[7][2]; /* LIMIT_BUCKETS x {in_process, shared} */
    atomic_uint_fast64_t auth_failures;
};

static const char *const LIMIT_BUCKETS[] = {
    "api", "auth_failures", "webhook", "tracking", "provider", "provider_backoff", "recipient_cap"};

metrics_t *metrics_new(void)
{
    /* calloc'd zero bytes are valid initial values for these lock-free atomics. */
    metrics_t *m = calloc(1, sizeof(metrics_t));
    if (m)
        pthread_mutex_init(&m->types_mu, NULL);
    return m;
}

void metrics_free(metrics_t *m)
{
    if (m)
        pthread_mutex_destroy(&m->types_mu);
    free(m);
}

static int find(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* The slot of a message type: a lock-free look-up among the published
 * ones; a new type takes the mutex once. */
static int type_slot(metrics_t *m, const char *t)
{
    if (t == NULL || strlen(t) > 64) /* the schema's limit; a longer one is not a type */
        t = "unknown";
    int n = atomic_load_explicit(&m->ntypes, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(m->types[i], t) == 0)
            return i;
    pthread_mutex_lock(&m->types_mu);
    n = atomic_load_explicit(&m->ntypes, memory_order_relaxed);
    int i = 0;
    while (i < n && strcmp(m->types[i], t) != 0)
        i++;
    if (i == n && n < NTYPES) {
        snprintf(m->types[n], sizeof(m->types[n]), "%s", n == NTYPES - 1 ? "other" : t);
        atomic_store_explicit(&m->ntypes, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->types_mu);
    return i < NTYPES ? i : NTYPES - 1;
}

void metrics_comm(metrics_t *m, const char *channel, const char *status, const char *message_type)
{
    int c = find(CHANNELS, NCHAN - 1, channel), s = find(COMM_STATUSES, NCSTATUS, status);
    if (m == NULL || s < 0)
        return;
    atomic_fetch_add_explicit(&m->comms[c < 0 ? NCHAN - 1 : c][s][type_slot(m, message_type)], 1,
                              memory_order_relaxed);
}

void metrics_delivery_time(metrics_t *m, double seconds)
{
    if (m == NULL || seconds < 0)
        return;
    size_t b = 0;
    while (b < NDBUCKETS && seconds > dbounds[b])
        b++;
    if (b < NDBUCKETS)
        atomic_fetch_add_explicit(&m->dbuckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->dcount, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->dsum_ms, (uint_fast64_t)(seconds * 1000), memory_order_relaxed);
}

static int cat_slot(const char *category)
{
    int c = find(CATEGORIES, NCAT - 1, category);
    return c < 0 ? NCAT - 1 : c;
}

void metrics_retry(metrics_t *m, const char *category)
{
    if (m)
        atomic_fetch_add_explicit(&m->retries[cat_slot(category)], 1, memory_order_relaxed);
}

void metrics_fallback(metrics_t *m, const char *category)
{
    if (m)
        atomic_fetch_add_explicit(&m->fallbacks[cat_slot(category)], 1, memory_order_relaxed);
}

/* A bucket name goes into a label as it is: only the characters limits.lua
 * allows in one (no quote, backslash or newline to escape). */
static bool label_safe(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr(":+._-", *s) == NULL)
            return false;
    return true;
}

void metrics_rate_limited(metrics_t *m, const char *bucket, bool shared)
{
    int b = find(LIMIT_BUCKETS, 7, bucket);
    if (m && b >= 0)
        atomic_fetch_add_explicit(&m->limited[b][shared], 1, memory_order_relaxed);
}

void metrics_auth_failure(metrics_t *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->auth_failures, 1, memory_order_relaxed);
}

void metrics_in_flight(metrics_t *m, int delta)
{
    if (m)
        atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (statuses[i] == status)
            return i;
    return NSTATUS - 1;
}

void metrics_http_observe(metrics_t *m, int route_index, int status, double seconds)
{
    size_t r =
        (route_index < 0 || route_index >= METRICS_MAX_ROUTES) ? NSLOTS - 1 : (size_t)route_index;
    atomic_fetch_add_explicit(&m->requests[r][status_slot(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NBUCKETS && seconds > bounds[b])
        b++;
    if (b < NBUCKETS)
        atomic_fetch_add_explicit(&m->buckets[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count[r], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us[r], (uint_fast64_t)(seconds * 1e6), memory_order_relaxed);
}

/* The labels of a slot being rendered. */
typedef struct route_labels {
    const metrics_route_t *routes;
    int n;
} route_labels_t;

static void labels(buf_t *out, const route_labels_t *rl, size_t slot)
{
    if (slot < (size_t)rl->n)
        buf_printf(out, "route=\"%s\",method=\"%s\"", rl->routes[slot].pattern,
                   rl->routes[slot].method);
    else
        buf_puts(out, "route=\"unmatched\",method=\"\"");
}

static uint64_t load(const atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void render_crm(const metrics_t *m, const route_labels_t *rl, const metrics_gauges_t *g,
                       buf_t *out);

void metrics_render(const metrics_t *m, const metrics_route_t *routes, int nroutes,
                    const metrics_gauges_t *g, buf_t *out)
{
    /* labels past the last slot: those routes were counted as unmatched */
    int n = nroutes < 0 || routes == NULL ? 0 : nroutes;
    const route_labels_t rl = {routes, n < METRICS_MAX_ROUTES ? n : METRICS_MAX_ROUTES};
    buf_puts(out, "# HELP herald_http_requests_total HTTP requests by route, method and status.\n"
                  "# TYPE herald_http_requests_total counter\n");
    for (size_t r = 0; r < NSLOTS; r++) {
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (v == 0)
                continue;
            buf_puts(out, "herald_http_requests_total{");
            labels(out, &rl, r);
            if (statuses[s])
                buf_printf(out, ",status=\"%d\"} %llu\n", statuses[s], (unsigned long long)v);
            else
                buf_printf(out, ",status=\"other\"} %llu\n", (unsigned long long)v);
        }
    }
    buf_puts(out, "# HELP herald_http_request_duration_seconds Time from request to response.\n"
                  "# TYPE herald_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < NSLOTS; r++) {
        uint64_t count = load(&m->count[r]);
        if (count == 0)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += load(&m->buckets[r][b]);
            buf_puts(out, "herald_http_request_duration_seconds_bucket{");
            labels(out, &rl, r);
            buf_printf(out, ",le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cum);
        }
        buf_puts(out, "herald_http_request_duration_seconds_bucket{");
        labels(out, &rl, r);
        buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)count);
        buf_puts(out, "herald_http_request_duration_seconds_sum{");
        labels(out, &rl, r);
        buf_printf(out, "} %.6f\n", (double)load(&m->sum_us[r]) / 1e6);
        buf_puts(out, "herald_http_request_duration_seconds_count{");
        labels(out, &rl, r);
        buf_printf(out, "} %llu\n", (unsigned long long)count);
    }
    buf_printf(out,
               "# HELP herald_db_pool_connections Database pool connections by state.\n"
               "# TYPE herald_db_pool_connections gauge\n"
               "herald_db_pool_connections{state=\"in_use\"} %d\n"
               "herald_db_pool_connections{state=\"idle\"} %d\n"
               "# HELP herald_db_pool_max_connections Size of the database pool.\n"
               "# TYPE herald_db_pool_max_connections gauge\n"
               "herald_db_pool_max_connections %d\n"
               "# HELP herald_db_up Whether the database answered the last check.\n"
               "# TYPE herald_db_up gauge\n"
               "herald_db_up %d\n"
               "# HELP herald_redis_up Whether Redis answered the last command.\n"
               "# TYPE herald_redis_up gauge\n"
               "herald_redis_up %d\n"
               "# HELP herald_uptime_seconds Seconds since this process started.\n"
               "# TYPE herald_uptime_seconds gauge\n"
               "herald_uptime_seconds %.0f\n"
               "# HELP herald_build_info Version of this binary.\n"
               "# TYPE herald_build_info gauge\n"
               "herald_build_info{version=\"%s\"} 1\n",
               g->db_in_use, g->db_idle, g->db_size, g->db_up, g->redis_up, g->uptime_s,
               HERALD_VERSION);
    render_crm(m, &rl, g, out);
}

static void render_crm(const metrics_t *m, const route_labels_t *rl, const metrics_gauges_t *g,
                       buf_t *out)
{
    buf_puts(out, "# HELP crm_communications_total Messages reaching each status, by channel and "
                  "message type (counted by the process that moved them).\n"
                  "# TYPE crm_communications_total counter\n");
    int nt = atomic_load_explicit(&m->ntypes, memory_order_acquire);
    for (int c = 0; c < NCHAN; c++)
        for (int s = 0; s < NCSTATUS; s++)
            for (int t = 0; t < nt; t++) {
                uint64_t v = load(&m->comms[c][s][t]);
                if (v)
                    buf_printf(out,
                               "crm_communications_total{channel=\"%s\",status=\"%s\","
                               "message_type=\"%s\"} %llu\n",
                               CHANNELS[c], COMM_STATUSES[s], m->types[t], (unsigned long long)v);
            }
    buf_puts(out, "# HELP crm_delivery_time_seconds Time from sent to delivered (receipts).\n"
                  "# TYPE crm_delivery_time_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < NDBUCKETS; b++) {
        cum += load(&m->dbuckets[b]);
        buf_printf(out, "crm_delivery_time_seconds_bucket{le=\"%g\"} %llu\n", dbounds[b],
                   (unsigned long long)cum);
    }
    uint64_t dc = load(&m->dcount);
    buf_printf(out,
               "crm_delivery_time_seconds_bucket{le=\"+Inf\"} %llu\n"
               "crm_delivery_time_seconds_sum %.3f\ncrm_delivery_time_seconds_count %llu\n",
               (unsigned long long)dc, (double)load(&m->dsum_ms) / 1000.0, (unsigned long long)dc);
    buf_puts(out, "# HELP crm_open_rate Opened / delivered over the last 30 days, by channel.\n"
                  "# TYPE crm_open_rate gauge\n");
    for (int c = 0; c < 3; c++)
        if (g->open_rate[c] >= 0)
            buf_printf(out, "crm_open_rate{channel=\"%s\"} %.4f\n", CHANNELS[c], g->open_rate[c]);
    buf_puts(out, "# HELP crm_retries_total Failed attempts the policy retried, by category.\n"
                  "# TYPE crm_retries_total counter\n");
    for (int k = 0; k < NCAT; k++)
        buf_printf(out, "crm_retries_total{category=\"%s\"} %llu\n", CATEGORIES[k],
                   (unsigned long long)load(&m->retries[k]));
    buf_puts(out, "# HELP crm_fallbacks_total Failed attempts that moved to the next channel, by "
                  "category.\n# TYPE crm_fallbacks_total counter\n");
    for (int k = 0; k < NCAT; k++)
        buf_printf(out, "crm_fallbacks_total{category=\"%s\"} %llu\n", CATEGORIES[k],
                   (unsigned long long)load(&m->fallbacks[k]));
    buf_puts(out, "# HELP crm_rate_limited_total Requests refused by a rate limit, by bucket and "
                  "by who decided (shared: Redis; in_process: the fallback).\n"
                  "# TYPE crm_rate_limited_total counter\n");
    for (int b = 0; b < 7; b++)
        for (int s = 1; s >= 0; s--)
            buf_printf(out, "crm_rate_limited_total{bucket=\"%s\",kind=\"%s\"} %llu\n",
                       LIMIT_BUCKETS[b], s ? "shared" : "in_process",
                       (unsigned long long)load(&m->limited[b][s]));
    buf_printf(out,
               "# HELP crm_auth_failures_total API keys and refresh tokens refused.\n"
               "# TYPE crm_auth_failures_total counter\ncrm_auth_failures_total %llu\n"
               "# HELP crm_rate_limiter_shared Whether the last limit check used the shared "
               "buckets in Redis (0: in-process, rate divided by crm_rate_limiter_processes).\n"
               "# TYPE crm_rate_limiter_shared gauge\ncrm_rate_limiter_shared %d\n"
               "# HELP crm_rate_limiter_processes Live processes sharing each limit.\n"
               "# TYPE crm_rate_limiter_processes gauge\ncrm_rate_limiter_processes %d\n",
               (unsigned long long)load(&m->auth_failures), g->limit_shared, g->limit_processes);
    buf_printf(out,
               "# HELP crm_accept_commits_total Commits that stored accepted messages (several "
               "concurrent requests share one: group commit).\n"
               "# TYPE crm_accept_commits_total counter\ncrm_accept_commits_total %ld\n"
               "# HELP crm_accept_committed_messages_total Messages those commits stored.\n"
               "# TYPE crm_accept_committed_messages_total counter\n"
               "crm_accept_committed_messages_total %ld\n"
               "# HELP crm_accept_unread_prefs_total Messages stored without reading the "
               "client's preferences (none cached and none stored, checked by the insert "
               "itself).\n"
               "# TYPE crm_accept_unread_prefs_total counter\n"
               "crm_accept_unread_prefs_total %ld\n"
               "# HELP crm_accept_unread_prefs_refused_total Messages whose insert found a "
               "preferences row after all: decided again from it, then stored.\n"
               "# TYPE crm_accept_unread_prefs_refused_total counter\n"
               "crm_accept_unread_prefs_refused_total %ld\n",
               g->accept_commits, g->accept_messages, g->accept_unread, g->accept_unread_refused);
    buf_printf(out,
               "# HELP crm_prefs_group_reads_total Statements that read clients' preferences "
               "(threads that miss the cache at once share one: group read).\n"
               "# TYPE crm_prefs_group_reads_total counter\ncrm_prefs_group_reads_total %ld\n"
               "# HELP crm_prefs_group_clients_total Clients those statements read.\n"
               "# TYPE crm_prefs_group_clients_total counter\n"
               "crm_prefs_group_clients_total %ld\n",
               g->prefs_group_reads, g->prefs_group_clients);
    buf_printf(out,
               "# HELP crm_claims_total Claims of due jobs by this process's workers (one "
               "statement each; engine.claim_linger_ms lets one carry several).\n"
               "# TYPE crm_claims_total counter\ncrm_claims_total %ld\n"
               "# HELP crm_claimed_jobs_total Jobs those claims took.\n"
               "# TYPE crm_claimed_jobs_total counter\ncrm_claimed_jobs_total %ld\n",
               g->claims, g->claimed_jobs);
    buf_printf(out,
               "# HELP crm_outcome_writes_total Writes of the workers' send outcomes (one "
               "statement each for plain sends; engine.outcome_linger_ms lets one carry "
               "several).\n"
               "# TYPE crm_outcome_writes_total counter\ncrm_outcome_writes_total %ld\n"
               "# HELP crm_outcomes_total Send outcomes those writes recorded.\n"
               "# TYPE crm_outcomes_total counter\ncrm_outcomes_total %ld\n",
               g->outcome_writes, g->outcomes);
    buf_printf(out,
               "# HELP crm_analytics_refresh_seconds How long the last fold of the analytics "
               "deltas into the daily rows took (the next waits at least ten times as "
               "long).\n"
               "# TYPE crm_analytics_refresh_seconds gauge\ncrm_analytics_refresh_seconds %.6f\n",
               g->analytics_refresh_s);
    buf_puts(out, "# HELP crm_rate_limit_bucket_rate Sends per second a provider bucket allows "
                  "now (limits.buckets, lowered after a provider's rate_limit).\n"
                  "# TYPE crm_rate_limit_bucket_rate gauge\n");
    for (int b = 0; b < g->nbuckets; b++)
        if (label_safe(g->buckets[b].key))
            buf_printf(out, "crm_rate_limit_bucket_rate{bucket=\"%s\"} %g\n", g->buckets[b].key,
                       g->buckets[b].current);
    buf_puts(out, "# HELP crm_rate_limit_bucket_configured_rate Sends per second the policy "
                  "declares for a provider bucket (limits.buckets).\n"
                  "# TYPE crm_rate_limit_bucket_configured_rate gauge\n");
    for (int b = 0; b < g->nbuckets; b++)
        if (label_safe(g->buckets[b].key))
            buf_printf(out, "crm_rate_limit_bucket_configured_rate{bucket=\"%s\"} %g\n",
                       g->buckets[b].key, g->buckets[b].configured);
    long long inflight = (long long)atomic_load_explicit(&m->in_flight, memory_order_relaxed);
    buf_printf(out,
               "# HELP crm_sends_in_flight Sends handed to a provider and not yet answered.\n"
               "# TYPE crm_sends_in_flight gauge\ncrm_sends_in_flight %lld\n",
               inflight < 0 ? 0 : inflight);
    if (g->queue_known)
        buf_printf(out,
                   "# HELP crm_queue_jobs Jobs in the queue by state (due: ready to claim; "
                   "scheduled: waiting for their time; leased: held by a worker).\n"
                   "# TYPE crm_queue_jobs gauge\n"
                   "crm_queue_jobs{state=\"due\"} %ld\ncrm_queue_jobs{state=\"scheduled\"} "
                   "%ld\ncrm_queue_jobs{state=\"leased\"} %ld\n"
                   "# HELP crm_queue_oldest_due_age_seconds How long the longest-waiting due "
                   "job has waited for a worker (0: none waits).\n"
                   "# TYPE crm_queue_oldest_due_age_seconds gauge\n"
                   "crm_queue_oldest_due_age_seconds %.3f\n",
                   g->queue_due, g->queue_scheduled, g->queue_leased, g->queue_oldest_due_s);
    buf_puts(out, "# HELP crm_api_errors_total API answers with an error status, by route.\n"
                  "# TYPE crm_api_errors_total counter\n");
    for (size_t r = 0; r < NSLOTS; r++)
        for (size_t k = 0; k < NSTATUS; k++) {
            uint64_t v = load(&m->requests[r][k]);
            if (v == 0 || statuses[k] < 400) /* 0: "any other" may not be an error */
                continue;
            buf_puts(out, "crm_api_errors_total{");
            labels(out, rl, r);
            buf_printf(out, ",status=\"%d\"} %llu\n", statuses[k], (unsigned long long)v);
        }
    buf_printf(out,
               "# HELP crm_script_generation The policy generation in use.\n"
               "# TYPE crm_script_generation gauge\ncrm_script_generation %ld\n"
               "# HELP crm_script_reload_errors_total Reloads refused (the previous generation "
               "kept).\n# TYPE crm_script_reload_errors_total counter\n"
               "crm_script_reload_errors_total %ld\n"
               "# HELP crm_script_failing Whether the last reload attempt failed.\n"
               "# TYPE crm_script_failing gauge\ncrm_script_failing %d\n",
               g->script_generation, g->script_reload_errors, g->script_failing ? 1 : 0);
    if (g->process_known)
        proc_render(&g->process, out);
}
