/*
 * worker.c - the engine's workers (see worker.h). Uses store/repo_comms for
 * the queue, engine/dispatch to make each claimed job ready, the transport
 * to send, and engine/outcome to record what came of it.
 *
 * Each worker claims a small batch, hands every message of it to the
 * transport (which sends them concurrently), then records the outcomes as
 * they come back. Idle workers sleep on a condition variable that the
 * LISTEN thread signals on every NOTIFY, with a timeout at the next due job.
 */
#include "engine/worker.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/codec.h"
#include "crypto/hash.h"
#include "engine/dispatch.h"
#include "engine/outcome.h"
#include "engine/pace.h"
#include "engine/receipt.h"
#include "engine/rollup.h"
#include "store/repo_comms.h"
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
/* A send still in flight after this long is stalled (a provider answers in
 * milliseconds or is in trouble): it keeps its slot but no longer counts
 * against claiming, so a provider that hangs until its timeout cannot hold
 * back the messages of other channels. SLOTS bounds what one worker holds. */
#define STALLED_MS 500
#define SLOTS      (BATCH * 8)
/* Threads applying webhook receipts: each receipt is one or two short
 * statements, so two keep up with a burst while the HTTP threads only
 * parse and answer. */
#define RECEIPT_THREADS 2
_Static_assert(BATCH <= OUTCOME_MAX, "a worker's finished sends are written BATCH at a time");

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
    pthread_mutex_t mu; /* guards done, ndone, wake_at and kicked */
    pthread_cond_t cv;
    outcome_t *done;
    int ndone;   /* outcomes in done */
    int wake_at; /* on_sent wakes the worker once ndone reaches this (0: at the first) */
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
    receipt_queue_t *receipts;  /* webhook receipts, applied off the HTTP threads */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    unsigned long wakeups; /* under wake_mu */
    atomic_bool claiming;  /* a worker is claiming: one at a time (claim_turn) */
    atomic_bool drained;   /* the last claim took fewer jobs than it asked for */
    atomic_long claims, claimed_jobs;
    atomic_long outcome_writes, outcomes; /* record_outcomes' statements and the sends they held */
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
    if (++w->ndone >= w->wake_at)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Marks the prepared messages sending (one statement), then hands the
 * ones still ours to the transport. Returns how many went out. */
