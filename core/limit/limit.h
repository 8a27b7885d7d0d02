/*
 * limit.h - rate limits shared by every process through Redis, with an
 * in-process fallback.
 *
 * Each check runs the GCRA (gcra.h) atomically in Redis: one Lua script,
 * loaded with SCRIPT LOAD and called with EVALSHA (reloaded on NOSCRIPT),
 * whose keys hold the theoretical arrival time in ms and expire when idle.
 * Several checks go in one script call, so a batch costs one round trip.
 *
 * When Redis cannot be reached, each key is limited in-process at the rate
 * divided by the number of live processes (the last count Redis gave, from
 * the heartbeats every limiter writes, or the configured count): sending is
 * never unlimited and never stuck. The next check after Redis is back uses
 * the shared bucket again. Uses base, cache.
 */
#ifndef HERALD_LIMIT_LIMIT_H
#define HERALD_LIMIT_LIMIT_H

#include "base/err.h"
#include "cache/redis.h"

#include <stdbool.h>

/* At most this many keys in one lim_check_many call. */
#define LIM_MAX_BATCH 64
/* A key is at most this long (longer keys are refused by lim_check_many). */
#define LIM_MAX_KEY 200
/* At most this many keys read along with a check (lim_check_reading). */
#define LIM_MAX_READS 4
/* In-process buckets kept while Redis is down; see lim_check_many. */
#define LIM_LOCAL_SLOTS 4096

typedef struct lim lim_t;

/* `rate` requests per `per_s` seconds, `burst` of them at once (>= 1). */
typedef struct lim_rule {
    double rate;
    double per_s;
    int burst;
    bool peek; /* only ask: the wait a request would have, nothing counted */
} lim_rule_t;

typedef struct lim_result {
    bool allowed;
    long long retry_after_ms; /* 0 when allowed; otherwise >= 1 */
} lim_result_t;

/* rd may be NULL (in-process only). prefix names the keys in Redis
 * ("herald:limit:"). processes: the count of processes sharing each limit
 * when Redis cannot say (>= 1). Caller frees with lim_free. */
lim_t *lim_new(rd_client_t *rd, const char *prefix, int processes, hd_err_t *err);
void lim_free(lim_t *lim);

/* For tests: a clock in ms (wall clock: the same across processes). When set,
 * Redis is given this time instead of using its own. */
void lim_set_clock(lim_t *lim, double (*now_ms)(void *arg), void *arg);

/* Checks n keys (n <= LIM_MAX_BATCH), each against its rule, in order (a key
 * may appear several times: each occurrence is one request). out[i] is the
 * answer for keys[i]. One Redis round trip; without Redis, the in-process
 * buckets. Returns 0, or -1 with err on bad arguments (nothing counted). */
int lim_check_many(lim_t *lim, int n, const char *const *keys, const lim_rule_t *rules,
                   lim_result_t *out, hd_err_t *err);

/* One key; a bad rule or key is refused with a 1 s wait (never unlimited). */
lim_result_t lim_check(lim_t *lim, const char *key, const lim_rule_t *rule);

/* lim_check, and in the same round trip the values of nreads other Redis
 * keys (full names, <= LIM_MAX_READS): values[i] is malloc'd (caller
 * frees) or NULL when the key is absent. *read_ok is false when Redis did
 * not answer (the check was in-process): every value is then NULL and
 * means nothing. The request path uses it to check a token's revocation and
 * its rate in one call. */
lim_result_t lim_check_reading(lim_t *lim, const char *key, const lim_rule_t *rule, int nreads,
                               const char *const *reads, char **values, bool *read_ok);

/* True when the last check used the shared buckets in Redis. */
bool lim_shared(const lim_t *lim);
/* The live processes the in-process fallback divides by. */
int lim_processes(const lim_t *lim);
/* Checks answered in-process because Redis could not be reached. */
long long lim_fallback_count(const lim_t *lim);

#endif
