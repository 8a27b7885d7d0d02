/*
 * limit.c - GCRA limits in Redis with an in-process fallback (see limit.h).
 */
#include "limit/limit.h"

#include "base/log.h"
#include "limit/gcra.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Processes that wrote a heartbeat within the last 10 s (the script's
 * window) are live; each writes one every 2 s while it checks. */
#define HEARTBEAT_EVERY_MS 2000

/* KEYS[1]: the heartbeat set; KEYS[2..B]: the buckets; KEYS[B+1..]: keys
 * only read (GET), ARGV[3] of them. ARGV[1]: now in ms ("0": Redis's
 * clock), ARGV[2]: this process's heartbeat member ("": none this time),
 * ARGV[2i], ARGV[2i + 1]: interval (ms) and burst of KEYS[i], then one peek
 * flag per bucket ("1": only ask, nothing taken; a clamp after the clock went
 * back is still kept). Returns {live processes (0: not counted), wait ms of
 * each bucket, the value of each read key (nil when absent)}. The steps are
 * gcra_take's. */
static const char SCRIPT[] =
    "local now = tonumber(ARGV[1])\n"
    "if now == 0 then local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end\n"
    "local last = #KEYS - tonumber(ARGV[3])\n"
    "local out = {0}\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('ZADD', KEYS[1], now, ARGV[2])\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10000)\n"
    "  redis.call('PEXPIRE', KEYS[1], 60000)\n"
    "  out[1] = redis.call('ZCARD', KEYS[1]) end\n"
    "for i = 2, last do\n"
    "  local interval = tonumber(ARGV[2 * i])\n"
    "  local burst = tonumber(ARGV[2 * i + 1])\n"
    "  local peek = ARGV[2 * last + i] == '1'\n"
    "  local tolerance = interval * burst\n"
    "  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
    "  if tat < now then tat = now end\n"
    "  if tat > now + tolerance then tat = now + tolerance\n"
    "    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX',\n"
    "               math.max(1, math.ceil(tat - now))) end\n"
    "  local nxt = tat + interval\n"
    "  local allow_at = nxt - tolerance\n"
    "  if now < allow_at or peek then\n"
    "    out[i] = now < allow_at and math.max(1, math.ceil(allow_at - now)) or 0\n"
    "  else\n"
    "    redis.call('SET', KEYS[i], string.format('%.3f', nxt), 'PX',\n"
    "               math.max(1, math.ceil(nxt - now)))\n"
    "    out[i] = 0\n"
    "  end\n"
    "end\n"
    "for i = last + 1, #KEYS do out[i] = redis.call('GET', KEYS[i]) end\n"
    "return out\n";

typedef struct slot {
    char key[LIM_MAX_KEY + 1];
    double tat;
} slot_t;

struct lim {
    rd_client_t *rd;
    char prefix[64];
    char member[64];
    int processes_configured;
    atomic_int processes;
    atomic_bool shared;
    atomic_llong fallbacks;
    double (*clock)(void *);
    void *clock_arg;
    pthread_mutex_t mu; /* sha, last_heartbeat, the local table */
    char sha[48];
    double last_heartbeat;
    slot_t *slots; /* LIM_LOCAL_SLOTS, allocated when first needed */
    int nslots;
};

static double wall_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

lim_t *lim_new(rd_client_t *rd, const char *prefix, int processes, hd_err_t *err)
{
    if (prefix == NULL || strlen(prefix) >= sizeof(((lim_t *)0)->prefix)) {
        hd_err_set(err, "limit: prefix longer than 63 bytes");
        return NULL;
    }
    if (processes < 1) {
        hd_err_set(err, "limit: processes must be at least 1 (got %d)", processes);
        return NULL;
    }
    lim_t *lim = calloc(1, sizeof(*lim));
    if (lim == NULL) {
        hd_err_set(err, "limit: out of memory");
        return NULL;
    }
    lim->rd = rd;
    snprintf(lim->prefix, sizeof(lim->prefix), "%s", prefix);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(lim->member, sizeof(lim->member), "%ld.%lld.%ld", (long)getpid(), (long long)ts.tv_sec,
             (long)ts.tv_nsec);
    lim->processes_configured = processes;
    atomic_init(&lim->processes, processes);
    atomic_init(&lim->shared, false);
    atomic_init(&lim->fallbacks, 0);
    lim->clock = wall_ms;
    lim->last_heartbeat = -1e18;
    pthread_mutex_init(&lim->mu, NULL);
    return lim;
}

