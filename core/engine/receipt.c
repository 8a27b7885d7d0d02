/*
 * receipt.c - applying a provider's receipt (see receipt.h). Uses
 * store/repo_receipts to find and apply, engine/outcome for the policy's
 * answer to a failure, store/repo_jobs to park, and engine/alert.
 */
#include "engine/receipt.h"
#include "base/log.h"
#include "engine/alert.h"
#include "engine/inbound.h"
#include "engine/outcome.h"
#include "engine/recipient.h"
#include "engine/suppress.h"
#include "engine/worker.h"
#include "store/repo_jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A parked receipt is looked at again after 0.25 s, doubling to this; past
 * PARK_GIVE_UP tries (about two hours) it is applied as things stand. */
#define PARK_MAX_WAIT_S 60.0
#define PARK_GIVE_UP    130

static const char *const KIND_NAME[] = {"other", "sent", "delivered", "read", "failed"};

static cJSON *receipt_json(const receipt_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "provider", r->provider);
    cJSON_AddStringToObject(o, "channel", r->channel);
    cJSON_AddStringToObject(o, "provider_id", r->provider_id);
    if (r->comm_hint)
        cJSON_AddStringToObject(o, "comm_hint", r->comm_hint);
    cJSON_AddStringToObject(o, "kind", KIND_NAME[r->kind]);
    cJSON_AddStringToObject(o, "raw_status", r->raw_status);
    if (r->error_code)
        cJSON_AddStringToObject(o, "error_code", r->error_code);
    if (r->error_text)
        cJSON_AddStringToObject(o, "error_text", r->error_text);
    cJSON_AddStringToObject(o, "dedup_key", r->dedup_key);
    cJSON_AddNumberToObject(o, "occurred_at", (double)r->occurred_at);
    if (r->details_json)
        cJSON_AddStringToObject(o, "details", r->details_json);
    return o;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The receipt kept in a parked job's payload; strings borrowed from doc. */
static int receipt_of_json(const cJSON *doc, receipt_t *r)
{
    memset(r, 0, sizeof(*r));
    r->provider = jstr(doc, "provider");
    r->channel = jstr(doc, "channel");
    r->provider_id = jstr(doc, "provider_id");
    r->comm_hint = jstr(doc, "comm_hint");
    r->raw_status = jstr(doc, "raw_status");
    r->error_code = jstr(doc, "error_code");
    r->error_text = jstr(doc, "error_text");
    r->dedup_key = jstr(doc, "dedup_key");
    r->details_json = jstr(doc, "details");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(doc, "occurred_at");
    r->occurred_at = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
    const char *kind = jstr(doc, "kind");
    r->kind = RECEIPT_OTHER;
    for (int k = 0; kind && k < 5; k++)
        if (strcmp(kind, KIND_NAME[k]) == 0)
            r->kind = (receipt_kind_t)k;
    return r->provider && r->channel && r->provider_id && r->raw_status && r->dedup_key ? 0 : -1;
}

/* What to do about a failure of the message's latest attempt: the policy's
 * answer, as for a failed send. false: the policy could not answer. */
static bool failure_action(app_t *app, const receipt_t *r, const receipt_target_t *t,
                           receipt_action_t *act, double *delay, char category[16],
                           char suppress[32], bool *window_closed)
{
    tr_channel_t ch;
    *act = ACT_NONE;
    if (!(r->kind == RECEIPT_FAILED && t->current && !t->batch && strcmp(t->status, "sent") == 0 &&
          strcmp(t->channel, r->channel) == 0 && t->channel_index >= 0 &&
          tr_channel_parse(r->channel, &ch) == 0))
        return true;
    tr_result_t tr;
    memset(&tr, 0, sizeof(tr));
    snprintf(tr.kind, sizeof(tr.kind), "http");
    snprintf(tr.provider_code, sizeof(tr.provider_code), "%s", r->error_code ? r->error_code : "");
    snprintf(tr.provider_id, sizeof(tr.provider_id), "%s", r->provider_id);
    snprintf(tr.text, sizeof(tr.text), "%s", r->error_text ? r->error_text : r->raw_status);
    tr.request_sent = true;
    outcome_next_t next;
    outcome_after_failure(app, ch, t->attempt, t->channel_index, t->chain_len, &tr, &next);
    if (next.outcome == OUTCOME_HELD) {
        log_error("the policy cannot say what a failure receipt leads to; it is parked until it "
                  "can",
                  "comm_id", t->comm_id, "error", next.error);
        return false;
    }
    snprintf(category, 16, "%s", next.category);
    snprintf(suppress, 32, "%s", next.suppress);
    *window_closed = next.window_closed;
    *delay = next.delay_s;
    *act = next.outcome == OUTCOME_RETRY  ? ACT_RETRY
           : next.outcome == OUTCOME_NEXT ? ACT_NEXT
                                          : ACT_FAIL;
    return true;
}

