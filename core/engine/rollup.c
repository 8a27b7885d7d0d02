/*
 * rollup.c - keeps the analytics rollups fresh (see rollup.h): today's and
 * yesterday's rows every engine.analytics_refresh_seconds, the last 35 days
 * at start and then hourly (late opens and receipts change older days).
 * The same thread runs the retention passes (engine/retention.h).
 * At start, older days that have messages but no rollup rows (a database
 * that predates the rollups, an import) are filled in: each 35-day block
 * with such a day is recomputed whole. One process at a time does it (an advisory lock); the others
 * skip.
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
    atomic_llong last_us; /* the last refresh of today and yesterday took this long */
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

static void day_of(time_t t, int back, char out[16])
{
    t -= (time_t)back * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static void refresh(app_t *app, int from_back, int to_back)
{
    char first[16], last[16];
    time_t now = time(NULL);
    day_of(now, from_back, first);
    day_of(now, to_back, last);
    hd_err_t err;
    bool skipped;
    if (analytics_refresh(app->db, first, last, &skipped, &err) != 0)
        log_warn("cannot refresh the analytics rollups; the API shows their last state", "days",
                 first, "reason", err.msg);
}

/* Older days with messages and no rollups, 35 at a time, oldest first. */
static void backfill(app_t *app)
{
    hd_err_t err;
    long oldest = analytics_oldest_day(app->db, &err);
    long today = (long)(time(NULL) / 86400);
    for (long first = oldest; oldest >= 0 && first <= today - 36; first += 35) {
        long last = first + 34 < today - 36 ? first + 34 : today - 36;
        char a[16], b[16];
        day_of((time_t)today * 86400, (int)(today - first), a);
        day_of((time_t)today * 86400, (int)(today - last), b);
        bool has = true, skipped;
        if (analytics_has_rows(app->db, a, b, &has, &err) == 0 && !has &&
            analytics_refresh(app->db, a, b, &skipped, &err) != 0)
            log_warn("cannot fill in old analytics rollups", "days", a, "reason", err.msg);
    }
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
    time_t last_full = 0, last_today = 0, last_retention = 0;
    int today_wait = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        time_t now = time(NULL);
        if (now - last_full >= 3600) {
            if (last_full == 0)
                backfill(r->app);
            refresh(r->app, 35, 2);
            last_full = now;
        }
        if (now - last_today >= today_wait) {
            double t0 = mono_s();
            refresh(r->app, 1, 0);
            double took = mono_s() - t0;
            atomic_store(&r->last_us, (long long)(took * 1e6));
            today_wait = rollup_wait_s(r->app->cfg->analytics_refresh_s, took);
            if (today_wait > r->app->cfg->analytics_refresh_s) {
                char t[32], w[16];
                snprintf(t, sizeof(t), "%.3f", took);
                snprintf(w, sizeof(w), "%d", today_wait);
                log_info("the analytics refresh is slow; the next waits longer", "seconds", t,
                         "next_in_seconds", w);
            }
            last_today = now;
        }
        /* after the rollups: a day is summed before its messages go */
        if (now - last_retention >= r->app->cfg->retention_interval_s) {
            retention_run(r->app, stopping, r);
            last_retention = now;
        }
        pthread_mutex_lock(&r->mu);
        time_t next = last_today + today_wait;
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
