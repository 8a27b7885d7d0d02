/*
 * repo_comms.h - communications, their send jobs and delivery logs
 * (repo_comms.c: the messages; repo_claim.c: claims and leases;
 * repo_queue.c: what becomes of a claimed job).
 *
 * A communication and its first job are written in one statement (one
 * commit); the engine then wakes its workers (engine_kick), and other
 * processes through one coalesced NOTIFY. The job table is the durable queue:
 * workers claim due jobs in batches (FOR UPDATE SKIP LOCKED) under a lease,
 * so the jobs of a process that died are claimed again when the lease ends.
 * Status only moves forward (DESIGN.md §4): every status update names the
 * states it may come from. A message that is 'sent' has no job, except one a
 * failed receipt made (payload {"resend": true}): it goes out again on the
 * channel the policy names, and stays 'sent' (or ends 'failed').
 */
#ifndef HERALD_STORE_REPO_COMMS_H
#define HERALD_STORE_REPO_COMMS_H

#include "base/err.h"
#include "crypto/field.h"
#include "store/pg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define COMMS_NOTIFY_CHANNEL "herald_jobs"

typedef struct comm_new {
    const char *id; /* chosen by the caller (the answer quotes it) */
    const char *plan_id, *client_id, *message_type, *urgency;
    const char *context_json;  /* a JSON object; stored encrypted (field "context") */
    const char *strategy_json; /* the decision, as stored */
    const char *recipient_enc; /* encrypted override, or NULL */
    const char *primary_channel;
    const char *fallbacks_csv; /* "sms,whatsapp" or "" */
    int64_t send_at;
    int priority;
    bool batch;
    const char *requested_by;
    const char *idempotency_key; /* with idem_principal: the key's record */
    const char *idem_principal;  /* gets the answer below in the same transaction */
    const char *idem_response;   /* the 202 body */
    const char *payload_json;    /* what the message carries (attachments), or NULL */
    /* The decision assumed the client has no stored preferences (nothing
     * was read): store the message only while the database agrees, in the
     * same statement; else nothing is stored and COMMS_PREFS_EXIST says to
     * decide again from the row (engine/accept.c). */
    bool unless_prefs;
} comm_new_t;

/* comms_create's answer for a message with unless_prefs whose client has a
 * preferences row: nothing was stored. */
#define COMMS_PREFS_EXIST 1

/* Whether s has the shape of a communication id (a UUID). */
bool comms_valid_id(const char *s);

/* Inserts the communication (with c->id) and its send job, and completes
 * the idempotency record when one is named, in one transaction. The context
 * is encrypted with kr's current key (one AES-GCM, no extra round trip). */
int comms_create(pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *c, hd_err_t *err);

/* comms_create for c[0..n) in one statement and one commit: 0 with each
 * one's answer in results[i] (0 stored, or COMMS_PREFS_EXIST), or -1 with
 * err and none stored (the caller may try them one by one). */
int comms_create_many(pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *const *c, int n,
                      int *results, hd_err_t *err);

/* The context of a stored message as JSON text (caller frees *out): the
 * decrypted context_enc when it is set, else the clear context of a row
 * written before migration 0008 (not yet rekeyed), else "{}". 0, or -1 with
 * *out NULL and err when context_enc does not decrypt. */
int comms_context_open(const fe_keyring_t *kr, const char *clear, const char *enc, char **out,
                       hd_err_t *err);

/* NOTIFY COMMS_NOTIFY_CHANNEL on its own: wakes the idle workers of every
 * process (used when this process has no engine to do it). */
int comms_notify(pg_pool_t *db, hd_err_t *err);

/* One delivery-log row of a message: an attempt or an event. Strings are
 * owned, NULL for SQL NULL; times RFC 3339 UTC with milliseconds. */
typedef struct comm_log_row {
    bool attempt; /* an attempt (attempt_no set); else an event (event_type) */
    int attempt_no;
    char *channel, *event_type, *status, *provider, *provider_id, *code, *message, *category;
    bool may_have_been_sent;
    bool has_latency;
    int latency_ms;
    char *at;
} comm_log_row_t;

/* One communication as stored, for reading. Strings owned, NULL for SQL
 * NULL; a list's rows fill only id .. channel and created_at. */
typedef struct comm_row {
    char *id, *plan_id, *client_id, *message_type, *urgency, *status, *channel;
    char *strategy_json, *context_json;
    int attempt_count;
    bool may_have_been_sent;
    char *provider_message_id, *last_error_category, *last_error_code;
    char *created_at, *queued_at, *sending_at, *sent_at, *delivered_at, *opened_at, *clicked_at,
        *failed_at, *cancelled_at, *suppressed_at;
    char *next_attempt_at; /* while 'scheduled': when its send job comes due */
    comm_log_row_t *logs;  /* oldest first */
    int nlogs;
} comm_row_t;

void comm_row_free(comm_row_t *r);

/* One communication with its attempts and events: 0 with *out, 1 when
 * there is none, -1 with err. A context that does not decrypt (its key was
 * removed) is logged and left NULL; the rest of the message is shown. */
