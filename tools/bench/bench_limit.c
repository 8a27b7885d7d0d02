/*
 * bench_limit.c - the shared limiter's throughput on the send path
 * (docs/benchmarks.md): lim_check_many over batches of up to 64 keys, as
 * engine/pace.c checks a claimed batch, against the Redis of
 * HERALD_REDIS_URL, for N seconds, single thread.
 *   build/bench_limit [seconds] [batch]
 */
#include "cache/redis.h"
#include "limit/limit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 5;
    int batch = argc > 2 ? atoi(argv[2]) : 64;
    if (batch < 1 || batch > LIM_MAX_BATCH)
        batch = LIM_MAX_BATCH;
    const char *url = getenv("HERALD_REDIS_URL");
    hd_err_t err;
    rd_client_t *rd = rd_new(url ? url : "redis://127.0.0.1:6379/0", 500, 2, &err);
    lim_t *lim = rd ? lim_new(rd, "bench:limit:", 1, &err) : NULL;
    if (lim == NULL) {
        fprintf(stderr, "bench_limit: %s\n", err.msg);
        return 1;
    }
    /* a claimed batch: one bucket per send plus one cap per client, far above the load */
    char names[LIM_MAX_BATCH][64];
    const char *keys[LIM_MAX_BATCH];
    lim_rule_t rules[LIM_MAX_BATCH];
    long checks = 0, calls = 0, refused = 0;
    double t0 = now_s(), t;
    while ((t = now_s()) - t0 < secs) {
        for (int i = 0; i < batch; i++) {
            if (i % 2)
                snprintf(names[i], sizeof(names[i]), "cap:sms:%08lx", (unsigned long)(checks + i));
            else
                snprintf(names[i], sizeof(names[i]), "bucket:sms:+1555%04d", i % 8);
            keys[i] = names[i];
            rules[i] = (lim_rule_t){.rate = 1e6, .per_s = 1, .burst = 1000};
        }
        lim_result_t res[LIM_MAX_BATCH];
        if (lim_check_many(lim, batch, keys, rules, res, &err) != 0) {
            fprintf(stderr, "bench_limit: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < batch; i++)
            refused += !res[i].allowed;
        checks += batch;
        calls++;
    }
    printf("bench_limit: %ld checks in %ld calls of %d keys over %.1f s: %.0f checks/s, "
           "%.3f ms a call (%s; %ld refused)\n",
           checks, calls, batch, t - t0, checks / (t - t0), (t - t0) * 1000 / calls,
           lim_shared(lim) ? "shared, Redis" : "in-process", refused);
    lim_free(lim);
    rd_free(rd);
    return 0;
}
