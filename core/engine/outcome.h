/*
 * outcome.h - turning a transport result into the record of an attempt:
 * classify and retry.policy decide what comes next (engine/policy.h), the
 * outcomes of a worker's finished sends are written together, then counted,
 * alerted and, for a sent message, given its no-receipt timer.
 */
#ifndef HERALD_ENGINE_OUTCOME_H
#define HERALD_ENGINE_OUTCOME_H

#include "engine/app.h"
#include "store/repo_comms.h"
#include "transport/transport.h"

#define OUTCOME_MAX 16 /* outcomes written at once (a worker's slots) */

/* One outcome, ready to be written. */
typedef struct outcome_rec {
    comm_record_t r;
    double no_receipt_s; /* > 0: arm the no-receipt timer once recorded */
    char code[48], category[16];
    char *details; /* owned: free() after outcome_write */
    const char *reason;
} outcome_rec_t;

/* Splits "email,sms" into channels; returns the count. */
int engine_split_channels(const char *csv, tr_channel_t out[TR_NCHANNELS]);

/* Classifies res and asks the policy what comes next (this thread's Lua
 * state); nothing is written yet. res's text fields are made valid UTF-8. */
void outcome_prepare(app_t *app, comm_job_t *j, tr_message_t *msg, tr_result_t *res,
                     outcome_rec_t *rc);

/* Writes n (<= OUTCOME_MAX) outcomes in one transaction, or one by one with
 * retries if that fails (the sends happened: losing a record would send
 * again after the lease); then the metrics, alerts and timers. */
void outcome_write(app_t *app, outcome_rec_t *recs, int n);

#endif
