/*
 * worker.c - the engine's workers (see worker.h). Uses store/repo_comms for
 * the queue and the record, store/repo_prefs for addresses and opt-outs,
 * lua/runtime for render, classify and retry.policy, and the transport.
 *
 * Each worker claims a small batch, hands every message of it to the
 * transport (which sends them concurrently), then records the outcomes as
 * they come back. Idle workers sleep on a condition variable that the
 * LISTEN thread signals on every NOTIFY, with a timeout at the next due job.
 */
#include "engine/worker.h"
#include "engine/alert.h"
#include "engine/outcome.h"
#include "engine/policy.h"
#include "engine/rollup.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/codec.h"
#include "crypto/field.h"
#include "crypto/hash.h"
#include "store/repo_comms.h"
#include "engine/prefs.h"
#include "transport/transport.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 16
/* A worker claims again once this many or fewer sends are in flight: often
 * enough that the provider is never idle, seldom enough that a claim (and
 * its mark and record statements) carries several messages, not one. */
#define CLAIM_AT (BATCH / 2)
_Static_assert(BATCH <= OUTCOME_MAX, "a worker's finished sends are written in one batch");

typedef struct outcome {
    tr_message_t *msg;
    tr_result_t res;
    int slot; /* index in the worker's batch */
    struct outcome *next;
} outcome_t;

typedef struct worker {
    struct engine *eng;
    pthread_t thread;
    int index;
    char owner[96];
    pthread_mutex_t mu; /* guards done and kicked */
    pthread_cond_t cv;
    outcome_t *done;
    bool kicked; /* new work was queued while this worker waited for outcomes */
} worker_t;

struct engine {
    app_t *app;
    worker_t *workers;
    int nworkers;
    atomic_bool stopping;
    pthread_t listener;
    int kick_fd;                /* eventfd: the listener's "send a NOTIFY" bell */
    atomic_bool notify_pending; /* a message was queued since the last NOTIFY */
    rollup_t *rollup;           /* the analytics refresher */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    unsigned long wakeups; /* under wake_mu */
};

/* What tr_send carries back to on_sent: the worker and the job's slot. */
typedef struct sent_ctx {
    worker_t *w;
    int slot;
} sent_ctx_t;

