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

/* A parked receipt's job came due (a worker holds j): applies it, or parks
 * it again (backing off) while its send is still unrecorded. */
void receipt_run_parked(app_t *app, comm_job_t *j);

#endif