/* The metrics of an applied receipt. */
static void count(app_t *app, const receipt_t *r, const receipt_target_t *t, receipt_action_t act,
                  const char *category, const char *moved)
{
    if (moved[0]) {
        metrics_comm(app->metrics, r->channel, moved, t->job.message_type);
        bool was_out = strcmp(t->status, "sending") == 0 || strcmp(t->status, "sent") == 0;
        if ((strcmp(moved, "delivered") == 0 || strcmp(moved, "opened") == 0) && was_out &&
            t->sent_at > 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            double at = r->occurred_at > 0 ? (double)r->occurred_at
                                           : (double)now.tv_sec + (double)now.tv_nsec / 1e9;
            /* a provider's whole-second time can fall just before our sent_at */
            metrics_delivery_time(app->metrics, at > t->sent_at ? at - t->sent_at : 0);
        }
    }
    if (act == ACT_RETRY)
        metrics_retry(app->metrics, category);
    else if (act == ACT_NEXT)
        metrics_fallback(app->metrics, category);
}

/* What a failure receipt says about its address: reason set, the policy
 * suppresses it (Meta 131050, Twilio 21610 reported after the send, a late
 * bounce); NULL, the provider's window is closed (Meta 131047). The address
 * is the one the message went to, from the client's preferences overlaid
 * with the message's own recipient, as at the attempt. Best effort, like a
 * bounce at send time (engine/suppress.h). */