/* Runs on the transport thread: hand the outcome to its worker. */
static void on_sent(void *ctx, tr_message_t *msg, const tr_result_t *res)
{
    sent_ctx_t *sc = ctx;
    worker_t *w = sc->w;
    outcome_t *o = xcalloc(1, sizeof(*o));
    o->msg = msg;
    o->res = *res;
    o->slot = sc->slot;
    free(sc);
    pthread_mutex_lock(&w->mu);
    o->next = w->done;
    w->done = o;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static const char *json_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* The recipient for this message: stored preferences, overridden by the
 * request's own recipient (kept encrypted with the message). */
static cJSON *recipient_of(app_t *app, const comm_job_t *j, hd_err_t *err)
{
    cJSON *prefs = NULL;
    if (prefs_load(app, j->client_id, &prefs, err) != 0)
        return NULL;
    if (prefs == NULL)
        prefs = cJSON_CreateObject();
    if (j->recipient_enc) {
        char *plain = NULL;
        size_t n = 0;
        if (fe_decrypt(app->keyring, "recipient", j->recipient_enc, &plain, &n, err) != 0) {
            cJSON_Delete(prefs);
            return NULL;
        }
        cJSON *over = cJSON_Parse(plain);
        free(plain);
        const cJSON *f;
        cJSON_ArrayForEach(f, over)
        {
            if (!cJSON_IsString(f) || f->valuestring[0] == '\0')
                continue;
            if (cJSON_GetObjectItemCaseSensitive(prefs, f->string))
                cJSON_ReplaceItemInObjectCaseSensitive(prefs, f->string,
                                                       cJSON_CreateString(f->valuestring));
            else
                cJSON_AddStringToObject(prefs, f->string, f->valuestring);
        }
        cJSON_Delete(over);
    }
    return prefs;
}

/* Whether strategy.decide, asked again now with the client as they are now,
 * puts the message later than a minute from now; *until and why say when
 * and why. Critical messages are never held back. */
static bool still_later(app_t *app, const comm_job_t *j, const cJSON *who, int64_t *until,
                        char *why, size_t whyn)
{
    /* Critical goes regardless; low waits for the digest time it was given
     * (asked again just after that time, the policy would name tomorrow's). */
    if (j->urgency && (strcmp(j->urgency, "critical") == 0 || strcmp(j->urgency, "low") == 0))
        return false;
    int64_t now = (int64_t)time(NULL);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "message_type", j->message_type ? j->message_type : "");
    if (j->urgency)
        cJSON_AddStringToObject(req, "urgency", j->urgency);
    cJSON *prefs = cJSON_Duplicate(who, true), *nowj = cJSON_CreateNumber((double)now);
    cJSON *args[] = {req, prefs, nowj}, *d = NULL, *ex = NULL;
    hd_err_t err;
    bool later = false;
    if (lrt_call(app->policy, "strategy", "decide", args, 3, &d, &err) == 0) {
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(d, "send_at");
        if (cJSON_IsNumber(at) && (int64_t)at->valuedouble > now + 60) {
            later = true;
            *until = (int64_t)at->valuedouble;
            cJSON *eargs[] = {d};
            if (lrt_call(app->policy, "strategy", "explain", eargs, 1, &ex, &err) == 0 &&
                cJSON_IsString(ex))
                snprintf(why, whyn, "not now: %s", ex->valuestring);
            else
                snprintf(why, whyn, "not now: the policy gives a later time");
        }
    } else {
        log_warn("strategy.decide failed at send time; sending as accepted", "comm_id", j->comm_id,
                 "error", err.msg);
    }
    cJSON_Delete(req);
    cJSON_Delete(prefs);
    cJSON_Delete(nowj);
    cJSON_Delete(d);
    cJSON_Delete(ex);
    return later;
}

/* strategy.refusal(channel, prefs): the policy's reason not to use the
 * channel now (consent, as settings.consent says), or JSON null. */
static int policy_refusal(app_t *app, const comm_job_t *j, const char *chname, const cJSON *who,
                          cJSON **out)
{
    cJSON *ch = cJSON_CreateString(chname), *prefs = cJSON_Duplicate(who, true);
    cJSON *args[] = {ch, prefs};
    hd_err_t err;
    int rc = lrt_call(app->policy, "strategy", "refusal", args, 2, out, &err);
    if (rc != 0)
        log_error("strategy.refusal failed; the message waits for its lease and a fixed policy",
                  "comm_id", j->comm_id, "channel", chname, "error", err.msg);
    cJSON_Delete(ch);
    cJSON_Delete(prefs);
    return rc;
}

/* Fills ctx.items for a digest: the messages it carries, each with the
 * subject its own email would have had. */
static int digest_context(app_t *app, const comm_job_t *j, cJSON *ctx, hd_err_t *err)
{
    cJSON *members = comms_gather_digest(app->db, j, err);
    if (members == NULL)
        return -1;
    cJSON *items = cJSON_AddArrayToObject(ctx, "items");
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        cJSON *mctx = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m, "context"), true);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ctx, "client_name");
        if (cJSON_IsString(name) && !cJSON_GetObjectItemCaseSensitive(mctx, "client_name"))
            cJSON_AddStringToObject(mctx, "client_name", name->valuestring);
        cJSON *t = cJSON_CreateString(json_str(m, "message_type"));
        cJSON *c = cJSON_CreateString("email"), *out = NULL;
        cJSON *args[] = {t, c, mctx};
        hd_err_t rerr;
        cJSON *item = cJSON_CreateObject();
        if (lrt_call(app->policy, "content", "render", args, 3, &out, &rerr) == 0 &&
            json_str(out, "subject"))
            cJSON_AddStringToObject(item, "subject", json_str(out, "subject"));
        else
            cJSON_AddStringToObject(item, "subject", json_str(m, "message_type"));
        cJSON_AddStringToObject(item, "message_type", json_str(m, "message_type"));
        cJSON_AddItemToArray(items, item);
        cJSON_Delete(out);
        cJSON_Delete(t);
        cJSON_Delete(c);
        cJSON_Delete(mctx);
    }
    cJSON_Delete(members);
    return 0;
}