void lim_free(lim_t *lim)
{
    if (lim == NULL)
        return;
    pthread_mutex_destroy(&lim->mu);
    free(lim->slots);
    free(lim);
}

void lim_set_clock(lim_t *lim, double (*now_ms)(void *arg), void *arg)
{
    lim->clock = now_ms ? now_ms : wall_ms;
    lim->clock_arg = arg;
}

bool lim_shared(const lim_t *lim)
{
    return atomic_load(&((lim_t *)lim)->shared);
}

int lim_processes(const lim_t *lim)
{
    return atomic_load(&((lim_t *)lim)->processes);
}

long long lim_fallback_count(const lim_t *lim)
{
    return atomic_load(&((lim_t *)lim)->fallbacks);
}

static bool rule_ok(const lim_rule_t *r)
{
    return r && r->rate > 0 && r->per_s > 0 && r->burst >= 1 && isfinite(r->rate) &&
           isfinite(r->per_s) && gcra_interval(r->rate, r->per_s) < 1e12;
}

static unsigned long hash_key(const char *s)
{
    unsigned long h = 1469598103934665603UL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211UL;
    return h;
}

/* The in-process bucket of key (mu held), or NULL when the table is full of
 * keys still in use. */
static slot_t *local_slot(lim_t *lim, const char *key, double now)
{
    if (lim->slots == NULL && (lim->slots = calloc(LIM_LOCAL_SLOTS, sizeof(slot_t))) == NULL)
        return NULL;
    for (int pass = 0; pass < 2; pass++) {
        unsigned long h = hash_key(key);
        for (int i = 0; i < LIM_LOCAL_SLOTS; i++) {
            slot_t *s = &lim->slots[(h + (unsigned long)i) % LIM_LOCAL_SLOTS];
            if (s->key[0] == '\0') {
                snprintf(s->key, sizeof(s->key), "%s", key);
                s->tat = 0;
                lim->nslots++;
                return s;
            }
            if (strcmp(s->key, key) == 0)
                return s;
        }
        /* Full: forget the buckets that are idle (they act as new ones). The
         * table is rebuilt so probing stays correct. */
        slot_t *old = lim->slots;
        if ((lim->slots = calloc(LIM_LOCAL_SLOTS, sizeof(slot_t))) == NULL) {
            lim->slots = old;
            return NULL;
        }
        lim->nslots = 0;
        for (int i = 0; i < LIM_LOCAL_SLOTS; i++) {
            if (old[i].key[0] == '\0' || gcra_ttl(old[i].tat, now) <= 0)
                continue;
            unsigned long g = hash_key(old[i].key);
            for (int j = 0; j < LIM_LOCAL_SLOTS; j++) {
                slot_t *s = &lim->slots[(g + (unsigned long)j) % LIM_LOCAL_SLOTS];
                if (s->key[0] == '\0') {
                    *s = old[i];
                    lim->nslots++;
                    break;
                }
            }
        }
        free(old);
        if (lim->nslots >= LIM_LOCAL_SLOTS)
            return NULL;
    }
    return NULL;
}

/* In-process: each process gets its share of the rate and of the burst. A
 * full table refuses for one interval (never unlimited). */
static void check_local(lim_t *lim, int n, const char *const *keys, const lim_rule_t *rules,
                        lim_result_t *out, double now)
{
    int procs = atomic_load(&lim->processes);
    pthread_mutex_lock(&lim->mu);
    for (int i = 0; i < n; i++) {
        double interval = gcra_interval(rules[i].rate, rules[i].per_s) * procs;
        int burst = rules[i].burst / procs;
        slot_t *s = local_slot(lim, keys[i], now);
        double t = s ? s->tat : 0;
        double wait = s ? gcra_take(&t, now, interval, burst < 1 ? 1 : burst) : interval;
        if (s && !rules[i].peek)
            s->tat = t;
        out[i].allowed = wait <= 0;
        out[i].retry_after_ms = wait <= 0 ? 0 : (long long)ceil(wait);
    }
    pthread_mutex_unlock(&lim->mu);
    atomic_fetch_add(&lim->fallbacks, n);
}

