/*
 * repo_ops.h - what the operator's desk reads and changes (issue 15 item 2):
 * the queue at a glance, each provider's recent errors, a client's last
 * messages with the reasons behind them, channel pauses and the retry of a
 * failed message. Each read is one statement answering a JSON document
 * built by PostgreSQL (jsonb), returned parsed. Uses store/pg.
 */
#ifndef HERALD_STORE_REPO_OPS_H
#define HERALD_STORE_REPO_OPS_H

#include "base/err.h"
#include "store/pg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* {jobs: [{kind, state (due|scheduled|in_flight), n}], messages: [{status,
 * channel, urgency, n}] of the messages not ended yet, in_flight: [{channel,
 * n}], oldest_due: {job_id, kind, communication_id, due_at, waiting_s} |
 * null, paused: [{channel, by, reason, at}]}. NULL with err. */
cJSON *ops_queue(pg_pool_t *db, hd_err_t *err);

/* [{provider, attempts, errors, error_rate} over the last `minutes`, with
 * last_error: {at, code, category, message} (the latest failed attempt, any
 * time)]. NULL with err. */
cJSON *ops_providers(pg_pool_t *db, int minutes, hd_err_t *err);

/* The client's last `limit` messages, newest first: [{id, message_type,
 * urgency, status, channel, created_at, strategy (with its reasons), events:
 * [{type, message, at}]}]. NULL with err. */
cJSON *ops_why(pg_pool_t *db, const char *client_id, int limit, hd_err_t *err);

/* [{channel, by, reason, at}] of the channels paused now. NULL with err. */
cJSON *ops_pauses(pg_pool_t *db, hd_err_t *err);

/* Pauses (on) or resumes channel, with an audit row (channel.pause /
 * channel.resume, actor). *changed: false when it already was so. 0, or
 * -1 with err. */
int ops_pause(pg_pool_t *db, const char *channel, bool on, const char *actor, const char *reason,
              bool *changed, hd_err_t *err);

/* A failed message goes again from the start of its chain: status
 * 'queued', a new send job due now at its priority, an event and an audit
 * row (communication.retry, actor). 0 done, 1 not found, 2 not failed
 * (status_out says what it is), -1 with err. */
int ops_retry(pg_pool_t *db, const char *id, const char *actor, char status_out[16], hd_err_t *err);

/* A job of a paused channel (the claim's owner holds it) waits wait_s more:
 * no attempt, its message's status kept, an event (type paused, message
 * why) the first time. 0, or -1 with err. */
int ops_hold(pg_pool_t *db, int64_t job_id, const char *owner, double wait_s, const char *channel,
             const char *why, hd_err_t *err);
/* Every held job is due now (after a resume). 0, or -1 with err. */
int ops_unhold(pg_pool_t *db, hd_err_t *err);

#endif
