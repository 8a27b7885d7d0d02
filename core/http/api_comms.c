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
    if (out.body == NULL && out.problems) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(doc, "error");
        cJSON_AddStringToObject(e, "code", out.code);
        cJSON_AddStringToObject(e, "message", out.message);
        cJSON_AddItemToObject(e, "problems", out.problems);
        out.problems = NULL;
        http_reply_json(req, out.status, doc);
    } else if (out.body == NULL) {
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

/* ---- the API's shape of a stored message ---- */

static void add_text(cJSON *o, const char *name, const char *v)
{
    cJSON_AddItemToObject(o, name, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* A stored JSON document (strategy, context) as a member; {} if unreadable. */
static void add_doc(cJSON *o, const char *name, const char *json)
{
    cJSON *v = json ? cJSON_Parse(json) : NULL;
    cJSON_AddItemToObject(o, name, v ? v : cJSON_CreateObject());
}

static cJSON *summary_json(const comm_row_t *c)
{
    cJSON *o = cJSON_CreateObject();
    add_text(o, "id", c->id);
    add_text(o, "plan_id", c->plan_id);
    add_text(o, "client_id", c->client_id);
    add_text(o, "message_type", c->message_type);
    add_text(o, "urgency", c->urgency);
    add_text(o, "status", c->status);
    add_text(o, "channel", c->channel);
    return o;
}

static cJSON *log_json(const comm_log_row_t *l)
{
    cJSON *e = cJSON_CreateObject();
    add_text(e, "channel", l->channel);
    if (l->attempt)
        cJSON_AddNumberToObject(e, "attempt", l->attempt_no);
    else
        add_text(e, "type", l->event_type);
    add_text(e, "status", l->status);
    add_text(e, "provider", l->provider);
    add_text(e, "provider_message_id", l->provider_id);
    add_text(e, "code", l->code);
    add_text(e, "message", l->message);
    add_text(e, "category", l->category);
    cJSON_AddBoolToObject(e, "may_have_been_sent", l->may_have_been_sent);
    if (l->has_latency)
        cJSON_AddNumberToObject(e, "latency_ms", l->latency_ms);
    add_text(e, "at", l->at);
    return e;
}

static cJSON *message_json(const comm_row_t *c)
{
    cJSON *o = summary_json(c);
    add_doc(o, "strategy", c->strategy_json);
    add_doc(o, "context", c->context_json);
    cJSON_AddNumberToObject(o, "attempt_count", c->attempt_count);
    cJSON_AddBoolToObject(o, "may_have_been_sent", c->may_have_been_sent);
    add_text(o, "provider_message_id", c->provider_message_id);
    add_text(o, "last_error_category", c->last_error_category);
    add_text(o, "last_error_code", c->last_error_code);
    const struct {
        const char *name, *v;
    } times[] = {{"created_at", c->created_at},          {"queued_at", c->queued_at},
                 {"sending_at", c->sending_at},          {"sent_at", c->sent_at},
                 {"delivered_at", c->delivered_at},      {"opened_at", c->opened_at},
                 {"clicked_at", c->clicked_at},          {"failed_at", c->failed_at},
                 {"cancelled_at", c->cancelled_at},      {"suppressed_at", c->suppressed_at},
                 {"next_attempt_at", c->next_attempt_at}};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        add_text(o, times[i].name, times[i].v);
    cJSON *attempts = cJSON_AddArrayToObject(o, "attempts");
    cJSON *events = cJSON_AddArrayToObject(o, "events");
    for (int i = 0; i < c->nlogs; i++)
        cJSON_AddItemToArray(c->logs[i].attempt ? attempts : events, log_json(&c->logs[i]));
    return o;
}

void api_comms_get(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    hd_err_t err;
    comm_row_t c;
    int rc = comms_get(req->app->db, req->app->keyring, id, &c, &err);
    if (rc == 1)
        http_reply_error(req, 404, "not_found", "no communication with this id");
    else if (rc < 0) {
        log_warn("cannot read a communication", "reason", err.msg);
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
    } else {
        http_reply_json(req, 200, message_json(&c));
    }
    comm_row_free(&c);
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
    comm_page_t page;
    if (comms_list(req->app->db, &f, &page, &err) != 0) {
        if (strncmp(err.msg, "cursor:", 7) == 0) {
            http_reply_error(req, 400, "invalid_request", "%s", err.msg);
        } else {
            log_warn("cannot list communications", "reason", err.msg);
            http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        }
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(doc, "items");
    for (int i = 0; i < page.n; i++) {
        cJSON *o = summary_json(&page.items[i]);
        add_text(o, "created_at", page.items[i].created_at);
        cJSON_AddItemToArray(items, o);
    }
    add_text(doc, "next_cursor", page.next_cursor);
    comm_page_free(&page);
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