/* The attachments given at acceptance (email only: the blueprint PDF; the
 * other channels carry a link instead). They were checked then. */
static void attach(tr_message_t *m, const char *payload_json)
{
    cJSON *p = cJSON_Parse(payload_json);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "attachments");
    int n = cJSON_GetArraySize(list);
    if (n > 0) {
        m->attachments = xcalloc((size_t)n, sizeof(tr_attachment_t));
        const cJSON *a;
        cJSON_ArrayForEach(a, list)
        {
            const char *b64 = json_str(a, "content_base64");
            tr_attachment_t *t = &m->attachments[m->nattachments];
            if (b64 == NULL || b64_decode(b64, strlen(b64), &t->data, &t->len) != 0)
                continue;
            t->filename = xstrdup(json_str(a, "filename"));
            t->content_type = xstrdup(json_str(a, "content_type"));
            m->nattachments++;
        }
    }
    cJSON_Delete(p);
}

/* The email's HTML with its links through /t/c and the open pixel; the
 * unsubscribe page stays a direct link. out.track_days: the links' life. */
static char *tracked_html(app_t *app, comm_job_t *j, const char *html, const cJSON *out)
{
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(out, "track_days");
    double d = cJSON_IsNumber(days) && days->valuedouble > 0 ? days->valuedouble : 365;
    buf_t base, skip;
    buf_init(&base);
    buf_init(&skip);
    buf_puts(&base, app->cfg->public_url);
    while (base.len && base.data[base.len - 1] == '/')
        base.data[--base.len] = '\0';
    buf_printf(&skip, "%s/u/", base.data);
    free(j->tracked_links);
    char *t = track_rewrite_html(&app->track_key, html, base.data, j->comm_id,
                                 (int64_t)time(NULL) + (int64_t)(d * 86400), skip.data,
                                 &j->tracked_links);
    buf_free(&base);
    buf_free(&skip);
    return t;
}

/* A no-receipt timer came due: the next channel, unless a receipt (or a
 * failure, or the lease's new holder) settled it meanwhile. */
static void fire_no_receipt(app_t *app, comm_job_t *j)
{
    tr_channel_t chain[TR_NCHANNELS];
    int n = engine_split_channels(j->channels_csv, chain);
    if (j->channel_index < 0 || j->channel_index + 1 >= n) {
        hd_err_t derr;
        comms_drop(app->db, j, "no-receipt timer without a next channel", &derr);
        return;
    }
    const char *ch = tr_channel_name(chain[j->channel_index]);
    char why[200];
    snprintf(why, sizeof(why), "no delivery receipt on %s in time; trying %s", ch,
             tr_channel_name(chain[j->channel_index + 1]));
    bool fired = false;
    hd_err_t err;
    if (comms_fire_no_receipt(app->db, j, ch, why, &fired, &err) != 0) {
        log_warn("cannot act on a no-receipt timer; its lease brings it back", "comm_id",
                 j->comm_id, "reason", err.msg);
        return;
    }
    if (fired) {
        metrics_fallback(app->metrics, "no_receipt");
        engine_kick(app->engine);
    }
}

/* Checks and renders one job. Returns 1 with *out_msg ready to send, 0
 * when it was settled here (skipped, failed, dropped), -1 on a transient
 * problem (the lease will bring it back). */
