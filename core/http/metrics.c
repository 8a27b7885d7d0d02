/* metrics.c - lock-free HTTP metrics and Prometheus text output (see metrics.h). */
#include "http/metrics.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define NSLOTS (ROUTER_MAX_ROUTES + 1) /* last slot: unmatched */

static const int statuses[] = {200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404,
                               405, 409, 413, 415, 422, 429, 500, 502, 503, 504, 0};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0])) /* 0: any other */

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bounds) / sizeof(bounds[0]))

struct metrics {
    atomic_uint_fast64_t requests[NSLOTS][NSTATUS];
    atomic_uint_fast64_t buckets[NSLOTS][NBUCKETS]; /* non-cumulative; summed at render */
    atomic_uint_fast64_t count[NSLOTS];
    atomic_uint_fast64_t sum_us[NSLOTS];
};

metrics_t *metrics_new(void)
{
    /* calloc'd zero bytes are valid initial values for these lock-free atomics. */
    return calloc(1, sizeof(metrics_t));
}

void metrics_free(metrics_t *m)
{
    free(m);
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
        (route_index < 0 || route_index >= ROUTER_MAX_ROUTES) ? NSLOTS - 1 : (size_t)route_index;
    atomic_fetch_add_explicit(&m->requests[r][status_slot(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NBUCKETS && seconds > bounds[b])
        b++;
    if (b < NBUCKETS)
        atomic_fetch_add_explicit(&m->buckets[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count[r], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us[r], (uint_fast64_t)(seconds * 1e6), memory_order_relaxed);
}

static void labels(buf_t *out, const router_t *router, size_t slot)
{
    if (slot < (size_t)router->count)
        buf_printf(out, "route=\"%s\",method=\"%s\"", router->routes[slot].pattern,
                   router->routes[slot].method);
    else
        buf_puts(out, "route=\"unmatched\",method=\"\"");
}

static uint64_t load(const atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

void metrics_render(const metrics_t *m, const router_t *router, const metrics_gauges_t *g,
                    buf_t *out)
{
    buf_puts(out, "# HELP herald_http_requests_total HTTP requests by route, method and status.\n"
                  "# TYPE herald_http_requests_total counter\n");
    for (size_t r = 0; r < NSLOTS; r++) {
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (v == 0)
                continue;
            buf_puts(out, "herald_http_requests_total{");
            labels(out, router, r);
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
            labels(out, router, r);
            buf_printf(out, ",le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cum);
        }
        buf_puts(out, "herald_http_request_duration_seconds_bucket{");
        labels(out, router, r);
        buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)count);
        buf_puts(out, "herald_http_request_duration_seconds_sum{");
        labels(out, router, r);
        buf_printf(out, "} %.6f\n", (double)load(&m->sum_us[r]) / 1e6);
        buf_puts(out, "herald_http_request_duration_seconds_count{");
        labels(out, router, r);
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
}
