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

/* What comes after a failed attempt, as the policy says. */
typedef struct outcome_next {
    comm_outcome_t outcome; /* RETRY, NEXT, FAILED; HELD: the policy could not answer */
    char category[16];      /* classify's; "" when held */
    bool may_have_been_sent;
    double delay_s;     /* RETRY: the policy's; HELD: the lease (then it is asked again) */
    char error[600];    /* HELD: the script error, with file and line */
    char suppress[16];  /* classify's suppress: the address's suppression reason, or "" */
    bool window_closed; /* classify's window_closed: the provider refused free-form text
                           as outside its customer-service window (Meta 131047) */
} outcome_next_t;

/* classify then retry.policy for a failed attempt (attempt_no: 1 for the
 * first on this channel). NEXT past the end of the chain is FAILED. */
void outcome_after_failure(app_t *app, tr_channel_t channel, int attempt_no, int channel_index,
                           int chain_len, const tr_result_t *res, outcome_next_t *out);

/* One outcome, ready to be written. */
typedef struct outcome_rec {
    comm_record_t r;
    double no_receipt_s; /* > 0: arm the no-receipt timer once recorded */
    char code[48], category[16];
    char *details; /* owned: free() after outcome_write */
    const char *reason;
    char held[600]; /* OUTCOME_HELD: why */
    bool alert;     /* an alert job's delivery, not a message's attempt */
    const tr_result_t *res;
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
