/*
 * ops.h - the operator's desk (issue 15 item 2): what the attached console
 * and the admin API ask of a running engine. Reads (queue, providers, why)
 * come from store/repo_ops; pause/resume stop and restart sending on a
 * channel for every process (crm_channel_pauses, read at most once a
 * second per process), and retry sends a failed message again; both are
 * audited. Uses base, store, engine.
 */
#ifndef HERALD_ENGINE_OPS_H
#define HERALD_ENGINE_OPS_H

#include "base/err.h"
#include "engine/app.h"
#include "store/repo_comms.h"
#include "transport/transport.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* How long a job of a paused channel waits before it is looked at again. */
#define OPS_PAUSE_RECHECK_S 5.0

/* Whether ch is paused now (as this process last read it, at most 1 s
 * ago); by gets who paused it. */
bool ops_channel_paused(app_t *app, tr_channel_t ch, char *by, size_t n);

/* Whether this process saw ch resumed at or after claimed_at (a job's
 * claim_at, CLOCK_MONOTONIC seconds): such a job was claimed among the
 * held ones and goes back, so the next claim takes them by priority. */
bool ops_resumed_since(app_t *app, tr_channel_t ch, double claimed_at);

/* The copy of the pauses of one process (app->ops). */
/* The queue as the operator sees it (ops_queue: counts by state, channel
 * and urgency, the oldest due job, in flight per channel) with "buckets":
 * the provider buckets this process paces and their rates now. NULL with
 * err when the database cannot answer. */
cJSON *ops_queue_report(app_t *app, hd_err_t *err);

ops_state_t *ops_state_new(void);
void ops_state_free(ops_state_t *s);

/* The job j (claimed, on channel ch) waits for the pause to end. */
void ops_hold_job(app_t *app, comm_job_t *j, tr_channel_t ch, const char *by);

/* Pauses or resumes channel ("email", "sms", "whatsapp") for every process;
 * a resume makes the held jobs due at once. *changed: false when it already
 * was so. 0; 1 not a channel; -1 with err. */
int ops_set_pause(app_t *app, const char *channel, bool on, const char *actor, const char *reason,
                  bool *changed, hd_err_t *err);

/* Sends failed message id again from the start of its chain (audited):
 * 0 done, 1 not found, 2 not failed (status_out), -1 with err. */
int ops_retry_message(app_t *app, const char *id, const char *actor, char status_out[16],
                      hd_err_t *err);

#endif
