/*
 * dispatch.c - what a worker does with each claimed job before anything
 * goes to a provider (see dispatch.h): a send is checked against the client
 * as they are now (strategy.refusal, the whole consent rule, and the moment
 * strategy.decide gives now), rendered, and tracked; timers, parked
 * receipts and alerts go to their own modules. Uses engine/recipient,
 * engine/policy, store/repo_comms and the transport's message type.
 */
#include "engine/dispatch.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/codec.h"
#include "engine/alert.h"
#include "engine/ops.h"
#include "engine/outcome.h"
#include "engine/policy.h"
#include "engine/receipt.h"
#include "engine/recipient.h"
#include "engine/suppress.h"
#include "engine/worker.h"
#include "store/repo_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *json_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Whether the policy, asked again now with the client as they are now
 * (strategy.when: decide's send time, without the channel chain), puts the
 * message later than a minute from now; *until and why say when and why.
 * Critical messages are never held back; low ones wait for the digest time
 * they were given (asked again just after it, the policy would name
 * tomorrow's). -1: the policy could not answer. */
static int still_later(app_t *app, const comm_job_t *j, const cJSON *who, int64_t *until, char *why,
                       size_t whyn)
{
    if (j->urgency && (strcmp(j->urgency, "critical") == 0 || strcmp(j->urgency, "low") == 0))
        return 0;
    int64_t now = (int64_t)time(NULL);
    policy_request_t rq = {.message_type = j->message_type, .urgency = j->urgency};
    int64_t at = 0;
    char *text = NULL;
    hd_err_t err;
    if (policy_when(app->policy, &rq, who, now, &at, &text, &err) != 0) {
        log_error("strategy.when failed at send time; the message waits for a fixed policy",
                  "comm_id", j->comm_id, "error", err.msg);
        return -1;
    }
    int later = 0;
    if (at > now + 60) {
        later = 1;
        *until = at;
        snprintf(why, whyn, "not now: %s", text);
    }
    free(text);
    return later;
}

/* Fills ctx.items for a digest: the messages it carries, each with the
 * subject its own email would have had (in the client's locale). */
static int digest_context(app_t *app, const comm_job_t *j, cJSON *ctx, const char *locale,
                          hd_err_t *err)
{
    cJSON *members = comms_gather_digest(app->db, app->keyring, j, err);
    if (members == NULL)
        return -1;
    cJSON *items = cJSON_AddArrayToObject(ctx, "items");
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        cJSON *mctx = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m, "context"), true);
        /* what render_context gives every message: the greeting, the plan */
        static const char *const given[] = {"client_name", "plan_id"};
        for (size_t g = 0; g < sizeof(given) / sizeof(given[0]); g++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(ctx, given[g]);
            if (cJSON_IsString(v) && !cJSON_GetObjectItemCaseSensitive(mctx, given[g]))
                cJSON_AddStringToObject(mctx, given[g], v->valuestring);
        }
        const char *type = json_str(m, "message_type");
        policy_content_t c;
        hd_err_t rerr;
        cJSON *item = cJSON_CreateObject();
        bool rendered = policy_render(app->policy, type, TR_EMAIL, mctx, locale, &c, &rerr) == 0;
        cJSON_AddStringToObject(item, "subject", rendered && c.subject ? c.subject : type);
        cJSON_AddStringToObject(item, "message_type", type);
        cJSON_AddItemToArray(items, item);
        if (rendered)
            policy_content_free(&c);
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
 * unsubscribe page stays a direct link. days: the links' life. */
static char *tracked_html(app_t *app, comm_job_t *j, const char *html, double days)
{
    buf_t base, skip;
    buf_init(&base);
    buf_init(&skip);
    buf_puts(&base, app->cfg->public_url);
    while (base.len && base.data[base.len - 1] == '/')
        base.data[--base.len] = '\0';
    buf_printf(&skip, "%s/u/", base.data);
    free(j->tracked_links);
    char *t = track_rewrite_html(&app->track.keys[0], html, base.data, j->comm_id,
                                 (int64_t)time(NULL) + (int64_t)(days * 86400), skip.data,
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
    hd_err_t err;
    if (j->channel_index < 0 || j->channel_index + 1 >= n) {
        comms_drop(app->db, j, "no-receipt timer without a next channel", &err);
        return;
    }
    const char *ch = tr_channel_name(chain[j->channel_index]);
    char why[200];
    snprintf(why, sizeof(why), "no delivery receipt on %s in time; trying %s", ch,
             tr_channel_name(chain[j->channel_index + 1]));
    bool fired = false;
    if (comms_fire_no_receipt(app->db, j, ch, why, &fired, &err) != 0) {
        log_warn("cannot act on a no-receipt timer; its lease brings it back", "comm_id",
                 j->comm_id, "reason", err.msg);
        return;
    }
    if (fired) {
        metrics_fallback(app->metrics, "no_receipt");
        engine_wake(app);
    }
}

/* The channel in hand does not carry the message: refused (the policy's
 * consent rule said no) or unusable (no address, it does not render). The
 * next channel; on the last, the end: suppressed when every channel was
 * refused (the client's wish, no alert), else the failure and its alert. */
static void skip_channel(app_t *app, comm_job_t *j, tr_channel_t ch, bool refused, bool last,
                         const char *why)
{
    hd_err_t err;
    char targets[32];
    alert_targets(app, targets, sizeof(targets));
    comm_skip_end_t end;
    if (comms_skip(app->db, j, tr_channel_name(ch), why, refused, last, targets, &end, &err) != 0)
        return;
    switch (end) {
    case SKIP_SUPPRESSED:
        metrics_comm(app->metrics, tr_channel_name(ch), "suppressed", j->message_type);
        log_info("every channel was refused; the message is suppressed", "comm_id", j->comm_id,
                 "reason", why);
        break;
    case SKIP_FAILED:
        metrics_comm(app->metrics, tr_channel_name(ch), "failed", j->message_type);
        alert_raised(app, j, "unusable", why);
        break;
    case SKIP_NEXT:
        metrics_fallback(app->metrics, "unusable");
        engine_wake(app);
        break;
    case SKIP_SETTLED:
        break;
    }
}

/* The message's own unsubscribe page, public_url/u/{token}: a token of kind
 * 'u' (engine/tracking.h) for this message, signed with the current key and
 * never expiring. Caller frees; NULL when it cannot be signed. */
static char *unsubscribe_url(app_t *app, const comm_job_t *j)
{
    char *token = track_token(&app->track.keys[0], 'u', j->comm_id, 0, INT64_MAX, NULL);
    if (token == NULL)
        return NULL;
    buf_t u;
    buf_init(&u);
    buf_puts(&u, app->cfg->public_url);
    while (u.len && u.data[u.len - 1] == '/')
        u.data[--u.len] = '\0';
    buf_printf(&u, "/u/%s", token);
    free(token);
    return u.data;
}

/* The context a template sees: the request's, the client's name for
 * greetings and the plan id; for a digest, the items it carries; for email,
 * the message's unsubscribe link (unsub, replacing any the request gave). */
static cJSON *render_context(app_t *app, comm_job_t *j, const cJSON *who, const char *unsub,
                             const char **type, hd_err_t *err)
{
    if (j->context_unreadable) {
        /* its key left the keyring: never render without the context */
        hd_err_set(err, "the stored context does not decrypt (see herald check)");
        return NULL;
    }
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
    /* the A/B arm recorded at acceptance: content.render reads its subject */
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "experiment");
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "variant");
    if (j->experiment && j->variant) {
        cJSON_AddStringToObject(ctx, "experiment", j->experiment);
        cJSON_AddStringToObject(ctx, "variant", j->variant);
    }
    if (unsub) {
        cJSON_DeleteItemFromObjectCaseSensitive(ctx, "unsubscribe_url");
        cJSON_AddStringToObject(ctx, "unsubscribe_url", unsub);
    }
    *type = j->message_type;
    if (j->batch) {
        /* The day's low-urgency messages of this client go as one digest. */
        if (digest_context(app, j, ctx, json_str(who, "locale"), err) != 0) {
            cJSON_Delete(ctx);
            return NULL;
        }
        *type = "digest";
    }
    return ctx;
}