static void recipient_facts(app_t *app, const receipt_target_t *t, const char *channel,
                            const char *reason)
{
    tr_channel_t ch;
    if (tr_channel_parse(channel, &ch) != 0)
        return;
    hd_err_t err;
    cJSON *who = recipient_load(app, t->job.client_id, NULL, t->job.recipient_enc, &err);
    if (who == NULL) {
        log_warn("cannot read the recipient a failure receipt suppresses", "comm_id", t->comm_id,
                 "reason", err.msg);
        return;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(who, ch == TR_EMAIL ? "email" : "phone");
    if (cJSON_IsString(a) && a->valuestring[0] && reason)
        suppress_address(app, ch, a->valuestring, reason, t->comm_id);
    else if (cJSON_IsString(a) && a->valuestring[0])
        inbound_window_closed_for(app, ch, a->valuestring, t->comm_id);
    cJSON_Delete(who);
}

/* One pass: applied, or *park when it must wait for its send's record (or
 * for a policy that can answer). force: apply as things stand. */
static int apply(app_t *app, const receipt_t *r, bool force, receipt_result_t *res, bool *park,
                 receipt_target_t *t, hd_err_t *err)
{
    *park = false;
    if (receipts_find(app->db, r, t, err) != 0)
        return -1;
    /* A failure of a send whose outcome is not recorded yet (found by our
     * id, not by its provider id, while a send job of the message is in
     * hand): the record usually lands within milliseconds. */
    if (!force && t->found && r->kind == RECEIPT_FAILED && !t->by_provider_id && t->send_pending) {
        *park = true;
        return 0;
    }
    receipt_action_t act;
    double delay = 0;
    char category[16] = "", suppress[32] = "";
    bool window_closed = false;
    if (!failure_action(app, r, t, &act, &delay, category, suppress, &window_closed)) {
        if (!force) {
            *park = true;
            return 0;
        }
        act = ACT_NONE;
    }
    /* before the retry the receipt makes: its attempt must see the closed window */
    if (window_closed)
        recipient_facts(app, t, r->channel, NULL);
    bool ended = false;
    char moved[16];
    char targets[32];
    alert_targets(app, targets, sizeof(targets));
    if (receipts_apply(app->db, r, t, act, delay, category[0] ? category : NULL, targets, res,
                       &ended, moved, err) != 0)
        return -1;
    if (*res == RECEIPT_BUSY && !force) {
        /* a send job of the message is in hand: this failure waits for it */
        *park = true;
        return 0;
    }
    if (*res == RECEIPT_APPLIED)
        count(app, r, t, act, category, moved);
    if (*res == RECEIPT_APPLIED && suppress[0])
        recipient_facts(app, t, r->channel, suppress);
    if (*res == RECEIPT_APPLIED && (act == ACT_RETRY || act == ACT_NEXT || ended))
        engine_wake(app);
    if (ended)
        alert_raised(app, &t->job, category, r->error_text ? r->error_text : r->raw_status);
    if (*res == RECEIPT_ORPHAN)
        log_warn("receipt for a message Herald does not know; kept as an orphan event", "provider",
                 r->provider, "provider_message_id", r->provider_id, "status", r->raw_status);
    return 0;
}

int receipt_handle(app_t *app, const receipt_t *r, receipt_result_t *res, hd_err_t *err)
{
    receipt_target_t t;
    bool park;
    int rc = apply(app, r, false, res, &park, &t, err);
    if (rc == 0 && park) {
        cJSON *doc = receipt_json(r);
        char *payload = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        rc = jobs_park_receipt(app->db, t.comm_id, r->dedup_key, payload, err);
        free(payload);
        if (rc == 0) {
            *res = RECEIPT_PARKED;
            engine_wake(app);
        }
    }
    receipt_target_free(&t);
    return rc;
}

void receipt_run_parked(app_t *app, comm_job_t *j)
{
    hd_err_t err;
    cJSON *payload = cJSON_Parse(j->payload_json ? j->payload_json : "");
    receipt_t r;
    if (receipt_of_json(payload, &r) != 0) {
        jobs_finish(app->db, j, "dropped", "a parked receipt that cannot be read", &err);
        cJSON_Delete(payload);
        return;
    }
    receipt_target_t t;
    receipt_result_t res;
    bool park = false;
    int rc = apply(app, &r, j->attempt >= PARK_GIVE_UP, &res, &park, &t, &err);
    receipt_target_free(&t);
    if (rc != 0)
        log_warn("cannot apply a parked receipt; its lease brings it back", "comm_id", j->comm_id,
                 "reason", err.msg);
    else if (park)
        jobs_again(app->db, j, fmin(0.25 * pow(2, j->attempt), PARK_MAX_WAIT_S), NULL, NULL, &err);
    else
        jobs_finish(app->db, j, NULL, NULL, &err);
    cJSON_Delete(payload);
}

/* ---- the receipt threads ---- */

struct receipt_batch {
    atomic_int refs;  /* the submitter and the queue */
    atomic_int state; /* -1 running, 0 recorded, 1 failed */
    int n;
    receipt_t *rs;
    char **owned; /* the copies behind rs's strings */
    int nowned;
    receipt_batch_t *next;
};

struct receipt_queue {
    app_t *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    receipt_batch_t *head, *tail; /* under mu */
    bool stopping;                /* under mu */
    pthread_t threads[4];
    int nthreads;
};

static const char *keep(receipt_batch_t *b, const char *s)
{
    if (s == NULL)
        return NULL;
    b->owned[b->nowned] = xstrdup(s);
    return b->owned[b->nowned++];
}

static void batch_unref(receipt_batch_t *b)
{
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    for (int i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->rs);
    free(b);
}

/* Receipts per statement: array_position in the batched statements is
 * linear in the batch, so a larger batch costs more per receipt. */
#define CHUNK 500
/* Receipts one thread takes from the queue at once (across batches). */
#define TAKE_MAX 4000

static int by_index(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* One pass over part of rs: at most one receipt per message (in order), so
 * that applying them together is applying them one after another. The found
 * failures go through receipt_handle (the policy, parking, alerts), the rest
 * in one statement. The receipts it left for the next pass go to later. */
static int apply_pass(app_t *app, const receipt_t *const *rs, const int *idx, int n, int *later,
                      int *nlater, hd_err_t *err)
{
    const receipt_t **pass = xcalloc((size_t)n, sizeof(*pass));
    int *pidx = xcalloc((size_t)n, sizeof(int));
    int np = 0;
    for (int i = 0; i < n; i++) {
        bool clash = np >= CHUNK;
        for (int j = 0; j < np && !clash; j++)
            clash = strcmp(pass[j]->provider_id, rs[idx[i]]->provider_id) == 0 ||
                    strcmp(pass[j]->dedup_key, rs[idx[i]]->dedup_key) == 0;
        if (clash) {
            later[(*nlater)++] = idx[i];
        } else {
            pidx[np] = idx[i];
            pass[np++] = rs[idx[i]];
        }
    }
    receipt_target_t *ts = xcalloc((size_t)np, sizeof(*ts));
    const receipt_t **fast = xcalloc((size_t)np, sizeof(*fast));
    const receipt_target_t **fts = xcalloc((size_t)np, sizeof(*fts));
    receipt_result_t *res = xcalloc((size_t)np, sizeof(*res));
    char(*moved)[16] = xcalloc((size_t)np, sizeof(*moved));
    int nfast = 0, rc = receipts_find_many(app->db, pass, np, ts, err);
    for (int i = 0; i < np && rc == 0; i++) {
        bool seen = false;
        for (int j = 0; j < i && ts[i].found && !seen; j++)
            seen = ts[j].found && strcmp(ts[j].comm_id, ts[i].comm_id) == 0;
        if (seen) { /* the same message by another provider id: next pass */
            later[(*nlater)++] = pidx[i];
            ts[i].found = false;
            ts[i].comm_id[0] = '\0';
            pass[i] = NULL;
        } else if (!(ts[i].found && pass[i]->kind == RECEIPT_FAILED)) {
            fts[nfast] = &ts[i];
            fast[nfast++] = pass[i];
        }
    }
    if (rc == 0 && nfast > 0)
        rc = receipts_apply_many(app->db, fast, fts, nfast, res, moved, err);
    for (int i = 0; i < nfast && rc == 0; i++) {
        if (res[i] == RECEIPT_APPLIED)
            count(app, fast[i], fts[i], ACT_NONE, "", moved[i]);
        if (res[i] == RECEIPT_ORPHAN)
            log_warn("receipt for a message Herald does not know; kept as an orphan event",
                     "provider", fast[i]->provider, "provider_message_id", fast[i]->provider_id,
                     "status", fast[i]->raw_status);
    }
    /* the failures of known messages, one by one, as a single receipt */
    for (int i = 0; i < np && rc == 0; i++) {
        receipt_result_t r1;
        if (pass[i] && ts[i].found && pass[i]->kind == RECEIPT_FAILED)
            rc = receipt_handle(app, pass[i], &r1, err);
    }
    for (int i = 0; i < np; i++)
        receipt_target_free(&ts[i]);
    free(moved);
    free(res);
    free(fts);
    free(fast);
    free(ts);
    free(pidx);
    free(pass);
    return rc;
}

/* Applies rs[0..n) in passes; 0, or -1 when the database could not take
 * them (what was applied stays: each receipt counts once by its key). */
static int apply_many(app_t *app, const receipt_t *const *rs, int n)
{
    int *todo = xcalloc((size_t)n + 1, sizeof(int));
    int *later = xcalloc((size_t)n + 1, sizeof(int));
    for (int i = 0; i < n; i++)
        todo[i] = i;
    int ntodo = n, rc = 0;
    hd_err_t err;
    while (ntodo > 0 && rc == 0) {
        int nlater = 0;
        rc = apply_pass(app, rs, todo, ntodo, later, &nlater, &err);
        qsort(later, (size_t)nlater, sizeof(int), by_index);
        int *t = todo;
        todo = later;
        later = t;
        ntodo = nlater;
    }
    if (rc != 0)
        log_warn("cannot record receipts; the provider is asked to send them again", "provider",
                 rs[0]->provider, "reason", err.msg);
    free(todo);
    free(later);
    return rc;
}

/* Applies the batches of the list (linked by next) together. */
static void apply_batches(app_t *app, receipt_batch_t *list)
{
    int n = 0;
    for (receipt_batch_t *b = list; b; b = b->next)
        n += b->n;
    const receipt_t **rs = xcalloc((size_t)n + 1, sizeof(*rs));
    n = 0;
    for (receipt_batch_t *b = list; b; b = b->next)
        for (int i = 0; i < b->n; i++)
            rs[n++] = &b->rs[i];
    int state = n > 0 && apply_many(app, rs, n) != 0 ? 1 : 0;
    free(rs);
    for (receipt_batch_t *b = list; b; b = b->next)
        atomic_store(&b->state, state);
}

static void *run_receipts(void *arg)
{
    pthread_setname_np(pthread_self(), "herald-receipt");
    receipt_queue_t *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->head == NULL && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        /* what is queued, up to TAKE_MAX receipts (at least one batch) */
        receipt_batch_t *list = q->head, *last = NULL;
        int taken = 0;
        for (receipt_batch_t *b = q->head; b && (last == NULL || taken + b->n <= TAKE_MAX);
             b = b->next) {
            last = b;
            taken += b->n;
        }
        if (last) {
            q->head = last->next;
            if (q->head == NULL)
                q->tail = NULL;
            last->next = NULL;
        }
        pthread_mutex_unlock(&q->mu);
        if (last == NULL)
            break; /* stopping, and nothing left */
        apply_batches(q->app, list);
        while (list) {
            receipt_batch_t *b = list;
            list = b->next;
            batch_unref(b);
        }
    }
    return NULL;
}

receipt_queue_t *receipt_queue_start(app_t *app, int nthreads, hd_err_t *err)
{
    receipt_queue_t *q = xcalloc(1, sizeof(*q));
    q->app = app;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > 4)
        nthreads = 4;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&q->threads[i], NULL, run_receipts, q) != 0)
            break;
        q->nthreads++;
    }
    if (q->nthreads == 0) {
        hd_err_set(err, "cannot start the receipt threads");
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        free(q);
        return NULL;
    }
    return q;
}