static int dispatch(worker_t *w, comm_job_t *j, int slot, tr_message_t **out_msg)
{
    *out_msg = NULL;
    app_t *app = w->eng->app;
    hd_err_t err;
    if (strcmp(j->kind, "no_receipt") == 0) {
        fire_no_receipt(app, j);
        return 0;
    }
    if (strcmp(j->status, "scheduled") && strcmp(j->status, "queued") &&
        strcmp(j->status, "sending") && !(j->resend && strcmp(j->status, "sent") == 0)) {
        /* cancelled, settled, or already with the provider (an early
         * receipt said so): the job has nothing left to do */
        char why[80];
        snprintf(why, sizeof(why), "nothing to send: the message is %s", j->status);
        comms_drop(app->db, j, why, &err);
        return 0;
    }
    if (strcmp(j->status, "sending") == 0 && j->recovered) {
        /* Claimed again after a lease ran out: the process that had it
         * died mid-send. Say so in the record, then send again. */
        comms_event(app->db, j, "recovered",
                    "claimed again after a lease expired; the previous attempt may have "
                    "been sent",
                    &err);
    }
    tr_channel_t chain[TR_NCHANNELS];
    int n = engine_split_channels(j->channels_csv, chain);
    if (j->channel_index >= n) {
        comms_skip(app->db, j, NULL, "no channel left in the chain", true, &err);
        return 0;
    }
    tr_channel_t ch = chain[j->channel_index];
    const char *chname = tr_channel_name(ch);
    bool last = j->channel_index == n - 1;
    cJSON *who = recipient_of(app, j, &err);
    if (who == NULL) {
        log_error("cannot load the recipient; the job will be retried after its lease", "comm_id",
                  j->comm_id, "reason", err.msg);
        return -1;
    }
    /* Preferences are checked again at every attempt, not only at acceptance. */
    const cJSON *opted = cJSON_GetObjectItemCaseSensitive(who, "opted_out");
    const char *addr = ch == TR_EMAIL ? json_str(who, "email") : json_str(who, "phone");
    const char *skip = NULL;
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(who, "channels");
    bool listed = !cJSON_IsArray(allowed); /* no stated list: every channel */
    const cJSON *a;
    cJSON_ArrayForEach(a, allowed)
    {
        listed |= cJSON_IsString(a) && strcmp(a->valuestring, chname) == 0;
    }
    cJSON *refusal = NULL;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opted, chname)))
        skip = "the client opted out of this channel";
    else if (!listed)
        skip = "not among the client's allowed channels";
    else if (addr == NULL)
        skip = ch == TR_EMAIL ? "no email address" : "no phone number";
    else if (policy_refusal(app, j, chname, who, &refusal) != 0) {
        /* Fail closed: never send without the consent check. The lease
         * brings the job back; /health shows the script error meanwhile. */
        cJSON_Delete(who);
        return -1;
    } else if (cJSON_IsString(refusal))
        skip = refusal->valuestring;
    if (skip) {
        char why[300];
        snprintf(why, sizeof(why), "%s: %s", chname, skip);
        cJSON_Delete(refusal);
        if (comms_skip(app->db, j, chname, why, last, &err) == 0) {
            if (last) {
                metrics_comm(app->metrics, chname, "failed", j->message_type);
                engine_alert(app, j, "unusable", why);
            } else {
                metrics_fallback(app->metrics, "unusable");
            }
        }
        cJSON_Delete(who);
        return 0;
    }
    cJSON_Delete(refusal);
    /* The moment is checked again too: a retry or a fallback that comes due
     * inside the client's quiet hours (or outside business hours for
     * normal urgency) waits for the time the policy gives now. */
    int64_t later = 0;
    char why_later[300] = "";
    if (still_later(app, j, who, &later, why_later, sizeof(why_later))) {
        comms_defer(app->db, j, later, why_later, &err);
        cJSON_Delete(who);
        return 0;
    }
    /* Render for the channel in hand, with the client's name for greetings. */
    cJSON *ctx = cJSON_Parse(j->context_json ? j->context_json : "{}");
    if (!cJSON_IsObject(ctx)) {
        cJSON_Delete(ctx);
        ctx = cJSON_CreateObject();
    }
    const char *name = json_str(who, "name");
    if (name && !cJSON_GetObjectItemCaseSensitive(ctx, "client_name"))
        cJSON_AddStringToObject(ctx, "client_name", name);
    if (j->plan_id && !cJSON_GetObjectItemCaseSensitive(ctx, "plan_id"))
        cJSON_AddStringToObject(ctx, "plan_id", j->plan_id);
    const char *type = j->message_type;
    if (j->batch) {
        /* The day's low-urgency messages of this client go as one digest:
         * each listed by its own subject. */
        if (digest_context(app, j, ctx, &err) != 0) {
            log_error("cannot gather the digest; the lease brings it back", "comm_id", j->comm_id,
                      "reason", err.msg);
            cJSON_Delete(ctx);
            cJSON_Delete(who);
            return -1;
        }
        type = "digest";
    }
    cJSON *t = cJSON_CreateString(type), *c = cJSON_CreateString(chname), *out = NULL;
    cJSON *args[] = {t, c, ctx};
    int rc = lrt_call(app->policy, "content", "render", args, 3, &out, &err);
    cJSON_Delete(t);
    cJSON_Delete(c);
    cJSON_Delete(ctx);
    if (rc != 0) {
        /* A template error is the policy's: this channel cannot render. */
        char why[600];
        snprintf(why, sizeof(why), "render failed: %s", err.msg);
        log_error("render failed", "comm_id", j->comm_id, "channel", chname, "error", err.msg);
        comms_skip(app->db, j, chname, why, last, &err);
        cJSON_Delete(who);
        return 0;
    }
    tr_message_t *m = tr_message_new();
    m->channel = ch;
    m->comm_id = xstrdup(j->comm_id);
    m->attempt = j->attempt + 1;
    m->to = xstrdup(addr);
    if (name)
        m->to_name = xstrdup(name);
    if (ch == TR_EMAIL && j->payload_json)
        attach(m, j->payload_json);
    const char *v;
    if ((v = json_str(out, "subject")))
        m->subject = xstrdup(v);
    if ((v = json_str(out, "text")))
        m->text = xstrdup(v);
    if ((v = json_str(out, "html")))
        m->html = ch == TR_EMAIL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(out, "track"))
                      ? tracked_html(app, j, v, out)
                      : xstrdup(v);
    cJSON_Delete(out);
    cJSON_Delete(who);
    (void)slot;
    *out_msg = m;
    return 1;
}