static tr_message_t *message_of(app_t *app, comm_job_t *j, tr_channel_t ch, const char *addr,
                                const char *name, char *unsub, policy_content_t *c)
{
    tr_message_t *m = tr_message_new();
    m->channel = ch;
    m->comm_id = xstrdup(j->comm_id);
    m->attempt = j->attempt + 1;
    m->to = xstrdup(addr);
    if (name)
        m->to_name = xstrdup(name);
    if (ch == TR_EMAIL && j->payload_json)
        attach(m, j->payload_json);
    /* List-Unsubscribe and its one-click POST: RFC 8058 wants https, so a
     * plain-http public_url (development) keeps only the footer link */
    /* the mailto (settings.unsubscribe_mailto) carries the link's token in
     * its subject, so whoever reads that mailbox knows whose request it is */
    const char *token = unsub ? strstr(unsub, "/u/") : NULL;
    if (ch == TR_EMAIL && c->unsubscribe && c->unsubscribe_mailto && token) {
        m->unsubscribe_mailto = xstrdup(c->unsubscribe_mailto);
        size_t n = strlen("unsubscribe-") + strlen(token + 3) + 1;
        m->unsubscribe_subject = xcalloc(n, 1);
        snprintf(m->unsubscribe_subject, n, "unsubscribe-%s", token + 3);
    }
    if (ch == TR_EMAIL && c->unsubscribe && unsub && strncmp(unsub, "https://", 8) == 0)
        m->unsubscribe_url = unsub;
    else
        free(unsub);
    m->subject = c->subject;
    m->text = c->text;
    m->locale = c->locale;
    if (c->html && ch == TR_EMAIL) {
        /* a javascript:, data: or other scheme from a context never becomes
         * a link a client can click, tracked or not */
        int dropped = 0;
        char *safe = track_safe_links(c->html, &dropped);
        free(c->html);
        c->html = safe;
        if (dropped > 0) {
            char why[160];
            hd_err_t err;
            snprintf(why, sizeof(why),
                     "%d link(s) with a scheme other than http, https, mailto or tel were not "
                     "rendered as links",
                     dropped);
            comms_event(app->db, j, "link_dropped", why, &err);
        }
    }
    if (c->html && ch == TR_EMAIL && c->track) {
        m->html = tracked_html(app, j, c->html, c->track_days);
        free(c->html);
    } else {
        m->html = c->html;
    }
    c->subject = c->text = c->html = c->locale = NULL; /* the message owns them now */
    policy_content_free(c);
    return m;
}

