/* whatif.c - what-if replay (see whatif.h). */
#include "engine/whatif.h"
#include "base/tz.h"
#include "engine/policy.h"
#include "engine/prefs.h"
#include "engine/recipient.h"
#include "store/repo_prefs.h"
#include "store/repo_whatif.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- each client's preferences, read once ---- */

typedef struct slot {
    char *client_id;
    cJSON *prefs; /* the policy shape; an empty object when none is stored */
} slot_t;

typedef struct clients {
    slot_t *slots;
    size_t cap, n;
} clients_t;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static slot_t *find(clients_t *c, const char *id)
{
    size_t i = fnv(id) & (c->cap - 1);
    while (c->slots[i].client_id && strcmp(c->slots[i].client_id, id) != 0)
        i = (i + 1) & (c->cap - 1);
    return &c->slots[i];
}

static void grow(clients_t *c)
{
    clients_t bigger = {.cap = c->cap ? c->cap * 2 : 1024};
    bigger.slots = xcalloc(bigger.cap, sizeof(slot_t));
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].client_id)
            *find(&bigger, c->slots[i].client_id) = c->slots[i];
    bigger.n = c->n;
    free(c->slots);
    *c = bigger;
}

/* The client's stored preferences (policy shape), or NULL with err. */
static const cJSON *prefs_of(clients_t *c, pg_pool_t *db, const fe_keyring_t *kr, const char *id,
                             hd_err_t *err)
{
    if (c->n * 2 >= c->cap)
        grow(c);
    slot_t *s = find(c, id);
    if (s->client_id)
        return s->prefs;
    prefs_row_t row;
    int rc = prefs_repo_get(db, kr, id, &row, err);
    if (rc != PREFS_OK && rc != PREFS_NOT_FOUND)
        return NULL;
    s->client_id = xstrdup(id);
    s->prefs = rc == PREFS_OK ? prefs_policy_shape(&row) : cJSON_CreateObject();
    if (rc == PREFS_OK)
        prefs_row_free(&row);
    c->n++;
    return s->prefs;
}

static void clients_free(clients_t *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        free(c->slots[i].client_id);
        cJSON_Delete(c->slots[i].prefs);
    }
    free(c->slots);
}

/* The client as the policy saw them for this message. */
static cJSON *who_of(const cJSON *prefs, const fe_keyring_t *kr, const whatif_row_t *w)
{
    cJSON *who = cJSON_Duplicate(prefs, true);
    char *plain = NULL;
    size_t n = 0;
    hd_err_t err;
    if (w->recipient_enc && fe_decrypt(kr, "recipient", w->recipient_enc, &plain, &n, &err) == 0) {
        cJSON *over = cJSON_ParseWithLength(plain, n);
        recipient_merge(who, over);
        cJSON_Delete(over);
        free(plain);
    }
    return who;
}

/* ---- one policy's tally ---- */

typedef struct tally {
    long channels[TR_NCHANNELS + 1]; /* the last: none */
    long hours[24];
    long quiet, digests, refusals, errors;
    char first_error[520];
} tally_t;

static int minutes_of(const char *hhmm)
{
    int h, m;
    return hhmm && sscanf(hhmm, "%d:%d", &h, &m) == 2 && h >= 0 && h < 24 && m >= 0 && m < 60
               ? h * 60 + m
               : -1;
}

/* Whether the local time t (in the decision's zone) is inside the client's
 * own quiet hours; *hour gets the local hour. */
static bool in_quiet_hours(const cJSON *who, const policy_decision_t *d, int *hour)
{
    const cJSON *zone = cJSON_GetObjectItemCaseSensitive(d->doc, "timezone");
    hd_err_t err;
    const tz_zone_t *z = tz_get(cJSON_IsString(zone) ? zone->valuestring : "UTC", &err);
    if (z == NULL)
        z = tz_get("UTC", &err);
    tz_local_t lt;
    tz_to_local(z, d->send_at, &lt);
    *hour = lt.hour;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(who, "quiet_hours");
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(q, "start");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(q, "end");
    int s = minutes_of(cJSON_IsString(qs) ? qs->valuestring : NULL);
    int e = minutes_of(cJSON_IsString(qe) ? qe->valuestring : NULL);
    if (s < 0 || e < 0 || s == e)
        return false;
    int m = lt.hour * 60 + lt.min;
    return s < e ? m >= s && m < e : m >= s || m < e;
}