int comms_get(pg_pool_t *db, const fe_keyring_t *kr, const char *id, comm_row_t *out,
              hd_err_t *err);

typedef struct comms_filter {
    const char *plan_id, *client_id, *status, *channel, *message_type;
    const char *from, *to; /* RFC 3339 bounds on created_at */
    const char *cursor;    /* opaque, from a previous page */
    int limit;
} comms_filter_t;

typedef struct comm_page {
    comm_row_t *items; /* newest first */
    int n;
    char *next_cursor; /* NULL on the last page */
} comm_page_t;

void comm_page_free(comm_page_t *p);

/* A page of communications: 0, or -1 with err (a bad cursor's err starts
 * with "cursor:"). */
int comms_list(pg_pool_t *db, const comms_filter_t *f, comm_page_t *out, hd_err_t *err);

/* The current status of a message (for ?wait=). */
int comms_status(pg_pool_t *db, const char *id, char status[16], hd_err_t *err);

/* Cancels a message no provider holds: waiting for its first attempt or a
 * retry ('scheduled', 'queued'), or 'sent' but failed by a receipt and
 * waiting for its resend. 0 done, 1 not found, 2 too late (its status), -1
 * error. status_out gets the current status. */
int comms_cancel(pg_pool_t *db, const char *id, char status_out[16], hd_err_t *err);

/* ---- the queue ---- */

typedef struct comm_job {
    int64_t job_id;
    char comm_id[40];
    int attempt;         /* attempts made on the current channel */
    int channel_index;   /* 0: primary; k: fallback k */
    bool recovered;      /* its previous lease expired: that process died holding it */
    char owner[96];      /* the lease holder that claimed it (this worker) */
    bool batch;          /* low urgency: this job carries the client's digest */
    int priority;        /* the job's queue priority (settings.priorities) */
    double claimed_at;   /* CLOCK_MONOTONIC seconds of the claim (0: unknown) */
    char *payload_json;  /* {"attachments": [...]} given at acceptance */
    bool resend;         /* made by a failed receipt: the message is 'sent' and goes again */
    char kind[16];       /* "send"; "no_receipt" (a delivery-receipt timer), "receipt" (a
                            parked receipt), "alert" (a failure alert): repo_jobs.h */
    char *tracked_links; /* set by the worker: JSON array of a tracked email's URLs */
    /* the communication */
    char status[16];
    char *client_id, *plan_id, *message_type, *urgency;
    char *context_json, *recipient_enc; /* context decrypted; recipient still sealed */
    bool context_unreadable;            /* its context_enc did not decrypt: context_json is NULL */
    char *channels_csv;                 /* "email,sms" - the whole chain */
    /* the client's preferences as the claim saw them: whether they have a
     * row, and its version (prefs_row_t.version), so the worker trusts a
     * cached copy of it only at that version */
    bool has_prefs;
    int64_t prefs_version;
    char *experiment, *variant; /* the A/B arm the decision recorded, or NULL */
    /* set by the worker for a batch (dispatch_prefetch): the recipient as
     * recipient_load gives it, with its suppression facts; NULL: not read */
    cJSON *who;
} comm_job_t;

void comm_job_free(comm_job_t *j);

/* Claims up to max due send jobs for owner, leased for lease_s seconds, and
 * loads their communications (contexts decrypted with kr; one that does not
 * decrypt is logged and flagged context_unreadable) and the version of
 * their client's preferences (in the same statement). Returns how many
 * (jobs filled), -1 on error. */
int comms_claim(pg_pool_t *db, const fe_keyring_t *kr, const char *owner, int max, int lease_s,
                comm_job_t *jobs, hd_err_t *err);

typedef struct comm_attempt {
    const char *channel, *provider, *provider_id, *raw_code, *message, *category;
    bool ok, may_have_been_sent;
    int latency_ms;
    const char *details_json;
    const char *held_reason; /* OUTCOME_HELD: the policy_error event's text */
} comm_attempt_t;

/* The outcome of one attempt, in one transaction: the delivery log row and
 * then either sent (job done), retry (job due again after delay_s on the
 * same channel; the message reads 'scheduled' meanwhile), next channel (job
 * moves along the chain; 'queued'), failed (with the alert jobs of
 * alert_targets, repo_jobs.h), or held: the policy could not say what comes
 * next, so the job waits delay_s like a retry and a 'policy_error' event
 * says why (held_reason). Returns 1 when the lease was lost (only the
 * attempt row is written). */
typedef enum {
    OUTCOME_SENT,
    OUTCOME_RETRY,
    OUTCOME_NEXT,
    OUTCOME_FAILED,
    OUTCOME_HELD
} comm_outcome_t;
int comms_record(pg_pool_t *db, const comm_job_t *j, const comm_attempt_t *a,
                 comm_outcome_t outcome, double delay_s, const char *alert_targets, hd_err_t *err);

/* Many outcomes at once (one worker's finished sends). */
typedef struct comm_record {
    const comm_job_t *job;
    comm_attempt_t a;
    comm_outcome_t outcome;
    double delay_s;
    int result; /* out: 0 recorded; 1 lease lost (only the attempt row); -1 not written */
} comm_record_t;

