/*
 * pace.h - provider capacity (issue 13 item 3): before a batch of prepared
 * sends goes to the providers, each send's buckets (limits.buckets, Lua)
 * are checked in one call to the shared limiter (core/limit: one Redis round
 * trip per batch of up to LIM_MAX_BATCH keys). A send a bucket refuses is
 * not sent and not an error: its job waits exactly the retry-after (no
 * attempt, no event, no fallback) and is claimed again in priority order.
 * Uses engine/policy, limit, store, obs.
 */
#ifndef HERALD_ENGINE_PACE_H
#define HERALD_ENGINE_PACE_H

#include "engine/app.h"
#include "obs/metrics.h"
#include "store/repo_comms.h"
#include "transport/transport.h"

/* msgs[i] (NULL: nothing to send) of jobs[i], i < n: a refused send is
 * freed and its msgs[i] set to NULL after its job was put back. */
void pace_batch(app_t *app, comm_job_t *jobs, tr_message_t **msgs, int n);

/* A send of job j on ch was answered rate_limit by its provider: its
 * buckets' rates are halved (per process, down to 1/64), recovering by
 * doubling every 20 s without another. */
void pace_slow_down(app_t *app, tr_channel_t ch, const comm_job_t *j);

/* The provider buckets this process has paced (at most max), each with
 * the rate the policy declares and the rate used now, in sends per second.
 * Returns how many were written. */
int pace_rates(app_t *app, metrics_bucket_t *out, int max);

/* The adaptive factors and priority holds of one process (app->pacing). */
pace_state_t *pace_new(void);
void pace_free(pace_state_t *s);

#endif
