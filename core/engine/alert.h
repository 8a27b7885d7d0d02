/*
 * alert.h - what happens when a message failed on every channel: a critical
 * log line at once, and durable alert jobs (repo_jobs.h), queued in the
 * transaction that fails the message, one per configured target: a JSON
 * POST to engine.alert_url ("webhook") and an email to engine.alert_email
 * ("email"). A worker sends each through the transport loop like any
 * message; a failed delivery is tried again as retry.alert says, each try
 * an event on the failed message (alert_sent, alert_failed,
 * alert_abandoned). No thread waits on the operations endpoint, and an
 * endpoint that is down when the message fails still gets its alert.
 */
#ifndef HERALD_ENGINE_ALERT_H
#define HERALD_ENGINE_ALERT_H

#include "engine/app.h"
#include "store/repo_comms.h"
#include "transport/transport.h"

#include <stddef.h>

/* The configured targets, for the store: "webhook,email", one, or "". */
void alert_targets(const app_t *app, char *out, size_t n);

/* The message j failed (its alert jobs are committed): the critical log
 * line, and the workers woken for the jobs. */
void alert_raised(app_t *app, const comm_job_t *j, const char *category, const char *reason);

/* An alert job was claimed: 1 with *out ready for the transport, or 0 when
 * it was settled here (its target is no longer configured). */
int alert_prepare(app_t *app, comm_job_t *j, tr_message_t **out);

/* The transport's answer for an alert job: done, or again after the
 * policy's delay, or given up. */
void alert_outcome(app_t *app, comm_job_t *j, const tr_result_t *res);

#endif