/* A send job: 1 with *out ready, 0 settled here, -1 left to its lease. */
/* The client as the claim saw them: a cached copy of their preferences
 * counts only at the version the claim read (a cache write lost while Redis
 * stalled must not bring back an opt-out's old row). NULL (logged unless
 * quiet) when they cannot be read. */
static cJSON *recipient_of(app_t *app, const comm_job_t *j, bool quiet)
{
    hd_err_t err;
    prefs_version_t current = {.exists = j->has_prefs, .version = j->prefs_version};
    cJSON *who = recipient_load(app, j->client_id, &current, j->recipient_enc, &err);
    if (who == NULL && !quiet)
        log_error("cannot load the recipient; the job will be retried after its lease", "comm_id",
                  j->comm_id, "reason", err.msg);
    return who;
}

/* recipient_of with the address's suppressions (bounces, STOPs,
 * unsubscribes) and inbound facts, for strategy.refusal; no answer: never
 * send without them (NULL, logged). */
static cJSON *load_who(app_t *app, const comm_job_t *j, hd_err_t *err)
{
    cJSON *who = recipient_of(app, j, false);
    if (who != NULL && suppress_facts(app, who, err) != 0) {
        log_error("cannot read the suppression list; the job will be retried after its lease",
                  "comm_id", j->comm_id, "reason", err->msg);
        cJSON_Delete(who);
        return NULL;
    }
    return who;
}

