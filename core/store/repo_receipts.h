/*
 * repo_receipts.h - what providers report after a send (delivery receipts
 * from the Twilio and WhatsApp webhooks), recorded once each and applied so
 * that status only moves forward (DESIGN.md §4).
 *
 * A receipt finds its message by the provider's id in the attempt rows (the
 * id of every attempt is kept, so a receipt for an earlier channel still
 * finds it), or else by our own id carried in the callback (a receipt can
 * beat the record of its send). One that finds nothing is kept as an orphan
 * event and answered 200, so the provider stops retrying.
 */
#ifndef HERALD_STORE_REPO_RECEIPTS_H
#define HERALD_STORE_REPO_RECEIPTS_H

#include "base/err.h"
#include "store/pg.h"
#include "store/repo_comms.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    RECEIPT_OTHER = 0, /* queued, accepted, sending ...: an event, no status change */
    RECEIPT_SENT,
    RECEIPT_DELIVERED,
    RECEIPT_READ, /* status 'opened' (read without delivered is fine) */
    RECEIPT_FAILED
} receipt_kind_t;

typedef struct receipt {
    const char *provider;    /* "twilio", "whatsapp" */
    const char *channel;     /* the channel that provider carries for us */
    const char *provider_id; /* SM..., wamid... */
    const char *comm_hint;   /* our id from the callback, or NULL; checked here */
    receipt_kind_t kind;
    const char *raw_status; /* the provider's word, e.g. "undelivered" */
    const char *error_code, *error_text;
    const char *dedup_key; /* counted once per key */
    int64_t occurred_at;   /* the provider's time (Unix seconds); 0: now */
    const char *details_json;
} receipt_t;

/* The message a receipt is about, as it is now. */
typedef struct receipt_target {
    bool found;
    char comm_id[40];
    char status[16];
    char channel[16];  /* the channel now in use */
    int attempt;       /* the receipt's attempt number on its channel (1-based) */
    int channel_index; /* the receipt channel's place in the chain; -1: not in it */
    int chain_len;
    bool current;        /* the receipt is about the message's latest attempt */
    bool by_provider_id; /* found by its provider id (else by our id: not recorded yet) */
    bool send_pending;   /* a send job of the message exists (leased or due) */
    bool batch;          /* a digest's carrier */
    double sent_at;      /* Unix seconds, 0 when not sent yet */
    comm_job_t job;      /* comm_id, client_id, plan_id, message_type: for an alert */
} receipt_target_t;

int receipts_find(pg_pool_t *db, const receipt_t *r, receipt_target_t *t, hd_err_t *err);
void receipt_target_free(receipt_target_t *t);

/* What a failed receipt leads to (the policy's answer; RETRY and NEXT make
 * a job with payload {"resend": true}). */
typedef enum { ACT_NONE = 0, ACT_RETRY, ACT_NEXT, ACT_FAIL } receipt_action_t;

typedef enum {
    RECEIPT_APPLIED = 0,
    RECEIPT_DUPLICATE, /* this dedup_key was seen: nothing changed */
    RECEIPT_ORPHAN,    /* no message: kept as an orphan event */
    RECEIPT_BUSY,      /* a send job of the message is in flight: not applied yet */
    RECEIPT_PARKED     /* kept as a job, applied once its send is recorded */
} receipt_result_t;

/* In one transaction: the event row (once per dedup_key), the forward
 * status move, and for a failure the action (only while the message is
 * 'sent' on the receipt's channel: a receipt about a channel already left
 * behind is just an event). category/code go to last_error_*; delay_s is the
 * job's wait. *ended is set when the message became 'failed' here (its
 * alert jobs for alert_targets are queued in the same transaction); moved
 * gets the status the message moved to ("" when it did not move). */
int receipts_apply(pg_pool_t *db, const receipt_t *r, const receipt_target_t *t,
                   receipt_action_t act, double delay_s, const char *category,
                   const char *alert_targets, receipt_result_t *result, bool *ended, char moved[16],
                   hd_err_t *err);

/* ---- many at once ----
 *
 * For a webhook's batch: one statement for many receipts. */

/* receipts_find for each of rs[0..n) into ts[i] (one statement). */
int receipts_find_many(pg_pool_t *db, const receipt_t *const *rs, int n, receipt_target_t *ts,
                       hd_err_t *err);

/* receipts_apply with ACT_NONE for each of rs[0..n) (never a found failure:
 * those take receipts_apply), in one statement: the events (once per dedup
 * key) and the forward moves. ts[i] is rs[i]'s target; no two found ones
 * may be the same message, no two dedup keys the same. results[i]:
 * applied, duplicate or orphan; moved[i] the status moved to, or "". */
int receipts_apply_many(pg_pool_t *db, const receipt_t *const *rs,
                        const receipt_target_t *const *ts, int n, receipt_result_t *results,
                        char (*moved)[16], hd_err_t *err);

/* An open ('o') or a click ('c', link index, url) from the tracking
 * endpoints: an event row for every hit; the first open sets opened_at (and
 * status opened), the first click clicked_at (and status clicked). 0, 1 when
 * the message no longer exists (erased), -1 on error. moved gets the status
 * the message moved to ("" when none); channel and message_type its own. */
int tracking_record(pg_pool_t *db, const char *comm_id, char kind, int index, const char *url,
                    char moved[16], char channel[16], char message_type[64], hd_err_t *err);

/* The URL of link index of a tracked email (*url, caller frees; NULL when
 * there is none). 0, or -1 on error. */
int tracking_link(pg_pool_t *db, const char *comm_id, int index, char **url, hd_err_t *err);

#endif
