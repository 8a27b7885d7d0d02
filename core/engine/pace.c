/* pace.c - provider capacity before a batch goes out (see pace.h). */
#include "engine/pace.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/hash.h"
#include "engine/policy.h"
#include "limit/limit.h"
#include "obs/metrics.h"
#include "store/repo_jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a send waits when the policy cannot say which buckets it draws
 * from: never sent on a guess (the script error is in the log and health). */
#define PACE_POLICY_WAIT_S 5.0

/* Adaptive pacing, per process: a provider's rate_limit answer multiplies
 * the rate of the send's buckets by the bucket's slow_factor (down to
 * slow_floor of the policy's), and the rate recovers by doubling every
 * recover_s without another: all three are the policy's (limits.buckets,
 * settings.limits.slow_down). */
#define PACE_SLOTS 64

struct pace_state {
    pthread_mutex_t mu;
    int n;
    struct {
        char key[160];
        double factor, at; /* the factor set at `at` (monotonic seconds) */
        double recover_s;  /* the factor doubles back every recover_s */
        double rate;       /* sends per second the policy last declared */
        int held_prio;     /* a send of this priority waits for the bucket: */
        double held_until; /* until then, lower priorities do not ask (monotonic s) */
    } s[PACE_SLOTS];
};

pace_state_t *pace_new(void)
{
    pace_state_t *A = xcalloc(1, sizeof(*A));
    pthread_mutex_init(&A->mu, NULL);
    return A;
}