void dispatch_prefetch(app_t *app, comm_job_t *jobs, int n)
{
    cJSON *who[SUPPRESS_MANY_MAX] = {NULL};
    int m = n < SUPPRESS_MANY_MAX ? n : SUPPRESS_MANY_MAX, loaded = 0;
    for (int i = 0; i < m; i++)
        if (strcmp(jobs[i].kind, "send") == 0 &&
            (who[i] = recipient_of(app, &jobs[i], true)) != NULL)
            loaded++;
    hd_err_t err;
    if (loaded > 0 && suppress_facts_many(app, who, m, &err) != 0) {
        /* each job reads its own again, and says so if it still cannot */
        log_warn("cannot read the suppression list for a batch; reading it message by message",
                 "reason", err.msg);
        loaded = 0;
    }
    for (int i = 0; i < m; i++) {
        if (loaded > 0)
            jobs[i].who = who[i];
        else
            cJSON_Delete(who[i]);
    }
}

static int dispatch_send(app_t *app, comm_job_t *j, tr_message_t **out)
{
    hd_err_t err;
    if (strcmp(j->status, "scheduled") && strcmp(j->status, "queued") &&
        strcmp(j->status, "sending") && !(j->resend && strcmp(j->status, "sent") == 0)) {
        /* cancelled, settled, or already with the provider (an early
         * receipt said so): the job has nothing left to do */
        char why[80];
        snprintf(why, sizeof(why), "nothing to send: the message is %s", j->status);
        comms_drop(app->db, j, why, &err);
        return 0;
    }
    if (strcmp(j->status, "sending") == 0 && j->recovered)
        /* Claimed again after a lease ran out: the process that had it
         * died mid-send. Say so in the record, then send again. */
        comms_event(app->db, j, "recovered",
                    "claimed again after a lease expired; the previous attempt may have been "
                    "sent",
                    &err);
    tr_channel_t chain[TR_NCHANNELS];
    int n = engine_split_channels(j->channels_csv, chain);
    if (j->channel_index >= n) {
        char targets[32];
        alert_targets(app, targets, sizeof(targets));
        comm_skip_end_t end;
        comms_skip(app->db, j, NULL, "no channel left in the chain", false, true, targets, &end,
                   &err);
        return 0;
    }
    tr_channel_t ch = chain[j->channel_index];
    bool last = j->channel_index == n - 1;
    /* An operator paused the channel (the console's pause()): the job
     * waits, nothing is attempted, nothing is lost. */
    char paused_by[96];
    if (ops_channel_paused(app, ch, paused_by, sizeof(paused_by))) {
        ops_hold_job(app, j, ch, paused_by);
        return 0;
    }
    /* Claimed while the channel was paused, and it was resumed since: the
     * held jobs are due again, and this one goes back among them, so the
     * most urgent go first, not the ones a claim took during the pause. */
    if (ops_resumed_since(app, ch, j->claimed_at)) {
        if (jobs_wait(app->db, j, 0, &err) != 0)
            log_warn("cannot put back a job claimed before its channel resumed; it is sent now",
                     "comm_id", j->comm_id, "reason", err.msg);
        else
            return 0;
    }
    /* The recipient and its suppression facts, read for the whole claim
     * (dispatch_prefetch) or, when that could not, here. */
    cJSON *who = j->who;
    j->who = NULL;
    if (who == NULL && (who = load_who(app, j, &err)) == NULL)
        return -1;
    /* Consent is checked again at every attempt, and it is the policy's
     * rule alone: C obeys. No answer: never send without it; the lease
     * brings the job back and health shows the script error meanwhile. */
    char *refusal = NULL;
    if (policy_refusal(app->policy, ch, who, &refusal, &err) != 0) {
        log_error("strategy.refusal failed; the message waits for its lease and a fixed policy",
                  "comm_id", j->comm_id, "channel", tr_channel_name(ch), "error", err.msg);
        cJSON_Delete(who);
        return -1;
    }
    if (refusal) {
        char why[300];
        snprintf(why, sizeof(why), "%s: %s", tr_channel_name(ch), refusal);
        free(refusal);
        skip_channel(app, j, ch, true, last, why);
        cJSON_Delete(who);
        return 0;
    }
    /* The address the channel sends to: what the policy allowed it with. */
    const char *addr = ch == TR_EMAIL ? json_str(who, "email") : json_str(who, "phone");
    if (addr == NULL) {
        skip_channel(app, j, ch, false, last,
                     ch == TR_EMAIL ? "email: no email address" : "sms/whatsapp: no phone number");
        cJSON_Delete(who);
        return 0;
    }
    /* The moment is checked again too: a retry or a fallback that comes due
     * inside the client's quiet hours (or outside business hours for
     * normal urgency) waits for the time the policy gives now. */
    int64_t later = 0;
    char why_later[300] = "";
    int lr = still_later(app, j, who, &later, why_later, sizeof(why_later));
    if (lr != 0) {
        if (lr > 0)
            comms_defer(app->db, j, later, why_later, &err);
        cJSON_Delete(who);
        return lr > 0 ? 0 : -1;
    }
    const char *type;
    char *unsub = ch == TR_EMAIL ? unsubscribe_url(app, j) : NULL;
    cJSON *ctx = render_context(app, j, who, unsub, &type, &err);
    if (ctx == NULL) {
        free(unsub);
        log_error("cannot build the render context; the lease brings it back", "comm_id",
                  j->comm_id, "reason", err.msg);
        cJSON_Delete(who);
        return -1;
    }
    policy_content_t c;
    int rc = policy_render(app->policy, type, ch, ctx, json_str(who, "locale"), &c, &err);
    /* WhatsApp: the rendered text, or the approved template outside the
     * client's 24-hour window (whatsapp.choose, from the facts in who) */
    policy_whatsapp_t wa;
    memset(&wa, 0, sizeof(wa));
    if (rc == 0 && ch == TR_WHATSAPP) {
        rc = policy_whatsapp(app->policy, type, ctx, who, (int64_t)time(NULL), &wa, &err);
        if (rc != 0)
            policy_content_free(&c);
    }
    cJSON_Delete(ctx);
    if (rc == LRT_TRIPPED) {
        /* out of time, not a broken template: the lease brings it back */
        log_warn("render ran out of its budget; the message is tried again after its lease",
                 "comm_id", j->comm_id, "channel", tr_channel_name(ch), "error", err.msg);
        cJSON_Delete(who);
        free(unsub);
        return -1;
    }
    if (rc != 0) {
        /* A template error is the policy's: this channel cannot render. */
        char why[600];
        snprintf(why, sizeof(why), "render failed: %s", err.msg);
        log_error("render failed", "comm_id", j->comm_id, "channel", tr_channel_name(ch), "error",
                  err.msg);
        skip_channel(app, j, ch, false, last, why);
        cJSON_Delete(who);
        free(unsub);
        return 0;
    }
    if (c.locale_fallback) {
        /* not in the client's language: the policy's reason, on the record */
        char why[400];
        snprintf(why, sizeof(why), "%s: %s", tr_channel_name(ch), c.locale_fallback);
        comms_event(app->db, j, "locale_fallback", why, &err);
    }
    *out = message_of(app, j, ch, addr, json_str(who, "name"), unsub, &c);
    if (ch == TR_WHATSAPP) {
        if (wa.template_) {
            (*out)->wa_template = wa.name;
            (*out)->wa_language = wa.language;
            (*out)->wa_components = wa.components;
            wa.name = wa.language = wa.components = NULL;
        }
        comms_event(app->db, j, wa.template_ ? "whatsapp_template" : "whatsapp_text", wa.reason,
                    &err);
        policy_whatsapp_free(&wa);
    }
    cJSON_Delete(who);
    return 1;
}

int dispatch_job(app_t *app, comm_job_t *j, tr_message_t **out)
{
    *out = NULL;
    if (strcmp(j->kind, "no_receipt") == 0) {
        fire_no_receipt(app, j);
        return 0;
    }
    if (strcmp(j->kind, "receipt") == 0) {
        receipt_run_parked(app, j);
        return 0;
    }
    if (strcmp(j->kind, "alert") == 0)
        return alert_prepare(app, j, out);
    return dispatch_send(app, j, out);
}