/* Marks the prepared messages sending (one statement), then hands the
 * ones still ours to the transport. Returns how many went out. */
static int send_all(worker_t *w, comm_job_t *jobs, tr_message_t **msgs, int n, bool *went)
{
    app_t *app = w->eng->app;
    hd_err_t err;
    bool marked[BATCH];
    const char *channels[BATCH];
    for (int i = 0; i < n; i++)
        channels[i] = msgs[i] ? tr_channel_name(msgs[i]->channel) : NULL;
    if (comms_mark_sending_many(app->db, jobs, channels, n, marked, &err) != 0)
        log_error("cannot mark messages sending; they return after the lease", "reason", err.msg);
    int sent = 0;
    for (int i = 0; i < n; i++) {
        went[i] = false;
        if (msgs[i] == NULL)
            continue;
        if (!marked[i]) {
            /* not marked: cancelled, no longer ours, or the database failed
             * (the lease brings it back) - never sent */
            tr_message_free(msgs[i]);
            msgs[i] = NULL;
            continue;
        }
        sent_ctx_t *sc = xcalloc(1, sizeof(*sc));
        sc->w = w;
        sc->slot = i;
        metrics_in_flight(app->metrics, 1);
        tr_send(app->transport, msgs[i], on_sent, sc);
        msgs[i] = NULL;
        went[i] = true;
        sent++;
    }
    return sent;
}

/* The wake-up count now: taken before a claim, so a NOTIFY that arrives
 * between the claim and the wait is not slept through. */
static unsigned long wake_count(struct engine *e)
{
    pthread_mutex_lock(&e->wake_mu);
    unsigned long n = e->wakeups;
    pthread_mutex_unlock(&e->wake_mu);
    return n;
}

