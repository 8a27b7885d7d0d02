/*
 * outcome.c - what a send came to, written down (see outcome.h): the
 * classification and the policy's answer, the record in the database (a
 * batch of plain sends is one statement), the metrics, the alert when a
 * chain is used up, and the no-receipt timer a sent message may get.
 */
#include "engine/outcome.h"
#include "engine/inbound.h"
#include "engine/pace.h"
#include "engine/suppress.h"
#include "base/log.h"
#include "base/utf8.h"
#include "engine/alert.h"
#include "engine/policy.h"
#include "engine/worker.h"
#include "store/repo_jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Splits "email,sms" into channels; returns the count. */
int engine_split_channels(const char *csv, tr_channel_t out[TR_NCHANNELS])
{
    int n = 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", csv ? csv : "");
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t && n < TR_NCHANNELS;
         t = strtok_r(NULL, ",", &save)) {
        tr_channel_t c;
        if (tr_channel_parse(t, &c) == 0)
            out[n++] = c;
    }
    return n;
}

static const char *provider_of(tr_channel_t ch, const tr_result_t *r)
{
    if (strncmp(r->provider_id, "outbox:", 7) == 0 || strcmp(r->kind, "local") == 0 ||
        strcmp(r->kind, "io") == 0)
        return strcmp(r->kind, "local") == 0 && !r->ok ? "engine" : "outbox";
    return ch == TR_EMAIL ? "smtp" : ch == TR_SMS ? "twilio" : "whatsapp";
}

/* retry.no_receipt(type, urgency, channel): seconds to wait for a delivery
 * receipt before the next channel, or 0 (no timer, or no next channel). */
static double no_receipt_after(app_t *app, const comm_job_t *j, tr_channel_t ch)
{
    tr_channel_t chain[TR_NCHANNELS];
    if (j->channel_index + 1 >= engine_split_channels(j->channels_csv, chain))
        return 0;
    hd_err_t err;
    double s = 0;
    if (policy_no_receipt(app->policy, j->message_type, j->urgency, ch, &s, &err) != 0)
        log_error("retry.no_receipt failed; no receipt timer for this message", "comm_id",
                  j->comm_id, "error", err.msg);
    return s;
}

void outcome_after_failure(app_t *app, tr_channel_t channel, int attempt_no, int channel_index,
                           int chain_len, const tr_result_t *res, outcome_next_t *out)
{
    memset(out, 0, sizeof(*out));
    out->may_have_been_sent = res->request_sent;
    hd_err_t err;
    policy_class_t cls;
    policy_step_t step;
    if (policy_classify(app->policy, channel, res, &cls, &err) != 0 ||
        (policy_retry(app->policy, &cls, attempt_no, &step, &err) != 0 &&
         (policy_class_free(&cls), true))) {
        /* No answer: nothing is assumed. The attempt is recorded and the
         * message waits, as a lease would have made it, for a policy that
         * can answer (health and the event name the script error). */
        out->outcome = OUTCOME_HELD;
        out->delay_s = app->cfg->lease_s;
        snprintf(out->error, sizeof(out->error), "%s", err.msg);
        return;
    }
    snprintf(out->category, sizeof(out->category), "%s", cls.category);
    out->may_have_been_sent = cls.may_have_been_sent;
    const cJSON *sup = cJSON_GetObjectItemCaseSensitive(cls.doc, "suppress");
    if (cJSON_IsString(sup))
        snprintf(out->suppress, sizeof(out->suppress), "%s", sup->valuestring);
    out->window_closed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cls.doc, "window_closed"));
    policy_class_free(&cls);
    out->outcome = step.action == POLICY_RETRY          ? OUTCOME_RETRY
                   : step.action == POLICY_NEXT_CHANNEL ? OUTCOME_NEXT
                                                        : OUTCOME_FAILED;
    out->delay_s = step.delay_s;
    if (out->outcome == OUTCOME_NEXT && channel_index + 1 >= chain_len)
        out->outcome = OUTCOME_FAILED;
}

/* Classifies an outcome and asks the policy what comes next (Lua, this
 * thread's state); nothing is written yet. */
