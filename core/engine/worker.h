/*
 * worker.h - the engine: worker threads that take due send jobs from the
 * durable queue, render each message for the channel in hand, hand it to the
 * transport, and act on the outcome as the policy says (sent; retry later;
 * next channel of the fallback chain; failed).
 */
#ifndef HERALD_ENGINE_WORKER_H
#define HERALD_ENGINE_WORKER_H

#include "base/err.h"
#include "engine/app.h"

typedef struct engine engine_t;

/* Starts nworkers threads (each with its own Lua state) and the LISTEN
 * thread that wakes them when a job is queued. */
engine_t *engine_start(app_t *app, int nworkers, hd_err_t *err);

/* Graceful stop: no new claims; sends in flight finish (their outcomes are
 * recorded); leases on unstarted jobs are released for other processes. */
void engine_stop(engine_t *e);

#endif
