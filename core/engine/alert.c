/*
 * alert.c - failure alerts as durable jobs (see alert.h). Uses the policy
 * (retry.alert), store/repo_jobs and the transport.
 */
#include "engine/alert.h"
#include "base/buf.h"
#include "base/log.h"
#include "engine/policy.h"
#include "engine/worker.h"
#include "store/repo_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool set(const char *s)
{
    return s != NULL && *s != '\0';
}

void alert_targets(const app_t *app, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", set(app->cfg->alert_url) ? "webhook" : "",
             set(app->cfg->alert_url) && set(app->cfg->alert_email) ? "," : "",
             set(app->cfg->alert_email) ? "email" : "");
}

void alert_raised(app_t *app, const comm_job_t *j, const char *category, const char *reason)
{
    log_crit("every channel failed; the message failed", "comm_id", j->comm_id, "client_id",
             j->client_id, "message_type", j->message_type, "category", category, "reason", reason);
    engine_wake(app);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int alert_prepare(app_t *app, comm_job_t *j, tr_message_t **out)
{
    *out = NULL;
    hd_err_t err;
    cJSON *p = cJSON_Parse(j->payload_json ? j->payload_json : "{}");
    const char *target = jstr(p, "target"), *category = jstr(p, "category");
    const char *reason = jstr(p, "reason");
    bool webhook = strcmp(target, "webhook") == 0;
    const char *where = webhook ? app->cfg->alert_url : app->cfg->alert_email;
    if (!set(where) || (!webhook && strcmp(target, "email") != 0)) {
        char why[160];
        snprintf(why, sizeof(why), "alert %s: not configured any more; not sent", target);
        jobs_finish(app->db, j, "alert_dropped", why, &err);
        cJSON_Delete(p);
        return 0;
    }
    tr_message_t *m = tr_message_new();
    char id[80];
    snprintf(id, sizeof(id), "alert-%s", j->comm_id);
    m->comm_id = xstrdup(id);
    m->attempt = j->attempt + 1;
    const char *type = j->message_type ? j->message_type : "";
    const char *client = j->client_id ? j->client_id : "";
    if (webhook) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "alert", "communication_failed");
        cJSON_AddStringToObject(doc, "communication_id", j->comm_id);
        cJSON_AddStringToObject(doc, "client_id", client);
        if (j->plan_id)
            cJSON_AddStringToObject(doc, "plan_id", j->plan_id);
        cJSON_AddStringToObject(doc, "message_type", type);
        cJSON_AddStringToObject(doc, "category", category);
        cJSON_AddStringToObject(doc, "reason", reason);
        m->text = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        m->post_url = xstrdup(where);
        m->channel = TR_EMAIL; /* not used: a POST has its own lane */
    } else {
        m->channel = TR_EMAIL;
        m->to = xstrdup(where);
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "Herald: a %s message to client %s failed on every channel", type, client);
        m->subject = buf_steal(&b);
        buf_printf(&b,
                   "Communication: %s\nClient: %s\nPlan: %s\nMessage type: %s\nLast category: "
                   "%s\nLast answer: %s\n\nEvery attempt is in GET /api/crm/communications/%s\n",
                   j->comm_id, client, j->plan_id ? j->plan_id : "", type, category, reason,
                   j->comm_id);
        m->text = buf_steal(&b);
    }
    cJSON_Delete(p);
    *out = m;
    return 1;
}

void alert_outcome(app_t *app, comm_job_t *j, const tr_result_t *res)
{
    hd_err_t err;
    char what[700];
    cJSON *p = cJSON_Parse(j->payload_json ? j->payload_json : "{}");
    const char *target = jstr(p, "target");
    if (res->ok) {
        snprintf(what, sizeof(what), "alert %s delivered (attempt %d)", target, j->attempt + 1);
        jobs_finish(app->db, j, "alert_sent", what, &err);
        cJSON_Delete(p);
        return;
    }
    policy_step_t step;
    if (policy_alert_retry(app->policy, j->attempt + 1, res, &step, &err) != 0) {
        /* no answer: keep the alert and try again when the lease would */
        log_error("retry.alert failed; the alert waits for a fixed policy", "comm_id", j->comm_id,
                  "error", err.msg);
        step.action = POLICY_RETRY;
        step.delay_s = app->cfg->lease_s;
        snprintf(step.reason, sizeof(step.reason), "policy error: %.200s", err.msg);
    }
    log_warn("a failure alert could not be delivered", "comm_id", j->comm_id, "target", target,
             "reason", res->text);
    snprintf(what, sizeof(what), "alert %s not delivered (attempt %d): %.300s; %.300s", target,
             j->attempt + 1, res->text, step.reason);
    if (step.action == POLICY_RETRY)
        jobs_again(app->db, j, step.delay_s, "alert_failed", what, &err);
    else
        jobs_finish(app->db, j, "alert_abandoned", what, &err);
    cJSON_Delete(p);
}
