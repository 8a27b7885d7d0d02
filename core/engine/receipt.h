/*
 * receipt.h - applying what a provider reports after a send (the Twilio
 * and WhatsApp webhooks parse and check it; this acts on it): find the
 * message, ask classify and retry.policy about a failure, apply it (one
 * transaction, status forward only), count it, and raise the failure alert
 * when it ends the message.
 *
 * Never waits: a failure receipt for a send whose outcome is not recorded
 * yet is parked as a job (repo_jobs.h) that a worker applies once the send
 * is recorded, and the webhook is answered at once.
 */
#ifndef HERALD_ENGINE_RECEIPT_H
#define HERALD_ENGINE_RECEIPT_H

#include "engine/app.h"
#include "store/repo_receipts.h"

/* Acts on one receipt: 0 with *res (applied, duplicate, orphan or parked),
 * -1 with err when the database cannot take it (answer 503: the provider
 * sends it again). */
int receipt_handle(app_t *app, const receipt_t *r, receipt_result_t *res, hd_err_t *err);

/* ---- off the HTTP threads ---- */

typedef struct receipt_batch receipt_batch_t;
typedef struct receipt_queue receipt_queue_t;

/* The engine's receipt threads (nthreads): they apply submitted batches in
 * order, each receipt with receipt_handle. Stopping drains what is queued. */
receipt_queue_t *receipt_queue_start(app_t *app, int nthreads, hd_err_t *err);
void receipt_queue_stop(receipt_queue_t *q);

/* Hands n receipts (copied) to the receipt threads and returns at once; the
 * webhook answers when receipt_batch_state says so. Without a queue (no
 * engine in this process) they are applied before it returns. */
receipt_batch_t *receipt_submit(app_t *app, const receipt_t *rs, int n);

/* -1 while being applied; 0 every receipt recorded (applied, duplicate,
 * orphan or parked); 1 the database could not take one (answer 503). */
int receipt_batch_state(receipt_batch_t *b);

/* The submitter lets go of b (it is freed once the queue has too). */
void receipt_batch_release(void *b);

/* A parked receipt's job came due (a worker holds j): applies it, or parks
 * it again (backing off) while its send is still unrecorded. */
void receipt_run_parked(app_t *app, comm_job_t *j);

#endif
