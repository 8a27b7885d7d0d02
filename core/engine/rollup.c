/*
 * rollup.c - folds the analytics deltas into the daily rows (see rollup.h)
 * every engine.analytics_refresh_seconds, one process at a time (an
 * advisory lock; the others skip). The triggers of
 * migrations/0018_analytics_counts.sql write the deltas with each message
 * change, and reads add the deltas not folded yet, so the figures are exact
 * whenever the fold runs: it only keeps the delta table small.
 * The same thread runs the retention passes (engine/retention.h).
 */
#include "engine/rollup.h"
#include "base/log.h"
#include "engine/retention.h"
#include "store/repo_analytics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rollup {
    app_t *app;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;        /* under mu */
    atomic_llong last_us; /* the last fold took this long */
};

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int rollup_wait_s(int interval_s, double last_s)
{
    double w = last_s * ROLLUP_DUTY;
    if (!(w <= 86400)) /* NaN or absurd: a day at most */
        w = 86400;
    int wait = (int)w + (w > (int)w);
    return wait > interval_s ? wait : interval_s;
}

double rollup_last_seconds(rollup_t *r)
{
    return r ? (double)atomic_load(&r->last_us) / 1e6 : 0;
}

static void fold(app_t *app, bool prune)
{
    hd_err_t err;
    bool skipped;
    long deltas;
    if (analytics_fold(app->db, prune, &deltas, &skipped, &err) != 0)
        log_warn("cannot fold the analytics deltas; the API still counts them", "reason", err.msg);
}

static bool stopping(void *arg)
{
    rollup_t *r = arg;
    pthread_mutex_lock(&r->mu);
    bool s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

static void *run(void *arg)
{
    rollup_t *r = arg;
    pthread_setname_np(pthread_self(), "herald-rollup");
    time_t last_fold = 0, last_prune = 0, last_retention = 0;
    int fold_wait = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        time_t now = time(NULL);
        if (now - last_fold >= fold_wait) {
            double t0 = mono_s();
            bool prune = now - last_prune >= 3600;
            fold(r->app, prune);
            if (prune)
                last_prune = now;
            double took = mono_s() - t0;
            atomic_store(&r->last_us, (long long)(took * 1e6));
            fold_wait = rollup_wait_s(r->app->cfg->analytics_refresh_s, took);
            if (fold_wait > r->app->cfg->analytics_refresh_s) {
                char t[32], w[16];
                snprintf(t, sizeof(t), "%.3f", took);
                snprintf(w, sizeof(w), "%d", fold_wait);
                log_info("the analytics fold is slow; the next waits longer", "seconds", t,
                         "next_in_seconds", w);
            }
            last_fold = now;
        }
        if (now - last_retention >= r->app->cfg->retention_interval_s) {
            retention_run(r->app, stopping, r);
            last_retention = now;
        }
        pthread_mutex_lock(&r->mu);
        time_t next = last_fold + fold_wait;
        if (last_retention + r->app->cfg->retention_interval_s < next)
            next = last_retention + r->app->cfg->retention_interval_s;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long wait_s = (long)(next - time(NULL));
        until.tv_sec += wait_s > 1 ? wait_s : 1;
        while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

rollup_t *rollup_start(app_t *app)
{
    rollup_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->app = app;
    atomic_init(&r->last_us, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        log_error("cannot start the analytics refresher; analytics will not update");
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return NULL;
    }
    return r;
}

void rollup_stop(rollup_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
