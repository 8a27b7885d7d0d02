/*
 * alert.c - a message failed on every channel (see alert.h).
 */
#include "engine/alert.h"
#include "base/buf.h"
#include "base/log.h"
#include "transport/transport.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void alert_sent(void *ctx, tr_message_t *msg, const tr_result_t *res)
{
    (void)ctx;
    if (!res->ok)
        log_error("the failure alert email could not be sent", "comm_id", msg->comm_id, "reason",
                  res->text);
    tr_message_free(msg);
}

/* The e-mail form of the alert, through the email channel's own driver. */
static void alert_email(app_t *app, const comm_job_t *j, const char *category, const char *reason)
{
    const char *to = app->cfg->alert_email;
    if (to == NULL || *to == '\0')
        return;
    tr_message_t *m = tr_message_new();
    m->channel = TR_EMAIL;
    char id[80];
    snprintf(id, sizeof(id), "alert-%s", j->comm_id);
    m->comm_id = xstrdup(id);
    m->attempt = 1;
    m->to = xstrdup(to);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "Herald: a %s message to client %s failed on every channel",
               j->message_type ? j->message_type : "?", j->client_id ? j->client_id : "?");
    m->subject = buf_steal(&b);
    buf_printf(&b,
               "Communication: %s\nClient: %s\nPlan: %s\nMessage type: %s\nLast category: "
               "%s\nLast answer: %s\n\nEvery attempt is in GET /api/crm/communications/%s\n",
               j->comm_id, j->client_id ? j->client_id : "", j->plan_id ? j->plan_id : "",
               j->message_type ? j->message_type : "", category ? category : "",
               reason ? reason : "", j->comm_id);
    m->text = buf_steal(&b);
    tr_send(app->transport, m, alert_sent, NULL);
}

/* Every channel of a message failed: a critical log line, and a POST to the
 * operations URL when one is configured (engine.alert_url). Best effort and
 * short: an unreachable alert endpoint never holds up the queue long. */
void engine_alert(app_t *app, const comm_job_t *j, const char *category, const char *reason)
{
    log_crit("every channel failed; the message failed", "comm_id", j->comm_id, "client_id",
             j->client_id, "message_type", j->message_type, "category", category);
    alert_email(app, j, category, reason);
    const char *url = app->cfg->alert_url;
    if (url == NULL || *url == '\0')
        return;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "alert", "communication_failed");
    cJSON_AddStringToObject(doc, "communication_id", j->comm_id);
    cJSON_AddStringToObject(doc, "client_id", j->client_id ? j->client_id : "");
    if (j->plan_id)
        cJSON_AddStringToObject(doc, "plan_id", j->plan_id);
    cJSON_AddStringToObject(doc, "message_type", j->message_type ? j->message_type : "");
    cJSON_AddStringToObject(doc, "category", category ? category : "");
    cJSON_AddStringToObject(doc, "reason", reason ? reason : "");
    char *body = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (h && body) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || status >= 300)
            log_error("the failure alert could not be delivered", "comm_id", j->comm_id, "reason",
                      rc != CURLE_OK ? curl_easy_strerror(rc) : "non-2xx answer");
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    free(body);
}