static void wait_for_work(struct engine *e, unsigned long seen, double max_s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = (long)(max_s * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec += ns % 1000000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->wake_mu);
    while (seen == e->wakeups && !atomic_load(&e->stopping))
        if (pthread_cond_timedwait(&e->wake_cv, &e->wake_mu, &until) != 0)
            break;
    pthread_mutex_unlock(&e->wake_mu);
}

/* Waits for outcomes: when there is room to claim more work, up to max_ms
 * or until new work is queued; when full, until one comes, renewing the
 * leases meanwhile. Returns the list. */
static outcome_t *wait_outcomes(worker_t *w, int max_ms)
{
    app_t *app = w->eng->app;
    pthread_mutex_lock(&w->mu);
    /* full: a kick changes nothing, new work waits for a free slot anyway */
    while (w->done == NULL && (max_ms == 0 || !w->kicked)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        if (max_ms > 0) {
            until.tv_nsec += (long)max_ms * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
        } else {
            /* A provider that takes its time must not cost us the lease:
             * renew it every third of its length meanwhile. */
            until.tv_sec += app->cfg->lease_s / 3 > 0 ? app->cfg->lease_s / 3 : 1;
        }
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0 && w->done == NULL &&
            (max_ms == 0 || !w->kicked)) {
            if (max_ms > 0)
                break;
            pthread_mutex_unlock(&w->mu);
            comms_extend(app->db, w->owner, app->cfg->lease_s, NULL);
            pthread_mutex_lock(&w->mu);
        }
    }
    w->kicked = false;
    outcome_t *list = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    return list;
}

/* A worker keeps up to BATCH messages in flight: it claims as slots free up
 * rather than waiting for a whole batch, so one slow provider answer never
 * holds the others back. */
static void *run_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "herald-worker");
    worker_t *w = arg;
    struct engine *e = w->eng;
    app_t *app = e->app;
    comm_job_t jobs[BATCH];
    bool used[BATCH] = {false};
    int inflight = 0;
    memset(jobs, 0, sizeof(jobs));
    struct timespec renewed;
    clock_gettime(CLOCK_MONOTONIC, &renewed);
    while (!atomic_load(&e->stopping) || inflight > 0) {
        hd_err_t err;
        if (!atomic_load(&e->stopping) && inflight <= CLAIM_AT) {
            comm_job_t fresh[BATCH];
            unsigned long seen = wake_count(e);
            int n =
                comms_claim(app->db, w->owner, BATCH - inflight, app->cfg->lease_s, fresh, &err);
            if (n < 0)
                log_error("cannot claim jobs", "reason", err.msg);
            if (n <= 0 && inflight == 0) {
                /* at least 5 ms: a job due now that this claim did not get is
                 * another worker's (SKIP LOCKED); a kick still wakes at once */
                double next = n < 0 ? 1.0 : comms_next_due(app->db, 1.0, NULL);
                wait_for_work(e, seen, next < 0.005 ? 0.005 : next);
                continue;
            }
            tr_message_t *msgs[BATCH] = {NULL};
            bool placed[BATCH] = {false};
            for (int k = 0, s = 0; k < n; k++) {
                while (used[s])
                    s++;
                jobs[s] = fresh[k]; /* the slot takes the job's memory */
                used[s] = placed[s] = true;
                dispatch(w, &jobs[s], s, &msgs[s]);
            }
            bool went[BATCH];
            inflight += send_all(w, jobs, msgs, BATCH, went);
            /* slots of this claim that did not go out (settled here,
             * cancelled, left to the lease) are free again */
            for (int s = 0; s < BATCH; s++)
                if (placed[s] && !went[s]) {
                    comm_job_free(&jobs[s]);
                    used[s] = false;
                }
        }
        if (inflight == 0)
            continue;
        /* Sends still in flight keep their leases, however long the
         * provider takes. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - renewed.tv_sec >=
            (app->cfg->lease_s / 3 > 0 ? app->cfg->lease_s / 3 : 1)) {
            comms_extend(app->db, w->owner, app->cfg->lease_s, NULL);
            renewed = now;
        }
        /* Room left and work may be waiting: look again soon; full: wait. */
        bool room = !atomic_load(&e->stopping) && inflight <= CLAIM_AT;
        /* with room, claim again on a kick or after 100 ms (jobs that came
         * due by time: retries, timers); full, when an outcome comes */
        outcome_t *list = wait_outcomes(w, room ? 100 : 0);
        outcome_rec_t recs[BATCH];
        outcome_t *done[BATCH];
        int k = 0;
        for (outcome_t *o = list; o && k < BATCH; o = o->next) {
            outcome_prepare(app, &jobs[o->slot], o->msg, &o->res, &recs[k]);
            done[k++] = o;
        }
        if (k)
            outcome_write(app, recs, k);
        for (int i = 0; i < k; i++) {
            int slot = done[i]->slot;
            free(recs[i].details);
            tr_message_free(done[i]->msg);
            free(done[i]);
            comm_job_free(&jobs[slot]);
            used[slot] = false;
            inflight--;
        }
    }
    return NULL;
}

