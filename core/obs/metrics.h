/*
 * metrics.h - Prometheus counters and histograms (HTTP requests, the engine's
 * messages, retries and sends) and the text exposition of everything /metrics
 * shows. Uses base/buf only: routes are known by slot number when recorded
 * and by plain label strings when rendered.
 *
 * Recording is lock-free (relaxed atomics in fixed arrays indexed by route
 * and status), so observing a request never contends with other threads.
 */
#ifndef HERALD_OBS_METRICS_H
#define HERALD_OBS_METRICS_H

#include "base/buf.h"
#include "obs/process.h"

#include <stdbool.h>

/* Route slots recorded separately; a slot at or past this is "unmatched". */
#define METRICS_MAX_ROUTES 64

typedef struct metrics metrics_t;

/* The labels of one route slot, for rendering. */
typedef struct metrics_route {
    const char *method;  /* "GET" */
    const char *pattern; /* "/api/crm/communications/{id}" */
} metrics_route_t;

/* A provider bucket's rate (engine/pace.c), in sends per second: as the
 * policy declares it and as used now (lowered after a provider's rate_limit). */
#define METRICS_MAX_BUCKETS 64
typedef struct metrics_bucket {
    char key[160];
    double configured, current;
} metrics_bucket_t;

/* Gauges sampled at scrape time by the caller. */
typedef struct metrics_gauges {
    int db_in_use, db_idle, db_size;
    int db_up;
    int redis_up;
    double uptime_s;
    /* the queue (crm_jobs): due now, waiting for their time, leased (in hand) */
    long queue_due, queue_scheduled, queue_leased;
    double queue_oldest_due_s; /* how long the longest-waiting due job has waited */
    bool queue_known;
    /* opened / delivered per channel over the last 30 days (rollups); < 0: none */
    double open_rate[3]; /* email, sms, whatsapp */
    /* the policy scripts */
    long script_generation, script_reload_errors;
    bool script_failing;
    /* the rate limiter: shared buckets in Redis (1) or in-process (0) */
    int limit_shared;
    int limit_processes;
    metrics_bucket_t buckets[METRICS_MAX_BUCKETS]; /* provider buckets seen by this process */
    int nbuckets;
    /* group commit of acceptance (engine/acceptq.h): commits, messages in them */
    long accept_commits, accept_messages;
    /* of those, stored without reading the client's preferences (not cached,
     * no row: checked by the insert), and refused there (a row existed) */
    long accept_unread, accept_unread_refused;
    /* group reads of preferences (engine/prefs.h): statements, clients in them */
    long prefs_group_reads, prefs_group_clients;
    /* the workers' claims (engine/worker.h): statements, jobs they took */
    long claims, claimed_jobs;
    long outcome_writes, outcomes;
    /* how long the last refresh of today's analytics rollups took (s) */
    double analytics_refresh_s;
    /* this process (obs/process.h): process_* series when known */
    proc_sample_t process;
    bool process_known;
} metrics_gauges_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *m);

/* Records one finished request. route_index is the route's slot (0 to
 * METRICS_MAX_ROUTES - 1) or -1 when no route matched. */
void metrics_http_observe(metrics_t *m, int route_index, int status, double seconds);

/* ---- the engine's metrics (crm_*) ---- */

/* A message reached status on channel (NULL: none yet). */
void metrics_comm(metrics_t *m, const char *channel, const char *status, const char *message_type);
/* Seconds from sent to delivered, from a delivery receipt. */
void metrics_delivery_time(metrics_t *m, double seconds);
/* The policy's answer to a failure: a retry on the same channel, or the next
 * channel (a fallback), by failure category. */
void metrics_retry(metrics_t *m, const char *category);
void metrics_fallback(metrics_t *m, const char *category);
/* A request refused by a rate limit: bucket is the limit's kind of key
 * ("api", "auth_failures", "webhook", "tracking"); shared: decided by the shared bucket in Redis,
 * else by the in-process fallback. */
void metrics_rate_limited(metrics_t *m, const char *bucket, bool shared);
/* A refused API key or refresh token. */
void metrics_auth_failure(metrics_t *m);
/* Sends handed to the transport and not yet answered. */
void metrics_in_flight(metrics_t *m, int delta);

/* Appends the whole exposition (text format 0.0.4) to out. routes[i] labels
 * slot i for i < nroutes; other slots are rendered as "unmatched". */
void metrics_render(const metrics_t *m, const metrics_route_t *routes, int nroutes,
                    const metrics_gauges_t *g, buf_t *out);

#endif