void pace_free(pace_state_t *A)
{
    if (A == NULL)
        return;
    pthread_mutex_destroy(&A->mu);
    free(A);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The share of the bucket's rate to use now (the lock held). */
static double factor_locked(pace_state_t *A, const char *key, double now, int *slot)
{
    for (int i = 0; i < A->n; i++)
        if (strcmp(A->s[i].key, key) == 0) {
            *slot = i;
            double f = A->s[i].factor * pow(2.0, (now - A->s[i].at) / A->s[i].recover_s);
            return f < 1.0 ? f : 1.0;
        }
    *slot = -1;
    return 1.0;
}

/* The share of the bucket's rate to use now; notes the rate the policy
 * declares (sends per second, for the gauges) and how it recovers. */
static double factor_noting(pace_state_t *A, const policy_bucket_t *b)
{
    int slot;
    pthread_mutex_lock(&A->mu);
    double now = mono();
    double f = factor_locked(A, b->key, now, &slot);
    if (slot < 0 && A->n < PACE_SLOTS) {
        slot = A->n++;
        snprintf(A->s[slot].key, sizeof(A->s[slot].key), "%.159s", b->key);
        A->s[slot].factor = 1.0;
        A->s[slot].at = now;
    }
    if (slot >= 0) {
        A->s[slot].rate = b->rate / b->per;
        A->s[slot].recover_s = b->recover_s;
    }
    pthread_mutex_unlock(&A->mu);
    return f;
}

/* Priority across workers: a send a bucket refused holds the bucket for
 * its priority until a little after its retry-after, so a less urgent send
 * of another worker's batch does not take the slot it waits for. The hold
 * ends as soon as the held send goes (hold_note); the margin only bounds
 * how long a holder that never comes back (cancelled, stopped) can keep
 * the bucket from lower priorities. It must outlast the holder's way back
 * (its job due again, claimed, paced): at 0.5 s a slow build (the
 * sanitizer run) lost the slot to a high-urgency send between two critical
 * ones. */
#define PACE_HOLD_MARGIN_S 2.0

static int slot_of(const pace_state_t *A, const char *key)
{
    for (int i = 0; i < A->n; i++)
        if (strcmp(A->s[i].key, key) == 0)
            return i;
    return -1;
}

/* Seconds a send of prio must leave key to a more urgent one waiting; 0: none. */
static double held_for(pace_state_t *A, const char *key, int prio, double now)
{
    pthread_mutex_lock(&A->mu);
    int i = slot_of(A, key);
    double w = i >= 0 && A->s[i].held_prio > prio && A->s[i].held_until > now
                   ? A->s[i].held_until - now
                   : 0;
    pthread_mutex_unlock(&A->mu);
    return w;
}

/* A send of prio on key was refused for wait_s (> 0) or went (0). */
static void hold_note(pace_state_t *A, const char *key, int prio, double wait_s, double now)
{
    pthread_mutex_lock(&A->mu);
    int i = slot_of(A, key);
    if (i >= 0) {
        bool live = A->s[i].held_until > now;
        if (wait_s > 0 && (!live || prio >= A->s[i].held_prio)) {
            A->s[i].held_prio = prio;
            A->s[i].held_until = now + wait_s + PACE_HOLD_MARGIN_S;
        } else if (wait_s == 0 && live && prio >= A->s[i].held_prio) {
            A->s[i].held_until = 0; /* the one waiting went */
        }
    }
    pthread_mutex_unlock(&A->mu);
}

int pace_rates(app_t *app, metrics_bucket_t *out, int max)
{
    pace_state_t *A = app->pacing;
    pthread_mutex_lock(&A->mu);
    double now = mono();
    int n = 0;
    for (int i = 0; i < A->n && n < max; i++) {
        int slot;
        double f = factor_locked(A, A->s[i].key, now, &slot);
        snprintf(out[n].key, sizeof(out[n].key), "%s", A->s[i].key);
        out[n].configured = A->s[i].rate;
        out[n++].current = A->s[i].rate * f;
    }
    pthread_mutex_unlock(&A->mu);
    return n;
}

/* The sender a channel's bucket is named by (limits.lua). */
static const char *sender_of(const app_t *app, tr_channel_t ch)
{
    const char *s = ch == TR_SMS        ? app->cfg->twilio_from
                    : ch == TR_WHATSAPP ? app->cfg->wa_phone_number_id
                                        : "relay";
    return s && *s ? s : "default";
}

static void put_back(app_t *app, comm_job_t *j, tr_message_t **m, double wait_s)
{
    hd_err_t err;
    if (jobs_wait(app->db, j, wait_s, &err) != 0)
        log_warn("cannot put a paced send back; its lease brings it back", "comm_id", j->comm_id,
                 "reason", err.msg);
    tr_message_free(*m);
    *m = NULL;
}

/* Checks nk keys in batches of LIM_MAX_BATCH; a refusal (or no answer)
 * raises the owner's wait: capped[] for a cap key, wait[] for a bucket. */
static void check(app_t *app, const char **kp, const lim_rule_t *rules, const int *owner,
                  const bool *is_cap, int nk, double *wait, double *capped)
{
    for (int at = 0; at < nk; at += LIM_MAX_BATCH) {
        int len = nk - at < LIM_MAX_BATCH ? nk - at : LIM_MAX_BATCH;
        lim_result_t res[LIM_MAX_BATCH];
        hd_err_t err;
        if (lim_check_many(app->limiter, len, kp + at, rules + at, res, &err) != 0) {
            log_error("provider buckets cannot be checked; the sends wait", "reason", err.msg);
            for (int k = at; k < at + len; k++)
                wait[owner[k]] = PACE_POLICY_WAIT_S;
            continue;
        }
        for (int k = 0; k < len; k++)
            if (!res[k].allowed) {
                double w = (double)res[k].retry_after_ms / 1000.0;
                double *into = is_cap[at + k] ? capped : wait;
                if (w > into[owner[at + k]])
                    into[owner[at + k]] = w;
                metrics_rate_limited(app->metrics, is_cap[at + k] ? "recipient_cap" : "provider",
                                     lim_shared(app->limiter));
            }
    }
}

void pace_batch(app_t *app, comm_job_t *jobs, tr_message_t **msgs, int n)
{
    if (app->limiter == NULL)
        return;
    /* every bucket of every send, in the batch's order (its claim order:
     * priority first), each key counted once per send */
    int cap = n * (POLICY_MAX_BUCKETS + 1), nk = 0;
    char(*keys)[180] = xcalloc((size_t)cap + 1, sizeof(*keys));
    const char **kp = xcalloc((size_t)cap + 1, sizeof(char *));
    lim_rule_t *rules = xcalloc((size_t)cap + 1, sizeof(lim_rule_t));
    int *owner = xcalloc((size_t)cap + 1, sizeof(int));
    bool *is_cap = xcalloc((size_t)cap + 1, sizeof(bool));
    bool *fold = xcalloc((size_t)n + 1, sizeof(bool)); /* over the cap: into the digest */
    double *wait = xcalloc((size_t)n + 1, sizeof(double));
    double now = mono();
    for (int i = 0; i < n; i++) {
        if (msgs[i] == NULL || strcmp(jobs[i].kind, "send") != 0)
            continue;
        policy_bucket_t b[POLICY_MAX_BUCKETS];
        int nb = 0;
        hd_err_t err;
        if (policy_buckets(app->policy, msgs[i]->channel, sender_of(app, msgs[i]->channel),
                           jobs[i].message_type, jobs[i].urgency, b, &nb, &err) != 0) {
            log_error("limits.buckets failed; the send waits for a policy that can answer",
                      "comm_id", jobs[i].comm_id, "error", err.msg);
            put_back(app, &jobs[i], &msgs[i], PACE_POLICY_WAIT_S);
            continue;
        }
        /* a more urgent send waits for one of these buckets: this one waits
         * as long, without asking (its turn comes after) */
        for (int k = 0; k < nb; k++) {
            double h = held_for(app->pacing, b[k].key, jobs[i].priority, now);
            if (h > wait[i])
                wait[i] = h;
        }
        if (wait[i] > 0)
            continue;
        /* the client's cap on the channel (limits.cap), keyed by a hash of
         * the client id: any id fits, and none is written to Redis */
        policy_cap_t pc = {0};
        if (jobs[i].client_id && policy_cap(app->policy, msgs[i]->channel, jobs[i].message_type,
                                            jobs[i].urgency, &pc, &err) != 0) {
            log_error("limits.cap failed; the send waits for a policy that can answer", "comm_id",
                      jobs[i].comm_id, "error", err.msg);
            put_back(app, &jobs[i], &msgs[i], PACE_POLICY_WAIT_S);
            continue;
        }
        /* a digest is never folded again: over the cap, it waits for its slot */
        fold[i] = pc.fold && !jobs[i].batch;
        if (pc.count > 0) {
            char h[65];
            hash_sha256_hex(jobs[i].client_id, strlen(jobs[i].client_id), h);
            snprintf(keys[nk], sizeof(keys[nk]), "cap:%s:%.32s", tr_channel_name(msgs[i]->channel),
                     h);
            kp[nk] = keys[nk];
            rules[nk] = (lim_rule_t){.rate = pc.count, .per_s = pc.per_s, .burst = pc.count};
            is_cap[nk] = true;
            owner[nk++] = i;
        }
        for (int k = 0; k < nb; k++) {
            snprintf(keys[nk], sizeof(keys[nk]), "bucket:%.159s", b[k].key);
            kp[nk] = keys[nk];
            rules[nk] = (lim_rule_t){.rate = b[k].rate * factor_noting(app->pacing, &b[k]),
                                     .per_s = b[k].per,
                                     .burst = b[k].burst};
            owner[nk++] = i;
        }
    }
    double *capped = xcalloc((size_t)n + 1, sizeof(double)); /* > 0: over the client's cap */
    /* first the buckets, taken, and the caps, only looked at; then the caps
     * of the sends every bucket let through, taken: a send a bucket holds
     * back uses none of its client's cap */
    for (int k = 0; k < nk; k++)
        rules[k].peek = is_cap[k];
    check(app, kp, rules, owner, is_cap, nk, wait, capped);
    for (int k = 0; k < nk; k++)
        if (!is_cap[k])
            hold_note(app->pacing, keys[k] + strlen("bucket:"), jobs[owner[k]].priority,
                      wait[owner[k]], now);
    int nc = 0;
    for (int k = 0; k < nk; k++)
        if (is_cap[k] && wait[owner[k]] == 0 && capped[owner[k]] == 0) {
            kp[nc] = kp[k];
            rules[nc] = rules[k];
            rules[nc].peek = false;
            owner[nc] = owner[k];
            is_cap[nc++] = true;
        }
    check(app, kp, rules, owner, is_cap, nc, wait, capped);
    for (int i = 0; i < n; i++) {
        if (capped[i] > 0 && msgs[i]) {
            /* over the client's cap: the message waits for its slot, and says so */
            char why[200];
            snprintf(why, sizeof(why),
                     "%s: the client's cap (limits.cap) is reached; the message waits %.0f s for "
                     "its turn",
                     tr_channel_name(msgs[i]->channel), capped[i]);
            hd_err_t err;
            int64_t slot = (int64_t)time(NULL) + (int64_t)ceil(capped[i]);
            /* over = "digest": into the client's next digest (or one at the
             * slot); when none can take it, it waits like the others */
            int rc = fold[i] ? comms_fold_digest(app->db, &jobs[i], slot, &err) : 2;
            if (rc < 0)
                log_warn("cannot fold a capped send into the digest; it waits for its slot",
                         "comm_id", jobs[i].comm_id, "reason", err.msg);
            if (rc == 2 || rc < 0)
                rc = comms_defer(app->db, &jobs[i], slot, why, &err);
            if (rc < 0)
                log_warn("cannot defer a capped send; its lease brings it back", "comm_id",
                         jobs[i].comm_id, "reason", err.msg);
            tr_message_free(msgs[i]);
            msgs[i] = NULL;
        } else if (wait[i] > 0 && msgs[i]) {
            put_back(app, &jobs[i], &msgs[i], wait[i]);
        }
    }
    free(capped);
    free(fold);
    free(is_cap);
    free(wait);
    free(owner);
    free(rules);
    free(kp);
    free(keys);
}

void pace_slow_down(app_t *app, tr_channel_t ch, const comm_job_t *j)
{
    policy_bucket_t b[POLICY_MAX_BUCKETS];
    int nb = 0;
    hd_err_t err;
    if (policy_buckets(app->policy, ch, sender_of(app, ch), j->message_type, j->urgency, b, &nb,
                       &err) != 0)
        return; /* logged when the batch is paced */
    pace_state_t *A = app->pacing;
    double now = mono();
    pthread_mutex_lock(&A->mu);
    for (int k = 0; k < nb; k++) {
        int slot;
        double f = factor_locked(A, b[k].key, now, &slot) * b[k].slow_factor;
        /* a burst's refusals are one signal: halve at most once a second */
        if (slot >= 0 && now - A->s[slot].at < 1.0)
            continue;
        if (slot < 0 && A->n < PACE_SLOTS) {
            slot = A->n++;
            snprintf(A->s[slot].key, sizeof(A->s[slot].key), "%.159s", b[k].key);
        }
        if (slot < 0)
            continue; /* more buckets than slots: the provider's retry-after still holds */
        A->s[slot].factor = f > b[k].slow_floor ? f : b[k].slow_floor;
        A->s[slot].at = now;
        A->s[slot].recover_s = b[k].recover_s;
        char share[32];
        snprintf(share, sizeof(share), "%.4g", A->s[slot].factor);
        log_warn("the provider asked us to slow down; the bucket's rate is lowered", "bucket",
                 b[k].key, "share", share);
        metrics_rate_limited(app->metrics, "provider_backoff", false);
    }
    pthread_mutex_unlock(&A->mu);
}
