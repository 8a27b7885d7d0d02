/* ops.c - the operator's desk (see ops.h). */
#include "engine/ops.h"
#include "base/buf.h"
#include "base/log.h"
#include "engine/pace.h"
#include "engine/worker.h"
#include "store/repo_ops.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* This process's copy of crm_channel_pauses (app->ops). */
struct ops_state {
    pthread_mutex_t mu;
    double read_at; /* monotonic seconds; 0: never */
    char by[TR_NCHANNELS][96];
    double resumed_at[TR_NCHANNELS]; /* when this process saw each resumed */
};

ops_state_t *ops_state_new(void)
{
    ops_state_t *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void ops_state_free(ops_state_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads the table again (the lock held). On failure the last copy stays:
 * a pause is not lifted because the database hiccuped. */
static void refresh(app_t *app)
{
    ops_state_t *P = app->ops;
    hd_err_t err;
    cJSON *list = ops_pauses(app->db, &err);
    if (list == NULL) {
        log_warn("cannot read the channel pauses; the last known ones hold", "reason", err.msg);
        P->read_at = mono();
        return;
    }
    bool was[TR_NCHANNELS];
    double now = mono();
    for (int c = 0; c < TR_NCHANNELS; c++)
        was[c] = P->by[c][0] != '\0';
    memset(P->by, 0, sizeof(P->by));
    const cJSON *p;
    cJSON_ArrayForEach(p, list)
    {
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(p, "channel");
        const cJSON *by = cJSON_GetObjectItemCaseSensitive(p, "by");
        tr_channel_t c;
        if (cJSON_IsString(ch) && tr_channel_parse(ch->valuestring, &c) == 0)
            snprintf(P->by[c], sizeof(P->by[c]), "%s",
                     cJSON_IsString(by) && by->valuestring[0] ? by->valuestring : "an operator");
    }
    cJSON_Delete(list);
    P->read_at = now;
    for (int c = 0; c < TR_NCHANNELS; c++)
        if (was[c] && P->by[c][0] == '\0')
            P->resumed_at[c] = now;
    /* A channel resumed since the last read: the jobs this process held on
     * its stale copy meanwhile (for OPS_PAUSE_RECHECK_S) come forward now,
     * not seconds later. */
    for (int c = 0; c < TR_NCHANNELS; c++)
        if (was[c] && P->by[c][0] == '\0' && ops_unhold(app->db, &err) != 0)
            log_warn("cannot bring a resumed channel's jobs forward; they go within seconds",
                     "reason", err.msg);
}

bool ops_channel_paused(app_t *app, tr_channel_t ch, char *by, size_t n)
{
    ops_state_t *P = app->ops;
    pthread_mutex_lock(&P->mu);
    if (P->read_at == 0 || mono() - P->read_at >= 1.0)
        refresh(app);
    bool paused = P->by[ch][0] != '\0';
    if (paused && by)
        snprintf(by, n, "%s", P->by[ch]);
    pthread_mutex_unlock(&P->mu);
    return paused;
}

bool ops_resumed_since(app_t *app, tr_channel_t ch, double claimed_at)
{
    ops_state_t *P = app->ops;
    pthread_mutex_lock(&P->mu);
    bool r = claimed_at > 0 && P->resumed_at[ch] >= claimed_at;
    pthread_mutex_unlock(&P->mu);
    return r;
}

void ops_hold_job(app_t *app, comm_job_t *j, tr_channel_t ch, const char *by)
{
    char why[200];
    snprintf(why, sizeof(why), "%s is paused by %s; the message waits for resume",
             tr_channel_name(ch), by);
    hd_err_t err;
    if (ops_hold(app->db, j->job_id, j->owner, OPS_PAUSE_RECHECK_S, tr_channel_name(ch), why,
                 &err) != 0)
        log_warn("cannot hold a job of a paused channel; its lease brings it back", "comm_id",
                 j->comm_id, "reason", err.msg);
}

int ops_set_pause(app_t *app, const char *channel, bool on, const char *actor, const char *reason,
                  bool *changed, hd_err_t *err)
{
    tr_channel_t ch;
    if (channel == NULL || tr_channel_parse(channel, &ch) != 0)
        return 1;
    if (ops_pause(app->db, tr_channel_name(ch), on, actor, reason, changed, err) != 0)
        return -1;
    /* this process's copy first, then what was held: a job claimed in
     * between would be held again on the stale copy */
    ops_state_t *P = app->ops;
    pthread_mutex_lock(&P->mu);
    refresh(app);
    pthread_mutex_unlock(&P->mu);
    if (!on && ops_unhold(app->db, err) != 0)
        return -1;
    log_info(on ? "channel paused" : "channel resumed", "channel", tr_channel_name(ch), "by",
             actor);
    if (!on)
        engine_wake(app);
    return 0;
}

int ops_retry_message(app_t *app, const char *id, const char *actor, char status_out[16],
                      hd_err_t *err)
{
    int rc = ops_retry(app->db, id, actor, status_out, err);
    if (rc == 0) {
        log_info("failed message sent again", "comm_id", id, "by", actor);
        engine_wake(app);
    }
    return rc;
}

cJSON *ops_queue_report(app_t *app, hd_err_t *err)
{
    cJSON *doc = ops_queue(app->db, err);
    if (doc == NULL)
        return NULL;
    metrics_bucket_t b[METRICS_MAX_BUCKETS];
    int n = pace_rates(app, b, METRICS_MAX_BUCKETS);
    cJSON *list = cJSON_AddArrayToObject(doc, "buckets");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "bucket", b[i].key);
        cJSON_AddNumberToObject(o, "rate_per_s", b[i].configured);
        cJSON_AddNumberToObject(o, "current_per_s", b[i].current);
        cJSON_AddItemToArray(list, o);
    }
    return doc;
}