static void wake_workers(struct engine *e)
{
    pthread_mutex_lock(&e->wake_mu);
    e->wakeups++;
    pthread_cond_broadcast(&e->wake_cv);
    pthread_mutex_unlock(&e->wake_mu);
    /* and the busy ones that have room: they wait on their own outcomes */
    for (int i = 0; i < e->nworkers; i++) {
        worker_t *w = &e->workers[i];
        pthread_mutex_lock(&w->mu);
        w->kicked = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

bool engine_kick(engine_t *e)
{
    if (e == NULL)
        return false;
    wake_workers(e);
    if (!atomic_exchange(&e->notify_pending, true)) {
        uint64_t one = 1;
        if (write(e->kick_fd, &one, sizeof(one)) < 0)
            atomic_store(&e->notify_pending, false); /* counter full: a NOTIFY is due anyway */
    }
    return true;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Takes every notification libpq holds; true when one came from another
 * process (ours are echoes of our own NOTIFY). */
static bool drain_notifies(PGconn *c)
{
    bool got = false;
    PGnotify *nt;
    int self = PQbackendPID(c);
    while ((nt = PQnotifies(c)) != NULL) {
        got |= nt->be_pid != self;
        PQfreemem(nt);
    }
    return got;
}

/* Other processes hear of new work at most this often: a burst of
 * acceptances costs them one wake-up, not one per message. */
#define NOTIFY_EVERY_MS 5

/* LISTEN on its own connection; a NOTIFY from another process wakes the
 * idle workers (our own were woken by engine_kick already). The same
 * connection sends the NOTIFYs this process owes the others, outside any
 * data transaction, so it never holds up a commit. */
static void *run_listener(void *arg)
{
    pthread_setname_np(pthread_self(), "herald-listen");
    struct engine *e = arg;
    PGconn *c = NULL;
    int64_t last_notify = 0;
    while (!atomic_load(&e->stopping)) {
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = PQconnectdb(e->app->cfg->database_url);
            PGresult *r =
                PQstatus(c) == CONNECTION_OK ? PQexec(c, "LISTEN " COMMS_NOTIFY_CHANNEL) : NULL;
            if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
                PQclear(r);
                PQfinish(c);
                c = NULL;
                sleep(1); /* the workers still poll at the next due time */
                continue;
            }
            PQclear(r);
        }
        int timeout = 250;
        if (atomic_load(&e->notify_pending)) {
            int64_t wait = last_notify + NOTIFY_EVERY_MS - mono_ms();
            if (wait <= 0 && atomic_exchange(&e->notify_pending, false)) {
                PGresult *r = PQexec(c, "NOTIFY " COMMS_NOTIFY_CHANNEL);
                if (PQresultStatus(r) != PGRES_COMMAND_OK)
                    log_warn("cannot notify other processes; their workers poll meanwhile",
                             "reason", PQerrorMessage(c));
                PQclear(r);
                last_notify = mono_ms();
                /* PQexec read whatever came meanwhile: it is off the socket now */
                if (drain_notifies(c))
                    wake_workers(e);
            } else if (wait > 0) {
                timeout = (int)wait;
            }
        }
        struct pollfd p[2] = {{.fd = PQsocket(c), .events = POLLIN},
                              {.fd = e->kick_fd, .events = POLLIN}};
        if (poll(p, 2, timeout) <= 0)
            continue;
        if (p[1].revents & POLLIN) {
            uint64_t n;
            if (read(e->kick_fd, &n, sizeof(n)) < 0)
                n = 0; /* EAGAIN: another read took it; notify_pending holds the truth */
        }
        if (!(p[0].revents & POLLIN) || PQconsumeInput(c) == 0)
            continue;
        if (drain_notifies(c))
            wake_workers(e);
    }
    PQfinish(c);
    return NULL;
}

engine_t *engine_start(app_t *app, int nworkers, hd_err_t *err)
{
    engine_t *e = xcalloc(1, sizeof(*e));
    e->app = app;
    e->nworkers = nworkers > 0 ? nworkers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (e->nworkers < 1)
        e->nworkers = 1;
    atomic_init(&e->stopping, false);
    atomic_init(&e->notify_pending, false);
    e->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->kick_fd < 0) {
        hd_err_set(err, "cannot create the engine's eventfd: %s", strerror(errno));
        free(e);
        return NULL;
    }
    pthread_mutex_init(&e->wake_mu, NULL);
    pthread_cond_init(&e->wake_cv, NULL);
    e->workers = xcalloc((size_t)e->nworkers, sizeof(worker_t));
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    /* host:pid repeats across containers (pid 1): a random part keeps owners apart */
    uint8_t rnd[4];
    char tag[9];
    if (hash_random(rnd, sizeof(rnd)) != 0)
        memset(rnd, 0, sizeof(rnd));
    hex_encode(rnd, sizeof(rnd), tag);
    for (int i = 0; i < e->nworkers; i++) {
        worker_t *w = &e->workers[i];
        w->eng = e;
        w->index = i;
        snprintf(w->owner, sizeof(w->owner), "%.60s:%d:%s:%d", host, (int)getpid(), tag, i);
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
    }
    if (pthread_create(&e->listener, NULL, run_listener, e) != 0) {
        hd_err_set(err, "cannot start the queue listener");
        close(e->kick_fd);
        free(e->workers);
        free(e);
        return NULL;
    }
    int started = 0;
    for (int i = 0; i < e->nworkers; i++, started++)
        if (pthread_create(&e->workers[i].thread, NULL, run_worker, &e->workers[i]) != 0)
            break;
    if (started == 0) {
        hd_err_set(err, "cannot start worker threads");
        atomic_store(&e->stopping, true);
        pthread_join(e->listener, NULL);
        close(e->kick_fd);
        free(e->workers);
        free(e);
        return NULL;
    }
    e->nworkers = started;
    e->rollup = rollup_start(app);
    char nw[16];
    snprintf(nw, sizeof(nw), "%d", e->nworkers);
    log_info("engine started", "workers", nw);
    return e;
}

void engine_stop(engine_t *e)
{
    if (e == NULL)
        return;
    atomic_store(&e->stopping, true);
    rollup_stop(e->rollup);
    pthread_mutex_lock(&e->wake_mu);
    pthread_cond_broadcast(&e->wake_cv);
    pthread_mutex_unlock(&e->wake_mu);
    for (int i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i].thread, NULL);
    pthread_join(e->listener, NULL);
    hd_err_t err;
    for (int i = 0; i < e->nworkers; i++) {
        comms_release(e->app->db, e->workers[i].owner, &err);
        pthread_mutex_destroy(&e->workers[i].mu);
        pthread_cond_destroy(&e->workers[i].cv);
    }
    pthread_mutex_destroy(&e->wake_mu);
    pthread_cond_destroy(&e->wake_cv);
    close(e->kick_fd);
    free(e->workers);
    free(e);
}
