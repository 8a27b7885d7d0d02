/*
 * api_comms.c - the send API (DESIGN.md §5):
 *   POST   /api/crm/communications        (send)  validate, decide, store, 202
 *   GET    /api/crm/communications        (read)  history with filters, cursor pages
 *   GET    /api/crm/communications/{id}   (read)  one message, its attempts and events
 *   DELETE /api/crm/communications/{id}   (send)  cancel what no provider has yet
 * Acceptance is the engine's (engine/accept.h); reads go to store/repo_comms.
 */
#include "base/log.h"
#include "base/timefmt.h"
#include "engine/accept.h"
#include "http/api.h"
#include "store/repo_comms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ?wait=S: answers once the message has its first outcome (sent, or
 * settled: no longer queued, sending, or scheduled for a retry), or after S
 * seconds, with the status at that moment. */
static bool wait_outcome(http_req_t *req, bool timed_out)
{
    cJSON *doc = cJSON_Parse(req->wait_data);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    char status[16] = "";
    bool done = false;
    if (cJSON_IsString(id) && comms_status(req->app->db, id->valuestring, status, NULL) == 0)
        done = strcmp(status, "queued") != 0 && strcmp(status, "sending") != 0 &&
               strcmp(status, "scheduled") != 0;
    if ((done || timed_out) && status[0]) {
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "status", cJSON_CreateString(status));
        char *body = cJSON_PrintUnformatted(doc);
        http_reply_bytes(req, 202, "application/json", body, strlen(body));
        free(body);
    }
    cJSON_Delete(doc);
    return done;
}

/* POST /api/crm/communications: the engine accepts (engine/accept.h); this
 * translates its answer. */
void api_comms_create(http_req_t *req)
{
    accept_in_t in = {
        .body = req->json,
        .raw = req->body.data,
        .raw_len = req->body.len,
        .path = req->path,
        .principal = req->principal.sub,
        .idem_key = http_header(req, "Idempotency-Key"),
        .wait = http_query(req, "wait"),
    };
    accept_out_t out;
    accept_message(req->app, &in, &out);
    if (out.body == NULL) {
        http_reply_error(req, out.status, out.code, "%s", out.message);
    } else {
        http_reply_bytes(req, out.status, "application/json", out.body, strlen(out.body));
        if (out.replayed)
            http_reply_header(req, "Idempotent-Replayed", "true");
    }
    if (out.retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", out.retry_after);
        http_reply_header(req, "Retry-After", ra);
    }
    if (out.status == 202 && !out.replayed) {
        char loc[128];
        snprintf(loc, sizeof(loc), "/api/crm/communications/%s", out.id);
        http_reply_header(req, "Location", loc);
        if (out.wait_ms > 0) {
            req->wait_data = xstrdup(out.body);
            http_suspend(req, out.wait_ms, wait_outcome);
        }
    }
    accept_out_free(&out);
}

void api_comms_get(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    bool found;
    hd_err_t err = {{0}};
    cJSON *doc = comms_get(req->app->db, id, &found, &err);
    if (doc == NULL && !found && err.msg[0] == '\0') {
        http_reply_error(req, 404, "not_found", "no communication with this id");
        return;
    }
    if (doc == NULL) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    http_reply_json(req, 200, doc);
}

void api_comms_list(http_req_t *req)
{
    comms_filter_t f = {
        .plan_id = http_query(req, "plan_id"),
        .client_id = http_query(req, "client_id"),
        .status = http_query(req, "status"),
        .channel = http_query(req, "channel"),
        .message_type = http_query(req, "message_type"),
        .cursor = http_query(req, "cursor"),
        .limit = 50,
    };
    static const char *const statuses[] = {"scheduled", "queued",    "sending", "sent",
                                           "delivered", "opened",    "clicked", "failed",
                                           "cancelled", "suppressed"};
    if (f.status) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
            ok |= strcmp(f.status, statuses[i]) == 0;
        if (!ok) {
            http_reply_error(req, 400, "invalid_request", "status: not a message status");
            return;
        }
    }
    if (f.channel && strcmp(f.channel, "email") && strcmp(f.channel, "sms") &&
        strcmp(f.channel, "whatsapp")) {
        http_reply_error(req, 400, "invalid_request", "channel: expected email, sms or whatsapp");
        return;
    }
    const char *limit = http_query(req, "limit");
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (*end || v < 1 || v > 200) {
            http_reply_error(req, 400, "invalid_request", "limit: expected 1 to 200");
            return;
        }
        f.limit = (int)v;
    }
    char from[40], to[40];
    const char *bounds[][2] = {{"from", NULL}, {"to", NULL}};
    char *bufs[] = {from, to};
    for (int i = 0; i < 2; i++) {
        const char *v = http_query(req, bounds[i][0]);
        int64_t t;
        if (v == NULL)
            continue;
        if (timefmt_parse(v, &t) != 0) {
            http_reply_error(req, 400, "invalid_request",
                             "%s: expected an RFC 3339 time like 2026-11-28T09:00:00Z",
                             bounds[i][0]);
            return;
        }
        timefmt_format(t, bufs[i]);
        if (i == 0)
            f.from = from;
        else
            f.to = to;
    }
    hd_err_t err;
    cJSON *doc = comms_list(req->app->db, &f, &err);
    if (doc == NULL) {
        if (strncmp(err.msg, "cursor:", 7) == 0)
            http_reply_error(req, 400, "invalid_request", "%s", err.msg);
        else
            http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    http_reply_json(req, 200, doc);
}

void api_comms_cancel(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    char status[16];
    hd_err_t err;
    int rc = comms_cancel(req->app->db, id, status, &err);
    if (rc == 1) {
        http_reply_error(req, 404, "not_found", "no communication with this id");
    } else if (rc == 2) {
        http_reply_error(req, 409, "conflict",
                         "too late to cancel: the message is %s (already handed to a provider "
                         "or finished)",
                         status);
    } else if (rc < 0) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
    } else {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "status", "cancelled");
        http_reply_json(req, 200, doc);
    }
}