static void count(tally_t *t, const cJSON *who, const policy_decision_t *d)
{
    if (d->nchain == 0) {
        t->channels[TR_NCHANNELS]++;
        t->refusals++;
        return;
    }
    t->channels[d->chain[0]]++;
    int hour = 0;
    if (in_quiet_hours(who, d, &hour))
        t->quiet++;
    t->hours[hour]++;
    if (d->batch)
        t->digests++;
}

static cJSON *tally_json(const tally_t *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ch = cJSON_AddObjectToObject(o, "channels");
    for (int i = 0; i < TR_NCHANNELS; i++)
        cJSON_AddNumberToObject(ch, tr_channel_name((tr_channel_t)i), (double)t->channels[i]);
    cJSON_AddNumberToObject(ch, "none", (double)t->channels[TR_NCHANNELS]);
    cJSON *h = cJSON_AddArrayToObject(o, "send_hour");
    for (int i = 0; i < 24; i++)
        cJSON_AddItemToArray(h, cJSON_CreateNumber((double)t->hours[i]));
    cJSON_AddNumberToObject(o, "quiet_hours", (double)t->quiet);
    cJSON_AddNumberToObject(o, "digests", (double)t->digests);
    cJSON_AddNumberToObject(o, "refusals", (double)t->refusals);
    cJSON_AddNumberToObject(o, "errors", (double)t->errors);
    if (t->first_error[0])
        cJSON_AddStringToObject(o, "first_error", t->first_error);
    return o;
}

/* ---- the most changed decisions ---- */

typedef struct change {
    double score;
    whatif_row_t row; /* owned copies */
} change_t;

static double score_of(const policy_decision_t *a, const policy_decision_t *b)
{
    bool ca = a->nchain > 0, cb = b->nchain > 0;
    double shift = fabs((double)(b->send_at - a->send_at));
    if (ca != cb || (ca && a->chain[0] != b->chain[0]))
        return 1e12 + shift; /* another channel (or none) first */
    if (a->batch != b->batch)
        return 1e11 + shift;
    return shift;
}

static void keep(change_t *top, int cap, int *n, double score, const whatif_row_t *w)
{
    if (score <= 0 || cap <= 0 || (*n == cap && score <= top[*n - 1].score))
        return;
    int i = *n < cap ? (*n)++ : cap - 1;
    if (i == cap - 1 && top[i].row.client_id)
        whatif_rows_free(&top[i].row, 1);
    for (; i > 0 && top[i - 1].score < score; i--)
        top[i] = top[i - 1];
    top[i].score = score;
    top[i].row = *w;
    top[i].row.client_id = xstrdup(w->client_id);
    top[i].row.message_type = xstrdup(w->message_type);
    top[i].row.urgency = xstrdup(w->urgency);
    top[i].row.recipient_enc = w->recipient_enc ? xstrdup(w->recipient_enc) : NULL;
}

static int decide(lrt_t *rt, const whatif_row_t *w, const cJSON *who, policy_decision_t *d,
                  hd_err_t *err)
{
    policy_request_t rq = {
        .message_type = w->message_type, .urgency = w->urgency, .client_id = w->client_id};
    return policy_decide(rt, &rq, who, (int64_t)w->created_at, d, err);
}

static cJSON *side_json(lrt_t *rt, const whatif_row_t *w, const cJSON *who)
{
    cJSON *o = cJSON_CreateObject();
    policy_decision_t d;
    hd_err_t err;
    if (decide(rt, w, who, &d, &err) != 0) {
        cJSON_AddStringToObject(o, "error", err.msg);
        return o;
    }
    if (d.nchain)
        cJSON_AddStringToObject(o, "channel", tr_channel_name(d.chain[0]));
    else
        cJSON_AddNullToObject(o, "channel");
    cJSON *j = policy_decision_json(&d);
    cJSON_AddItemToObject(o, "send_at", cJSON_DetachItemFromObjectCaseSensitive(j, "send_at"));
    cJSON_Delete(j);
    cJSON_AddBoolToObject(o, "batch", d.batch);
    char *text = NULL;
    if (policy_explain(rt, &d, &text, &err) == 0)
        cJSON_AddStringToObject(o, "explanation", text);
    free(text);
    policy_decision_free(&d);
    return o;
}

/* ---- the run ---- */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void failed(tally_t *t, const hd_err_t *err)
{
    t->errors++;
    if (!t->first_error[0])
        snprintf(t->first_error, sizeof(t->first_error), "%s", err->msg);
}