void receipt_queue_stop(receipt_queue_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

receipt_batch_t *receipt_submit(app_t *app, const receipt_t *rs, int n)
{
    receipt_batch_t *b = xcalloc(1, sizeof(*b));
    atomic_init(&b->refs, 2);
    atomic_init(&b->state, -1);
    b->n = n;
    b->rs = xcalloc((size_t)n + 1, sizeof(receipt_t));
    b->owned = xcalloc((size_t)n * 11 + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const receipt_t *r = &rs[i];
        b->rs[i] = (receipt_t){
            .provider = keep(b, r->provider),
            .channel = keep(b, r->channel),
            .provider_id = keep(b, r->provider_id),
            .comm_hint = keep(b, r->comm_hint),
            .kind = r->kind,
            .raw_status = keep(b, r->raw_status),
            .error_code = keep(b, r->error_code),
            .error_text = keep(b, r->error_text),
            .dedup_key = keep(b, r->dedup_key),
            .occurred_at = r->occurred_at,
            .details_json = keep(b, r->details_json),
        };
    }
    receipt_queue_t *q = engine_receipts(app->engine);
    if (q == NULL) {
        apply_batches(app, b);
        batch_unref(b); /* the queue's reference */
        return b;
    }
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return b;
}

int receipt_batch_state(receipt_batch_t *b)
{
    return atomic_load(&b->state);
}

void receipt_batch_release(void *b)
{
    batch_unref(b);
}