void outcome_prepare(app_t *app, comm_job_t *j, tr_message_t *msg, tr_result_t *res,
                     outcome_rec_t *rc)
{
    /* The provider's words go into text columns: a reply cut mid-character
     * by its buffer, or in a stray 8-bit charset, must not cost the record
     * of a send that happened (PostgreSQL refuses invalid UTF-8). */
    utf8_scrub(res->text);
    utf8_scrub(res->provider_id);
    utf8_scrub(res->provider_code);
    utf8_scrub(res->provider_subcode);
    utf8_scrub(res->enhanced_code);
    const tr_result_t *r = res;
    memset(rc, 0, sizeof(*rc));
    rc->r.job = j;
    rc->res = res;
    if (strcmp(j->kind, "alert") == 0) {
        rc->alert = true; /* written by alert_outcome: not an attempt of the message */
        return;
    }
    if (r->smtp_code)
        snprintf(rc->code, sizeof(rc->code), "%d%s%s", r->smtp_code, r->enhanced_code[0] ? " " : "",
                 r->enhanced_code);
    else if (r->provider_code[0])
        snprintf(rc->code, sizeof(rc->code), "%s", r->provider_code);
    else if (r->http_status)
        snprintf(rc->code, sizeof(rc->code), "%d", r->http_status);
    else if (r->network_error[0])
        snprintf(rc->code, sizeof(rc->code), "%s", r->network_error);
    else if (r->io_error[0])
        snprintf(rc->code, sizeof(rc->code), "%s", r->io_error);
    rc->r.outcome = OUTCOME_SENT;
    bool mhbs = r->ok;
    if (r->ok && !j->batch)
        rc->no_receipt_s = no_receipt_after(app, j, msg->channel);
    if (!r->ok) {
        tr_channel_t chain[TR_NCHANNELS];
        int len = engine_split_channels(j->channels_csv, chain);
        outcome_next_t next;
        outcome_after_failure(app, msg->channel, j->attempt + 1, j->channel_index, len, r, &next);
        rc->r.outcome = next.outcome;
        rc->r.delay_s = next.delay_s;
        mhbs = next.may_have_been_sent;
        snprintf(rc->category, sizeof(rc->category), "%s", next.category);
        if (next.suppress[0])
            suppress_address(app, msg->channel, msg->to, next.suppress, j->comm_id);
        /* the provider asked us to slow down: its buckets' rates drop */
        if (strcmp(next.category, "rate_limit") == 0)
            pace_slow_down(app, msg->channel, j);
        /* before the retry is recorded: its attempt must see the closed window */
        if (next.window_closed)
            inbound_window_closed_for(app, msg->channel, msg->to, j->comm_id);
        if (next.outcome == OUTCOME_HELD) {
            snprintf(rc->held, sizeof(rc->held), "the policy cannot say what comes next: %.500s",
                     next.error);
            log_error("the policy cannot say what follows a failed attempt; the message waits",
                      "comm_id", j->comm_id, "error", next.error);
        }
    }
    cJSON *details = tr_result_to_json(r);
    if (msg->locale) /* what the client read it in (content.render's choice) */
        cJSON_AddStringToObject(details, "locale", msg->locale);
    rc->details = cJSON_PrintUnformatted(details);
    cJSON_Delete(details);
    rc->reason = r->text;
    rc->r.a = (comm_attempt_t){
        .channel = tr_channel_name(msg->channel),
        .provider = provider_of(msg->channel, r),
        .provider_id = r->provider_id[0] ? r->provider_id : NULL,
        .raw_code = rc->code[0] ? rc->code : NULL,
        .message = r->text,
        .category = r->ok || rc->category[0] == '\0' ? NULL : rc->category,
        .ok = r->ok,
        .may_have_been_sent = mhbs,
        .latency_ms = (int)r->latency_ms,
        .details_json = rc->details,
        .held_reason = rc->held,
    };
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Writes a list of outcomes in one transaction (a batch of plain sends is a
 * single statement); if that fails, one by one with retries: the sends
 * happened, and losing a record would send again after the lease. So the
 * retries go on, once a second, for as long as the lease surely still holds
 * the jobs (it is renewed every third of its length: half of it is safe),
 * and a database outage shorter than that sends nothing twice. A stopping
 * process gives up after five tries (about 6 s); the lease brings the jobs
 * back, marked "may have been sent". */
void outcome_write(app_t *app, outcome_rec_t *recs, int n)
{
    hd_err_t err;
    int64_t give_up = mono_ms() + (int64_t)app->cfg->lease_s * 1000 / 2;
    comm_record_t batch[OUTCOME_MAX];
    int nb = 0;
    for (int i = 0; i < n; i++) {
        if (recs[i].alert) {
            metrics_in_flight(app->metrics, -1);
            alert_outcome(app, (comm_job_t *)recs[i].r.job, recs[i].res);
        }
    }
    outcome_rec_t *sends[OUTCOME_MAX];
    for (int i = 0; i < n; i++)
        if (!recs[i].alert) {
            sends[nb] = &recs[i];
            batch[nb++] = recs[i].r;
        }
    char targets[32];
    alert_targets(app, targets, sizeof(targets));
    bool batched = comms_record_many(app->db, batch, nb, targets, &err) == 0;
    for (int i = 0; i < nb; i++) {
        comm_record_t *r = &batch[i];
        for (int tries = 0; !batched && r->result < 0; tries++) {
            /* the worker's own thread: the sends happened, their record
             * must not be lost to a database outage */
            if (tries >= 5 && (mono_ms() >= give_up || engine_stopping(app->engine)))
                break;
            if (tries)
                usleep(tries < 3 ? 200000u << tries : 1000000u);
            r->result = comms_record(app->db, r->job, &r->a, r->outcome, r->delay_s, targets, &err);
        }
        metrics_in_flight(app->metrics, -1);
        if (r->result < 0)
            log_error("cannot record an outcome; the lease will bring the job back", "comm_id",
                      r->job->comm_id, "reason", err.msg);
        if (r->result != 0)
            continue;
        const char *type = r->job->batch ? "digest" : r->job->message_type;
        outcome_rec_t *rec = sends[i];
        switch (r->outcome) {
        case OUTCOME_SENT:
            metrics_comm(app->metrics, r->a.channel, "sent", type);
            if (rec->no_receipt_s > 0 &&
                comms_arm_no_receipt(app->db, r->job, rec->no_receipt_s, &err) != 0)
                log_warn("cannot arm the no-receipt timer", "comm_id", r->job->comm_id, "reason",
                         err.msg);
            break;
        case OUTCOME_RETRY:
            metrics_retry(app->metrics, rec->category);
            break;
        case OUTCOME_NEXT:
            metrics_fallback(app->metrics, rec->category);
            break;
        case OUTCOME_FAILED:
            metrics_comm(app->metrics, r->a.channel, "failed", type);
            alert_raised(app, r->job, rec->category, rec->reason);
            break;
        case OUTCOME_HELD:
            break;
        }
    }
}
