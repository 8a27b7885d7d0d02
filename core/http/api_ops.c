/*
 * api_ops.c - the operator's desk over HTTP (issue 15 item 2), admin scope;
 * what `herald console --attach` and the dashboard call:
 *
 *   GET  /api/crm/admin/queue                         the queue at a glance
 *   GET  /api/crm/admin/providers?minutes=5           attempts, errors, last error
 *   GET  /api/crm/admin/clients/{client_id}/why?limit=10
 *                                                     the client's last messages, reasons
 *   POST /api/crm/admin/channels/{channel}/pause      {"reason"?}: stop sending on it
 *   POST /api/crm/admin/channels/{channel}/resume     {"reason"?}
 *   POST /api/crm/communications/{id}/retry           a failed message, again
 *
 * Parses and replies; engine/ops does the work. Pause, resume and retry are
 * audited with the token's subject.
 */
#include "engine/ops.h"
#include "http/api.h"
#include "store/repo_ops.h"

#include <stdlib.h>
#include <string.h>

/* ?name= as a whole number from lo to hi; def when absent; -1 when bad. */
static int int_query(http_req_t *req, const char *name, int def, int lo, int hi)
{
    const char *v = http_query(req, name);
    if (v == NULL)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *v && *end == '\0' && n >= lo && n <= hi ? (int)n : -1;
}

static void reply_doc(http_req_t *req, cJSON *doc, const hd_err_t *err)
{
    if (doc == NULL) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        (void)err;
        return;
    }
    http_reply_json(req, 200, doc);
}

void api_ops_queue(http_req_t *req)
{
    hd_err_t err;
    reply_doc(req, ops_queue_report(req->app, &err), &err);
}

void api_ops_providers(http_req_t *req)
{
    int minutes = int_query(req, "minutes", 5, 1, 1440);
    if (minutes < 0) {
        http_reply_error(req, 400, "invalid_request", "minutes: a whole number from 1 to 1440");
        return;
    }
    hd_err_t err;
    cJSON *list = ops_providers(req->app->db, minutes, &err);
    if (list == NULL) {
        reply_doc(req, NULL, &err);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "minutes", minutes);
    cJSON_AddItemToObject(doc, "providers", list);
    http_reply_json(req, 200, doc);
}

void api_ops_why(http_req_t *req)
{
    const char *client = router_param(&req->match, "client_id");
    int limit = int_query(req, "limit", 10, 1, 100);
    if (limit < 0) {
        http_reply_error(req, 400, "invalid_request", "limit: a whole number from 1 to 100");
        return;
    }
    if (client == NULL || strlen(client) == 0 || strlen(client) > 200) {
        http_reply_error(req, 400, "invalid_request", "client_id: 1 to 200 characters");
        return;
    }
    hd_err_t err;
    cJSON *list = ops_why(req->app->db, client, limit, &err);
    if (list == NULL) {
        reply_doc(req, NULL, &err);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "client_id", client);
    cJSON_AddItemToObject(doc, "messages", list);
    http_reply_json(req, 200, doc);
}

static void pause_or_resume(http_req_t *req, bool on)
{
    const char *channel = router_param(&req->match, "channel");
    /* the body is optional (BODY_JSON_OPT): a bare POST pauses with no reason */
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(req->json, "reason");
    if ((req->json != NULL && !cJSON_IsObject(req->json)) ||
        (reason && (!cJSON_IsString(reason) || strlen(reason->valuestring) > 300))) {
        http_reply_error(req, 400, "invalid_request",
                         "expected {\"reason\": \"...\"} (optional, at most 300 characters)");
        return;
    }
    bool changed = false;
    hd_err_t err;
    int rc = ops_set_pause(req->app, channel, on, req->principal.sub,
                           reason ? reason->valuestring : NULL, &changed, &err);
    if (rc == 1) {
        http_reply_error(req, 404, "not_found", "no such channel: expected email, sms or whatsapp");
        return;
    }
    if (rc != 0) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "channel", channel);
    cJSON_AddBoolToObject(doc, "paused", on);
    cJSON_AddBoolToObject(doc, "changed", changed);
    http_reply_json(req, 200, doc);
}

void api_ops_pause(http_req_t *req)
{
    pause_or_resume(req, true);
}

void api_ops_resume(http_req_t *req)
{
    pause_or_resume(req, false);
}

void api_comms_retry(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    char status[16];
    hd_err_t err;
    int rc = ops_retry_message(req->app, id, req->principal.sub, status, &err);
    if (rc == 1) {
        http_reply_error(req, 404, "not_found", "no communication with this id");
    } else if (rc == 2) {
        http_reply_error(req, 409, "conflict", "only a failed message can be sent again; it is %s",
                         status);
    } else if (rc < 0) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
    } else {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "status", "queued");
        http_reply_json(req, 202, doc);
    }
}
