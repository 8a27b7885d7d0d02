/*
 * repo_jobs.h - the queue's jobs other than a message's send (crm_jobs):
 * no-receipt timers, parked receipts and operations alerts. Workers claim
 * them with the send jobs (comms_claim), under the same lease; each is
 * about one message (communication_id) and leaves its events in that
 * message's record.
 */
#ifndef HERALD_STORE_REPO_JOBS_H
#define HERALD_STORE_REPO_JOBS_H

#include "base/err.h"
#include "store/pg.h"
#include "store/repo_comms.h"

#include <stdbool.h>

/* Arms the no-receipt timer of a message just sent on channel j->channel_index:
 * due after seconds (one per message and channel). */
int comms_arm_no_receipt(pg_pool_t *db, const comm_job_t *j, double seconds, hd_err_t *err);

/* A timer job came due: when the message is still only 'sent' on channel,
 * the job becomes the resend on the next channel (*fired, with an event
 * saying message); otherwise it is dropped. */
int comms_fire_no_receipt(pg_pool_t *db, const comm_job_t *j, const char *channel,
                          const char *message, bool *fired, hd_err_t *err);

/* Parks a receipt that cannot be applied yet (its send is not recorded):
 * a 'receipt' job for comm_id with the receipt as payload, due at once and
 * kept once per dedup_key. */
int jobs_park_receipt(pg_pool_t *db, const char *comm_id, const char *dedup_key,
                      const char *payload_json, hd_err_t *err);

/* Queues the failure alerts of comm_id on a connection inside the
 * transaction that fails the message: one 'alert' job per target of the
 * comma-separated list ("webhook,email"; "" or NULL: none), payload
 * {target, category, reason}, once per message and target. */
int jobs_alert_on(pg_conn_t *c, const char *comm_id, const char *targets, const char *category,
                  const char *reason, hd_err_t *err);

/* The job is done: deleted while j->owner still holds it, with an event
 * (event_type, message) on its message when event_type is not NULL. */
int jobs_finish(pg_pool_t *db, const comm_job_t *j, const char *event_type, const char *message,
                hd_err_t *err);

/* The job goes again after delay_s (attempt + 1, lease released), with an
 * event like jobs_finish's. */
int jobs_again(pg_pool_t *db, const comm_job_t *j, double delay_s, const char *event_type,
               const char *message, hd_err_t *err);

/* The job waits wait_s more, as it is: no attempt counted, no event, its
 * message's status unchanged (a provider bucket is full). 0, or -1. */
int jobs_wait(pg_pool_t *db, const comm_job_t *j, double wait_s, hd_err_t *err);

#endif
