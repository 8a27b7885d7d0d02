/*
 * status.h - what an operator watches, sampled now: the queue (depth and the
 * age of the longest-waiting job), the pools, the policy runtime and this
 * process (obs/process). /metrics and the admin view of /api/crm/health
 * read it here, so the HTTP handlers only shape the answer.
 */
#ifndef HERALD_ENGINE_STATUS_H
#define HERALD_ENGINE_STATUS_H

#include "base/err.h"
#include "engine/app.h"
#include "obs/metrics.h"

#include <stdbool.h>

typedef struct status_queue {
    long due;            /* due now and free: waiting for a worker */
    long scheduled;      /* waiting for their time (business hours, retries) */
    long leased;         /* held by a worker */
    double oldest_due_s; /* how long the longest-waiting due job has waited */
} status_queue_t;

/* The queue right now, from the database. 0, or -1 and err. */
int status_queue(app_t *app, status_queue_t *q, hd_err_t *err);

/* Every gauge /metrics shows (obs/metrics.h), sampled now: database and
 * Redis probes, the queue, open rates, the scripts, the limiter, the process. */
void status_gauges(app_t *app, metrics_gauges_t *g);

#endif