cJSON *whatif_run(pg_pool_t *db, const fe_keyring_t *kr, lrt_t *live, lrt_t *edited,
                  const whatif_opts_t *o, hd_err_t *err)
{
    double t0 = mono();
    clients_t clients = {0};
    grow(&clients);
    tally_t tl, te;
    memset(&tl, 0, sizeof(tl));
    memset(&te, 0, sizeof(te));
    int cap = o->top > 0 ? o->top : 0, ntop = 0;
    change_t *top = xcalloc((size_t)cap + 1, sizeof(change_t));
    whatif_row_t *rows = xcalloc(WHATIF_PAGE, sizeof(whatif_row_t));
    char after_text[48] = "", after_id[40] = "";
    long messages = 0, changed = 0;
    int rc = 0;
    for (;;) {
        int n = 0;
        if ((rc = whatif_page(db, o->from, o->to, after_text, after_id, rows, &n, err)) != 0)
            break;
        for (int i = 0; i < n; i++) {
            const whatif_row_t *w = &rows[i];
            const cJSON *prefs = prefs_of(&clients, db, kr, w->client_id, err);
            if (prefs == NULL) {
                rc = -1;
                break;
            }
            cJSON *who = who_of(prefs, kr, w);
            policy_decision_t a, b;
            hd_err_t e1, e2;
            int ra = decide(live, w, who, &a, &e1), rb = decide(edited, w, who, &b, &e2);
            if (ra == 0)
                count(&tl, who, &a);
            else
                failed(&tl, &e1);
            if (rb == 0)
                count(&te, who, &b);
            else
                failed(&te, &e2);
            if (ra == 0 && rb == 0) {
                double s = score_of(&a, &b);
                if (s > 0) {
                    changed++;
                    keep(top, cap, &ntop, s, w);
                }
            }
            if (ra == 0)
                policy_decision_free(&a);
            if (rb == 0)
                policy_decision_free(&b);
            cJSON_Delete(who);
            messages++;
        }
        if (n > 0) {
            snprintf(after_text, sizeof(after_text), "%s", rows[n - 1].created_text);
            snprintf(after_id, sizeof(after_id), "%s", rows[n - 1].id);
        }
        whatif_rows_free(rows, n);
        if (rc != 0 || n < WHATIF_PAGE)
            break;
    }
    free(rows);
    cJSON *doc = NULL;
    if (rc == 0) {
        doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "from", (double)o->from);
        cJSON_AddNumberToObject(doc, "to", (double)o->to);
        cJSON_AddNumberToObject(doc, "messages", (double)messages);
        cJSON_AddNumberToObject(doc, "clients", (double)clients.n);
        cJSON_AddItemToObject(doc, "live", tally_json(&tl));
        cJSON_AddItemToObject(doc, "edited", tally_json(&te));
        cJSON_AddNumberToObject(doc, "changed", (double)changed);
        cJSON *list = cJSON_AddArrayToObject(doc, "top");
        for (int i = 0; i < ntop; i++) {
            const whatif_row_t *w = &top[i].row;
            const cJSON *prefs = prefs_of(&clients, db, kr, w->client_id, err);
            if (prefs == NULL)
                continue; /* read once already: cannot fail again but by the database */
            cJSON *who = who_of(prefs, kr, w);
            cJSON *item = cJSON_CreateObject();
            cJSON_AddStringToObject(item, "id", w->id);
            cJSON_AddStringToObject(item, "client_id", w->client_id);
            cJSON_AddStringToObject(item, "message_type", w->message_type);
            cJSON_AddStringToObject(item, "urgency", w->urgency);
            cJSON_AddStringToObject(item, "accepted_at", w->created_text);
            cJSON *l = side_json(live, w, who), *e = side_json(edited, w, who);
            cJSON_AddItemToObject(item, "live", l);
            cJSON_AddItemToObject(item, "edited", e);
            cJSON_AddNumberToObject(item, "shift_s", fmod(top[i].score, 1e11));
            cJSON_AddItemToArray(list, item);
            cJSON_Delete(who);
        }
        cJSON_AddNumberToObject(doc, "seconds", round((mono() - t0) * 1000) / 1000);
    }
    for (int i = 0; i < ntop; i++)
        whatif_rows_free(&top[i].row, 1);
    free(top);
    clients_free(&clients);
    return doc;
}
