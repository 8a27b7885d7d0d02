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

#include <stdbool.h>

typedef struct engine engine_t;

/* Starts nworkers threads (each with its own Lua state) and the LISTEN
 * thread that wakes them when a job is queued. */
engine_t *engine_start(app_t *app, int nworkers, hd_err_t *err);

/* A message was queued: wakes this process's idle workers at once and has
 * the listener send one NOTIFY (bursts coalesce into one) for the workers of
 * other processes. False when e is NULL (no engine): the caller notifies. */
bool engine_kick(engine_t *e);

/* New work was queued (or made due): engine_kick, or, in a process with no
 * engine, a NOTIFY for the others. Never waits for more than one round trip. */
void engine_wake(app_t *app);

/* Since engine_start (all 0 for NULL): the claims the workers made and the
 * jobs they took; their writes of outcomes (each one statement or a few,
 * for up to a batch of sends) and the sends those recorded. */
void engine_counts(engine_t *e, long *claims, long *jobs, long *outcome_writes, long *outcomes);

/* The analytics refresher the engine runs (NULL for NULL, or when it did
 * not start). */
struct rollup *engine_rollup(engine_t *e);

/* True once engine_stop has begun (false for NULL). */
bool engine_stopping(const engine_t *e);

/* The receipt threads of e (engine/receipt.h), or NULL without an engine. */
struct receipt_queue *engine_receipts(engine_t *e);

/* Graceful stop: no new claims; sends in flight finish (their outcomes are
 * recorded); leases on unstarted jobs are released for other processes. */
void engine_stop(engine_t *e);

#endif
