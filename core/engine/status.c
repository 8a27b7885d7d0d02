/* status.c - the gauges an operator watches, sampled on demand (see status.h).
 * Uses store/ (queue depth, open rates), cache/ (Redis probe), lua/ (the
 * scripts' state), limit/ and obs/process. */
#include "engine/status.h"
#include "base/group.h"
#include "engine/acceptq.h"
#include "engine/pace.h"
#include "engine/rollup.h"
#include "engine/worker.h"
#include "obs/process.h"
#include "store/repo_analytics.h"
#include "store/repo_comms.h"

#include <string.h>
#include <time.h>

int status_queue(app_t *app, status_queue_t *q, hd_err_t *err)
{
    memset(q, 0, sizeof(*q));
    return comms_queue_depth(app->db, &q->due, &q->scheduled, &q->leased, &q->oldest_due_s, err);
}

void status_gauges(app_t *app, metrics_gauges_t *g)
{
    memset(g, 0, sizeof(*g));
    pg_pool_stats(app->db, &g->db_in_use, &g->db_idle, &g->db_size);
    g->db_up = pg_pool_ping(app->db, NULL) == 0;
    /* Probe on every scrape (cheap; throttled while Redis is down), so the
     * gauge falls even when nothing else touches Redis. */
    g->redis_up = rd_ping(app->redis, NULL) == 0;
    g->uptime_s = (double)(time(NULL) - app->started);
    g->limit_shared = lim_shared(app->limiter);
    g->limit_processes = lim_processes(app->limiter);
    g->nbuckets = pace_rates(app, g->buckets, METRICS_MAX_BUCKETS);
    if (app->acceptq)
        acceptq_counts(app->acceptq, &g->accept_commits, &g->accept_messages, &g->accept_unread,
                       &g->accept_unread_refused);
    engine_counts(app->engine, &g->claims, &g->claimed_jobs, &g->outcome_writes, &g->outcomes);
    g->analytics_refresh_s = rollup_last_seconds(engine_rollup(app->engine));
    if (app->prefs_reads)
        group_counts(app->prefs_reads, &g->prefs_group_reads, &g->prefs_group_clients);
    if (g->db_up) {
        g->queue_known = comms_queue_depth(app->db, &g->queue_due, &g->queue_scheduled,
                                           &g->queue_leased, &g->queue_oldest_due_s, NULL) == 0;
        analytics_open_rates(app->db, g->open_rate, NULL);
    } else {
        g->open_rate[0] = g->open_rate[1] = g->open_rate[2] = -1;
    }
    lrt_status_t ls;
    lrt_status(app->policy, &ls);
    g->script_generation = ls.generation;
    g->script_reload_errors = ls.reload_errors;
    g->script_failing = ls.failing;
    g->process_known = proc_sample(&g->process) == 0;
}