static redisReply *run_script(lim_t *lim, int argc, const char **argv)
{
    hd_err_t err;
    char sha[48];
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&lim->mu);
        snprintf(sha, sizeof(sha), "%s", lim->sha);
        pthread_mutex_unlock(&lim->mu);
        if (sha[0] == '\0') {
            const char *load[] = {"SCRIPT", "LOAD", SCRIPT};
            redisReply *r = rd_command_argv(lim->rd, 3, load, &err);
            if (r == NULL)
                return NULL;
            if (r->type != REDIS_REPLY_STRING || r->len >= (long)sizeof(sha)) {
                log_error("limit: SCRIPT LOAD refused", "reply",
                          r->type == REDIS_REPLY_ERROR ? r->str : "not a string");
                freeReplyObject(r);
                return NULL;
            }
            snprintf(sha, sizeof(sha), "%s", r->str);
            freeReplyObject(r);
            pthread_mutex_lock(&lim->mu);
            snprintf(lim->sha, sizeof(lim->sha), "%s", sha);
            pthread_mutex_unlock(&lim->mu);
        }
        argv[0] = "EVALSHA";
        argv[1] = sha;
        redisReply *r = rd_command_argv(lim->rd, argc, argv, &err);
        if (r == NULL)
            return NULL;
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            /* Redis restarted or SCRIPT FLUSH: load it again. */
            freeReplyObject(r);
            pthread_mutex_lock(&lim->mu);
            lim->sha[0] = '\0';
            pthread_mutex_unlock(&lim->mu);
            continue;
        }
        return r;
    }
    return NULL;
}

/* 0 when Redis answered every key, -1 to fall back. reads[0..nreads): keys
 * only read; values[i] their values (malloc'd, NULL when absent). */
static int check_redis(lim_t *lim, int n, const char *const *keys, const lim_rule_t *rules,
                       lim_result_t *out, double now, bool clocked, int nreads,
                       const char *const *reads, char **values)
{
    enum { PER_KEY = 3 };
    const char *argv[7 + (1 + PER_KEY) * LIM_MAX_BATCH + LIM_MAX_READS];
    char fullkeys[LIM_MAX_BATCH][64 + LIM_MAX_KEY + 1];
    char nums[LIM_MAX_BATCH][2][32];
    char nkeys[16], nowbuf[32], zset[96], nreadbuf[16];
    int argc = 2;
    snprintf(nkeys, sizeof(nkeys), "%d", n + 1 + nreads);
    argv[argc++] = nkeys;
    snprintf(zset, sizeof(zset), "%sprocs", lim->prefix);
    argv[argc++] = zset;
    for (int i = 0; i < n; i++) {
        snprintf(fullkeys[i], sizeof(fullkeys[i]), "%s%s", lim->prefix, keys[i]);
        argv[argc++] = fullkeys[i];
    }
    for (int i = 0; i < nreads; i++)
        argv[argc++] = reads[i];
    snprintf(nowbuf, sizeof(nowbuf), "%.3f", clocked ? now : 0.0);
    argv[argc++] = nowbuf;
    pthread_mutex_lock(&lim->mu);
    bool beat = now - lim->last_heartbeat >= HEARTBEAT_EVERY_MS || now < lim->last_heartbeat;
    if (beat)
        lim->last_heartbeat = now;
    pthread_mutex_unlock(&lim->mu);
    argv[argc++] = beat ? lim->member : "";
    snprintf(nreadbuf, sizeof(nreadbuf), "%d", nreads);
    argv[argc++] = nreadbuf;
    for (int i = 0; i < n; i++) {
        snprintf(nums[i][0], sizeof(nums[i][0]), "%.6f",
                 gcra_interval(rules[i].rate, rules[i].per_s));
        snprintf(nums[i][1], sizeof(nums[i][1]), "%d", rules[i].burst);
        argv[argc++] = nums[i][0];
        argv[argc++] = nums[i][1];
    }
    for (int i = 0; i < n; i++) /* then the peek flags, one per key */
        argv[argc++] = rules[i].peek ? "1" : "0";
    redisReply *r = run_script(lim, argc, argv);
    if (r == NULL)
        return -1;
    size_t want = (size_t)n + 1 + (size_t)nreads;
    /* Lua drops trailing nils from a table: absent read keys at the end
     * come back as a shorter array */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < (size_t)n + 1 || r->elements > want) {
        log_error("limit: unexpected script reply; limiting in-process", "reply",
                  r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        int t = r->element[i]->type;
        bool ok = i <= (size_t)n ? t == REDIS_REPLY_INTEGER
                                 : t == REDIS_REPLY_STRING || t == REDIS_REPLY_NIL;
        if (!ok) {
            freeReplyObject(r);
            return -1;
        }
    }
    if (r->element[0]->integer > 0)
        atomic_store(&lim->processes, (int)r->element[0]->integer);
    for (int i = 0; i < n; i++) {
        long long wait = r->element[i + 1]->integer;
        out[i].allowed = wait <= 0;
        out[i].retry_after_ms = wait <= 0 ? 0 : wait;
    }
    for (int i = 0; i < nreads; i++) {
        size_t e = (size_t)n + 1 + (size_t)i;
        values[i] = e < r->elements && r->element[e]->type == REDIS_REPLY_STRING
                        ? strdup(r->element[e]->str)
                        : NULL;
    }
    freeReplyObject(r);
    return 0;
}