/* Records them in one transaction: the plain sends (sent, not a digest) in a
 * single statement, the rest as comms_record would. A batch of plain sends
 * is one round trip and one commit. 0, or -1 with nothing written. Each
 * job appears at most once in recs (as in comms_mark_sending_many). */
int comms_record_many(pg_pool_t *db, comm_record_t *recs, int n, const char *alert_targets,
                      hd_err_t *err);

/* Marks messages as being handed to a provider, in one statement: status
 * sending, may_have_been_sent (a crash from here on is reported as "may have
 * been sent"). marked[i] says which may go out: not one cancelled meanwhile,
 * nor one whose lease is no longer this worker's. channels[i] NULL leaves
 * jobs[i] alone. */
int comms_mark_sending_many(pg_pool_t *db, const comm_job_t *jobs, const char *const *channels,
                            int n, bool *marked, hd_err_t *err);

/* How a message's chain stands after a skip. */
typedef enum {
    SKIP_NEXT,       /* the job moved to the next channel */
    SKIP_FAILED,     /* the last channel: the message failed (alert jobs queued) */
    SKIP_SUPPRESSED, /* the last channel, and every channel was refused */
    SKIP_SETTLED,    /* the last channel, but the message had already ended */
} comm_skip_end_t;

/* A channel skipped without an attempt, refused by the policy (refused:
 * strategy.refusal, the client's consent) or unusable (no address, a render
 * failure, no channel left): a 'skipped' event row (its status 'refused' or
 * 'skipped') and the job moves along the chain. On the last channel the
 * message ends: 'suppressed' when no provider was ever handed it and every
 * skip of its chain was a refusal (the client does not want it; no alert),
 * else 'failed' with the alert jobs of alert_targets. Status only moves
 * forward: a message that had already ended keeps its status. Returns 0
 * with *end, 1 when the lease was lost (nothing written), -1 with err. */
int comms_skip(pg_pool_t *db, const comm_job_t *j, const char *channel, const char *reason,
               bool refused, bool last, const char *alert_targets, comm_skip_end_t *end,
               hd_err_t *err);

/* A job with nothing left to do (its message was cancelled, or is already
 * with the provider, say by an early receipt): the job goes, the message
 * keeps its status, an event says why. */
int comms_drop(pg_pool_t *db, const comm_job_t *j, const char *reason, hd_err_t *err);

/* An event row for the message (e.g. "recovered" after a crash). */
int comms_event(pg_pool_t *db, const comm_job_t *j, const char *type, const char *message,
                hd_err_t *err);

/* comms_record on a connection the caller holds inside its own transaction. */
int comms_record_on(pg_conn_t *c, const comm_job_t *j, const comm_attempt_t *a,
                    comm_outcome_t outcome, double delay_s, const char *alert_targets,
                    hd_err_t *err);

/* A send over its client's cap, folded into the client's digest (limits.cap
 * answered over = "digest"): it joins the client's next digest not yet
 * claimed, or, when there is none, its own job becomes a digest due at slot
 * (Unix seconds, when the cap lets the next message through). The message
 * reads 'scheduled' with a `deferred` event naming the digest's time.
 * 0, 1 when this process no longer holds the job, 2 when no digest can
 * take it (nothing written: defer it instead), -1 and err. */
int comms_fold_digest(pg_pool_t *db, const comm_job_t *j, int64_t slot, hd_err_t *err);

/* Puts the job back until `until` (Unix seconds) with an event saying why:
 * the policy says not now (quiet hours began since acceptance); the message
 * reads 'scheduled' meanwhile. */
int comms_defer(pg_pool_t *db, const comm_job_t *j, int64_t until, const char *reason,
                hd_err_t *err);

/* For a digest job: locks the client's due low-urgency messages (this one
 * included), attaches them to this job's message (digest_id) and returns
 * them as [{id, message_type, context}] in arrival order (contexts
 * decrypted with kr); NULL on error (nothing attached), a context that does
 * not decrypt included. */
cJSON *comms_gather_digest(pg_pool_t *db, const fe_keyring_t *kr, const comm_job_t *j,
                           hd_err_t *err);

/* Renews the leases of owner's jobs job_ids[0..n) for lease_s more seconds
 * (the sends in flight). Only those: a job the owner still leases but no
 * longer holds (its `sending` mark failed, say) must come back when its
 * lease ends, not be renewed for as long as the worker is busy. */
int comms_extend(pg_pool_t *db, const char *owner, const long long *job_ids, int n, int lease_s,
                 hd_err_t *err);

/* Releases this owner's leases (graceful stop): unstarted work returns. */
int comms_release(pg_pool_t *db, const char *owner, hd_err_t *err);

/* Seconds until the next send job is due (capped at max_s), for sleeping. */
double comms_next_due(pg_pool_t *db, double max_s, hd_err_t *err);

/* The queue right now: jobs due and free, waiting for their time, leased;
 * *oldest_due_s (may be NULL): how long the longest-waiting due and free job
 * has been due, in seconds (0 when none is). */
int comms_queue_depth(pg_pool_t *db, long *due, long *scheduled, long *leased, double *oldest_due_s,
                      hd_err_t *err);

#endif
