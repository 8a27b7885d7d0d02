/*
 * lg_stats.h - the load generator's latency statistics (tools/bench/loadgen.c):
 * percentiles, and a per-second timeline that tells the server's time from
 * the load generator's own lateness.
 */
#ifndef HERALD_BENCH_LG_STATS_H
#define HERALD_BENCH_LG_STATS_H

#include <stddef.h>
#include <stdint.h>

/* One answered request: the second of the run it was due in, its latency
 * from when it was due (what an open-loop benchmark reports), and from when
 * it was sent (the server's part: the rest is the load generator's lag). */
typedef struct {
    uint32_t sec;
    uint32_t lat_us;
    uint32_t ans_us;
} lg_sample_t;

/* The p-th percentile (0-100, nearest rank) of n values sorted ascending,
 * in ms; 0 for none. */
double lg_pct_ms(const uint32_t *sorted_us, size_t n, double p);

/* Sorts v ascending. */
void lg_sort_u32(uint32_t *v, size_t n);

/* Writes one line per second of the run to path: second, answered, latency
 * p50 / p99 / max from the scheduled time, the latest send, and the answer
 * p99 / max from the send (ms). Reorders s. 0, or -1 (errno set). */
int lg_timeline_write(const char *path, lg_sample_t *s, size_t n);

#endif