/* lim_check_many, and the reads when Redis answers: *read_ok says so. */
static int check_many(lim_t *lim, int n, const char *const *keys, const lim_rule_t *rules,
                      lim_result_t *out, int nreads, const char *const *reads, char **values,
                      bool *read_ok, hd_err_t *err)
{
    *read_ok = false;
    for (int i = 0; i < nreads; i++)
        values[i] = NULL;
    if (n < 0 || n > LIM_MAX_BATCH)
        return hd_err_set(err, "limit: %d checks in one batch (at most %d)", n, LIM_MAX_BATCH);
    if (nreads < 0 || nreads > LIM_MAX_READS)
        return hd_err_set(err, "limit: %d reads in one check (at most %d)", nreads, LIM_MAX_READS);
    for (int i = 0; i < n; i++) {
        if (keys[i] == NULL || keys[i][0] == '\0' || strlen(keys[i]) > LIM_MAX_KEY)
            return hd_err_set(err, "limit: key %d is empty or longer than %d bytes", i,
                              LIM_MAX_KEY);
        if (!rule_ok(&rules[i]))
            return hd_err_set(err, "limit: rule %d needs rate > 0, per > 0, burst >= 1", i);
    }
    if (n == 0)
        return 0;
    bool clocked = lim->clock != wall_ms;
    double now = lim->clock(lim->clock_arg);
    if (lim->rd &&
        check_redis(lim, n, keys, rules, out, now, clocked, nreads, reads, values) == 0) {
        *read_ok = true;
        if (!atomic_exchange(&lim->shared, true))
            log_info("limit: shared buckets in redis");
        return 0;
    }
    if (atomic_exchange(&lim->shared, false) || lim_fallback_count(lim) == 0) {
        char procs[16];
        snprintf(procs, sizeof(procs), "%d", lim_processes(lim));
        log_info("limit: no shared buckets; limiting in-process", "processes", procs);
    }
    check_local(lim, n, keys, rules, out, now);
    return 0;
}

int lim_check_many(lim_t *lim, int n, const char *const *keys, const lim_rule_t *rules,
                   lim_result_t *out, hd_err_t *err)
{
    bool read_ok;
    return check_many(lim, n, keys, rules, out, 0, NULL, NULL, &read_ok, err);
}

lim_result_t lim_check(lim_t *lim, const char *key, const lim_rule_t *rule)
{
    lim_result_t res = {.allowed = false, .retry_after_ms = 1000};
    hd_err_t err;
    if (lim_check_many(lim, 1, &key, rule, &res, &err) != 0)
        log_error("limit: bad check; refused", "error", err.msg);
    return res;
}

lim_result_t lim_check_reading(lim_t *lim, const char *key, const lim_rule_t *rule, int nreads,
                               const char *const *reads, char **values, bool *read_ok)
{
    lim_result_t res = {.allowed = false, .retry_after_ms = 1000};
    hd_err_t err;
    if (check_many(lim, 1, &key, rule, &res, nreads, reads, values, read_ok, &err) != 0)
        log_error("limit: bad check; refused", "error", err.msg);
    return res;
}