static int send_all(worker_t *w, comm_job_t *jobs, tr_message_t **msgs, int n, bool *went)
{
    app_t *app = w->eng->app;
    hd_err_t err;
    bool marked[SLOTS];
    const char *channels[SLOTS];
    /* only a message's own send is marked: an alert's POST or email is not */
    for (int i = 0; i < n; i++)
        channels[i] =
            msgs[i] && strcmp(jobs[i].kind, "send") == 0 ? tr_channel_name(msgs[i]->channel) : NULL;
    if (comms_mark_sending_many(app->db, jobs, channels, n, marked, &err) != 0)
        log_error("cannot mark messages sending; they return after the lease", "reason", err.msg);
    int sent = 0;
    for (int i = 0; i < n; i++) {
        went[i] = false;
        if (msgs[i] == NULL)
            continue;
        if (channels[i] && !marked[i]) {
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

static void wake_workers(struct engine *e);

/* The wake-up count now: taken before a claim, so a NOTIFY that arrives
 * between the claim and the wait is not slept through. */
static unsigned long wake_count(struct engine *e)
{
    pthread_mutex_lock(&e->wake_mu);
    unsigned long n = e->wakeups;
    pthread_mutex_unlock(&e->wake_mu);
    return n;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The CLOCK_REALTIME deadline (the condition variables' clock) ns from now. */
static struct timespec realtime_in(int64_t ns)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    ns += t.tv_nsec;
    t.tv_sec += (time_t)(ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    return t;
}

static void wait_for_work(struct engine *e, unsigned long seen, double max_s)
{
    struct timespec until = realtime_in((int64_t)(max_s * 1e9));
    pthread_mutex_lock(&e->wake_mu);
    while (seen == e->wakeups && !atomic_load(&e->stopping))
        if (pthread_cond_timedwait(&e->wake_cv, &e->wake_mu, &until) != 0)
            break;
    pthread_mutex_unlock(&e->wake_mu);
}

/* Renews the leases of the jobs in the worker's slots (its sends in
 * flight), and of no other job it may still lease. */
static void renew_leases(worker_t *w, const comm_job_t *jobs, const bool *used)
{
    long long ids[SLOTS];
    int n = 0;
    for (int s = 0; s < SLOTS; s++)
        if (used[s])
            ids[n++] = jobs[s].job_id;
    hd_err_t err;
    if (comms_extend(w->eng->app->db, w->owner, ids, n, w->eng->app->cfg->lease_s, &err) != 0)
        log_warn("cannot renew the leases of sends in flight", "reason", err.msg);
}

/* A kick ends the outcome linger only when the next turn can claim: room
 * once the outcomes come so far are recorded. */
static bool kicked_with_room(const worker_t *w, int max_ms, int moving)
{
    return max_ms > 0 && w->kicked && moving - w->ndone <= CLAIM_AT;
}

/* Waits for outcomes: when there is room to claim more work, up to max_ms
 * or until new work is queued; when full, until one comes, renewing the
 * leases meanwhile. Returns the list. Once one has come, it waits up to
 * engine.outcome_linger_ms more for the outcomes of the other sends moving
 * (in flight and not stalled), unless new work is queued and there will be
 * room for it, so that one statement records several: outcomes come back
 * one by one, a few ms apart. */
static outcome_t *wait_outcomes(worker_t *w, int max_ms, const comm_job_t *jobs, const bool *used,
                                const int64_t *since)
{
    app_t *app = w->eng->app;
    pthread_mutex_lock(&w->mu);
    /* full: a kick changes nothing, new work waits for a free slot anyway */
    while (w->done == NULL && (max_ms == 0 || !w->kicked)) {
        /* A provider that takes its time must not cost us the lease:
         * renew it every third of its length meanwhile. */
        int64_t renew_s = app->cfg->lease_s / 3 > 0 ? app->cfg->lease_s / 3 : 1;
        struct timespec until =
            realtime_in(max_ms > 0 ? (int64_t)max_ms * 1000000 : renew_s * 1000000000);
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0 && w->done == NULL &&
            (max_ms == 0 || !w->kicked)) {
            if (max_ms > 0)
                break;
            pthread_mutex_unlock(&w->mu);
            renew_leases(w, jobs, used);
            pthread_mutex_lock(&w->mu);
        }
    }
    /* counted now: the first outcome may have come late enough for others to stall */
    int moving = 0, linger = app->cfg->outcome_linger_ms;
    int64_t now = mono_ms();
    for (int s = 0; w->done && linger > 0 && s < SLOTS; s++)
        moving += used[s] && now - since[s] < STALLED_MS;
    if (w->done && w->ndone < moving && !kicked_with_room(w, max_ms, moving)) {
        struct timespec until = realtime_in((int64_t)linger * 1000000);
        w->wake_at = moving;
        while (w->ndone < moving && !kicked_with_room(w, max_ms, moving))
            if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
                break;
        w->wake_at = 0;
    }
    w->kicked = false;
    outcome_t *list = w->done;
    w->done = NULL;
    w->ndone = 0;
    pthread_mutex_unlock(&w->mu);
    return list;
}

/* Records the outcomes of a list, BATCH at a time; frees their slots. */
static int record_outcomes(struct engine *e, outcome_t *list, comm_job_t *jobs, bool *used)
{
    app_t *app = e->app;
    int freed = 0;
    while (list) {
        outcome_rec_t recs[BATCH];
        outcome_t *done[BATCH];
        int k = 0;
        while (list && k < BATCH) {
            outcome_t *o = list;
            list = list->next;
            if (o->res.stopped) {
                /* Never handed to the provider: no attempt to record. The
                 * job stays leased to this worker until engine_stop
                 * releases it for the next process. */
                log_info("not sent: the process is stopping; the job goes back to the queue",
                         "comm_id", jobs[o->slot].comm_id);
                metrics_in_flight(app->metrics, -1);
                tr_message_free(o->msg);
                comm_job_free(&jobs[o->slot]);
                used[o->slot] = false;
                free(o);
                freed++;
                continue;
            }
            outcome_prepare(app, &jobs[o->slot], o->msg, &o->res, &recs[k]);
            done[k++] = o;
        }
        if (k == 0)
            continue;
        outcome_write(app, recs, k);
        atomic_fetch_add(&e->outcome_writes, 1);
        atomic_fetch_add(&e->outcomes, k);
        for (int i = 0; i < k; i++) {
            int slot = done[i]->slot;
            free(recs[i].details);
            tr_message_free(done[i]->msg);
            free(done[i]);
            comm_job_free(&jobs[slot]);
            used[slot] = false;
            freed++;
        }
    }
    return freed;
}

/* Returned by claim_turn when another worker is claiming. */
#define NOT_OUR_TURN (-2)

/* Waits until want more messages were queued (kicks), ms passed or the
 * engine stops. */
static void linger(struct engine *e, int want, int ms)
{
    struct timespec until = realtime_in((int64_t)ms * 1000000);
    pthread_mutex_lock(&e->wake_mu);
    unsigned long from = e->wakeups;
    while (e->wakeups - from < (unsigned long)want && !atomic_load(&e->stopping))
        if (pthread_cond_timedwait(&e->wake_cv, &e->wake_mu, &until) != 0)
            break;
    pthread_mutex_unlock(&e->wake_mu);
}

/* Claims up to want jobs into fresh, one worker at a time: claims racing
 * for the same few jobs cost a statement each and mostly come back empty
 * (SKIP LOCKED). When the last claim emptied the queue, the claim first
 * waits up to engine.claim_linger_ms for more messages, so at a steady
 * rate one claim (and its mark and outcome statements) carries several
 * instead of one each. A full claim may have left work behind: the other
 * workers are woken for it. *seen is the wake-up count the claim saw (a
 * later kick is work it may have missed). Returns the number claimed, -1
 * on a database error, or NOT_OUR_TURN. */
static int claim_turn(worker_t *w, int want, comm_job_t *fresh, unsigned long *seen)
{
    struct engine *e = w->eng;
    app_t *app = e->app;
    if (atomic_exchange(&e->claiming, true)) {
        *seen = wake_count(e);
        return NOT_OUR_TURN;
    }
    if (atomic_load(&e->drained) && app->cfg->claim_linger_ms > 0)
        linger(e, want, app->cfg->claim_linger_ms);
    *seen = wake_count(e);
    hd_err_t err;
    double claimed_at = (double)mono_ms() / 1000.0;
    int n = comms_claim(app->db, app->keyring, w->owner, want, app->cfg->lease_s, fresh, &err);
    if (n < 0)
        log_error("cannot claim jobs", "reason", err.msg);
    for (int k = 0; k < n; k++)
        fresh[k].claimed_at = claimed_at;
    if (n >= 0) {
        atomic_fetch_add(&e->claims, 1);
        atomic_fetch_add(&e->claimed_jobs, n);
    }
    atomic_store(&e->drained, n < want);
    atomic_store(&e->claiming, false);
    if (n == want)
        wake_workers(e);
    return n;
}

/* A worker keeps up to BATCH messages moving: it claims as slots free up
 * rather than waiting for a whole batch, so one slow provider answer never
 * holds the others back; sends that stall (STALLED_MS) keep their slots
 * but leave room for new work, up to SLOTS. */
static void *run_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "herald-worker");
    worker_t *w = arg;
    struct engine *e = w->eng;
    app_t *app = e->app;
    comm_job_t jobs[SLOTS];
    bool used[SLOTS] = {false};
    int64_t since[SLOTS]; /* when the slot's send went to the transport */
    int inflight = 0;
    memset(jobs, 0, sizeof(jobs));
    struct timespec renewed;
    clock_gettime(CLOCK_MONOTONIC, &renewed);
    while (!atomic_load(&e->stopping) || inflight > 0) {
        int64_t now_ms = mono_ms(), next_stall = 0;
        int moving = 0; /* in flight and not stalled */
        for (int s = 0; s < SLOTS; s++)
            if (used[s] && now_ms - since[s] < STALLED_MS) {
                moving++;
                if (next_stall == 0 || since[s] + STALLED_MS < next_stall)
                    next_stall = since[s] + STALLED_MS;
            }
        int want = BATCH - moving < SLOTS - inflight ? BATCH - moving : SLOTS - inflight;
        if (!atomic_load(&e->stopping) && moving <= CLAIM_AT && want > 0) {
            comm_job_t fresh[BATCH];
            unsigned long seen;
            int n = claim_turn(w, want, fresh, &seen);
            if (n == NOT_OUR_TURN && inflight == 0) {
                /* the claiming worker wakes us if it leaves work behind,
                 * and so does new work; due jobs are found within 1 s */
                wait_for_work(e, seen, 1.0);
                continue;
            }
            if (n == NOT_OUR_TURN)
                n = 0;
            else if (n <= 0 && inflight == 0) {
                /* at least 5 ms: a job due now that this claim did not get is
                 * another worker's (SKIP LOCKED); a kick still wakes at once */
                double next = n < 0 ? 1.0 : comms_next_due(app->db, 1.0, NULL);
                wait_for_work(e, seen, next < 0.005 ? 0.005 : next);
                continue;
            }
            dispatch_prefetch(app, fresh, n);
            tr_message_t *msgs[SLOTS] = {NULL};
            bool placed[SLOTS] = {false};
            for (int k = 0, s = 0; k < n; k++) {
                while (used[s])
                    s++;
                jobs[s] = fresh[k]; /* the slot takes the job's memory */
                used[s] = placed[s] = true;
                since[s] = now_ms;
                dispatch_job(app, &jobs[s], &msgs[s]);
            }
            /* provider capacity: a send over its bucket waits, unsent */
            pace_batch(app, jobs, msgs, SLOTS);
            bool went[SLOTS];
            int sent = send_all(w, jobs, msgs, SLOTS, went);
            inflight += sent;
            if (sent > 0 && (next_stall == 0 || now_ms + STALLED_MS < next_stall))
                next_stall = now_ms + STALLED_MS;
            /* slots of this claim that did not go out (settled here,
             * cancelled, left to the lease) are free again */
            for (int s = 0; s < SLOTS; s++)
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
            renew_leases(w, jobs, used);
            renewed = now;
        }
        /* Room left and work may be waiting: look again soon (on a kick or
         * after 100 ms: jobs that came due by time); busy: until an outcome
         * comes or the next send stalls; every slot taken: until an outcome. */
        int max_ms = 0;
        if (!atomic_load(&e->stopping) && inflight < SLOTS) {
            bool room = moving <= CLAIM_AT;
            int64_t to_stall = next_stall > 0 ? next_stall - mono_ms() : 0;
            max_ms = room ? 100 : (int)(to_stall > 1 ? to_stall : 1);
        }
        inflight -= record_outcomes(e, wait_outcomes(w, max_ms, jobs, used, since), jobs, used);
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

void engine_counts(engine_t *e, long *claims, long *jobs, long *outcome_writes, long *outcomes)
{
    *claims = e ? atomic_load(&e->claims) : 0;
    *jobs = e ? atomic_load(&e->claimed_jobs) : 0;
    *outcome_writes = e ? atomic_load(&e->outcome_writes) : 0;
    *outcomes = e ? atomic_load(&e->outcomes) : 0;
}

struct rollup *engine_rollup(engine_t *e)
{
    return e ? e->rollup : NULL;
}

bool engine_stopping(const engine_t *e)
{
    return e && atomic_load(&e->stopping);
}

struct receipt_queue *engine_receipts(engine_t *e)
{
    return e ? e->receipts : NULL;
}

void engine_wake(app_t *app)
{
    hd_err_t err;
    if (!engine_kick(app->engine) && comms_notify(app->db, &err) != 0)
        log_warn("cannot notify the workers; they find the work at their next poll", "reason",
                 err.msg);
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
    atomic_init(&e->claiming, false);
    atomic_init(&e->drained, true);
    atomic_init(&e->claims, 0);
    atomic_init(&e->claimed_jobs, 0);
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
    hd_err_t rerr;
    e->receipts = receipt_queue_start(app, RECEIPT_THREADS, &rerr);
    if (e->receipts == NULL)
        log_warn("receipts are applied on the HTTP threads", "reason", rerr.msg);
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
    /* Sends queued behind a slow provider are not started: each would cost
     * the stop up to its timeout. Those in flight finish (one timeout at
     * most) and are recorded. */
    tr_drain(e->app->transport);
    rollup_stop(e->rollup);
    receipt_queue_stop(e->receipts); /* drains what the webhooks handed over */
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
