/*
 * metrics.h - Prometheus counters and histograms for the HTTP layer, and the
 * text exposition of everything /metrics shows.
 *
 * Recording is lock-free (relaxed atomics in fixed arrays indexed by route
 * and status), so observing a request never contends with other threads.
 */
#ifndef HERALD_HTTP_METRICS_H
#define HERALD_HTTP_METRICS_H

#include "base/buf.h"
#include "http/router.h"

typedef struct metrics metrics_t;

/* Gauges sampled at scrape time by the caller. */
typedef struct metrics_gauges {
    int db_in_use, db_idle, db_size;
    int db_up;
    int redis_up;
    double uptime_s;
} metrics_gauges_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *m);

/* Records one finished request. route_index is the router slot or -1 when
 * no route matched. */
void metrics_http_observe(metrics_t *m, int route_index, int status, double seconds);

/* Appends the whole exposition (text format 0.0.4) to out. */
void metrics_render(const metrics_t *m, const router_t *router, const metrics_gauges_t *g,
                    buf_t *out);

#endif
