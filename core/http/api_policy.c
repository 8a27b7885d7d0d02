/*
 * api_policy.c - the policy runtime over HTTP:
 *   POST /api/crm/scripts/reload     (admin) force a reload, report the result
 *   POST /api/crm/strategy/preview   (read) what strategy.decide would choose, and why
 */
#include "base/timefmt.h"
#include "http/api.h"
#include "engine/policy.h"
#include "lua/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *api_policy_status(app_t *app)
{
    lrt_status_t st;
    lrt_status(app->policy, &st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", st.failing ? "error" : "ok");
    cJSON_AddNumberToObject(o, "generation", (double)st.generation);
    char ts[32];
    timefmt_format(st.loaded_at, ts);
    cJSON_AddStringToObject(o, "loaded_at", ts);
    cJSON_AddNumberToObject(o, "scripts", st.nscripts);
    cJSON_AddNumberToObject(o, "templates", st.ntemplates);
    if (st.failing) {
        /* The previous generation keeps running; this says why the edit
         * did not take, with file and line. */
        cJSON_AddStringToObject(o, "error", st.error);
        timefmt_format(st.error_at, ts);
        cJSON_AddStringToObject(o, "error_at", ts);
    }
    return o;
}

void api_scripts_reload(http_req_t *req)
{
    hd_err_t err;
    int rc = lrt_reload(req->app->policy, &err);
    cJSON *doc = api_policy_status(req->app);
    if (rc != 0) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "code", "script_error");
        cJSON_AddStringToObject(e, "message", err.msg);
        cJSON_AddItemToObject(doc, "error", e);
        http_reply_json(req, 422, doc);
        return;
    }
    http_reply_json(req, 200, doc);
}

/* Replaces an RFC 3339 string member by Unix seconds; 400 when malformed. */
static int time_member(http_req_t *req, cJSON *obj, const char *name, const char *path)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    int64_t t;
    if (!cJSON_IsString(v) || timefmt_parse(v->valuestring, &t) != 0) {
        http_reply_error(req, 400, "invalid_request",
                         "%s: expected an RFC 3339 time like 2026-11-28T09:00:00Z", path);
        return -1;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(obj, name, cJSON_CreateNumber((double)t));
    return 0;
}

void api_strategy_preview(http_req_t *req)
{
    cJSON *body = req->json;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(body, "message_type");
    if (!cJSON_IsString(mt) || mt->valuestring[0] == '\0') {
        http_reply_error(req, 400, "invalid_request", "message_type: expected a non-empty string");
        return;
    }
    cJSON *prefs = cJSON_DetachItemFromObjectCaseSensitive(body, "preferences");
    if (prefs == NULL || cJSON_IsNull(prefs)) {
        cJSON_Delete(prefs);
        prefs = cJSON_CreateObject();
    } else if (!cJSON_IsObject(prefs)) {
        cJSON_Delete(prefs);
        http_reply_error(req, 400, "invalid_request", "preferences: expected an object");
        return;
    }
    cJSON *nowj = cJSON_DetachItemFromObjectCaseSensitive(body, "now");
    int64_t now = (int64_t)time(NULL);
    if (nowj != NULL && !cJSON_IsNull(nowj) &&
        (!cJSON_IsString(nowj) || timefmt_parse(nowj->valuestring, &now) != 0)) {
        cJSON_Delete(nowj);
        cJSON_Delete(prefs);
        http_reply_error(req, 400, "invalid_request",
                         "now: expected an RFC 3339 time like 2026-11-28T09:00:00Z");
        return;
    }
    cJSON_Delete(nowj);
    if (time_member(req, body, "send_at", "send_at") != 0) {
        cJSON_Delete(prefs);
        return;
    }
    /* the request as strategy.decide takes it */
    const char *fields[] = {"urgency", "channel", "plan_id", "client_id"};
    const char *vals[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, fields[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
            cJSON_Delete(prefs);
            http_reply_error(req, 400, "invalid_request", "%s: expected a string", fields[i]);
            return;
        }
        vals[i] = cJSON_IsString(v) ? v->valuestring : NULL;
    }
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(body, "send_at");
    policy_request_t rq = {
        .message_type = mt->valuestring,
        .urgency = vals[0],
        .channel = vals[1],
        .plan_id = vals[2],
        .client_id = vals[3],
        .has_send_at = cJSON_IsNumber(sa),
        .send_at = cJSON_IsNumber(sa) ? (int64_t)sa->valuedouble : 0,
    };
    policy_decision_t d;
    char *explanation = NULL;
    hd_err_t err;
    int rc = policy_decide(req->app->policy, &rq, prefs, now, &d, &err);
    if (rc == 0 && (rc = policy_explain(req->app->policy, &d, &explanation, &err)) != 0)
        policy_decision_free(&d);
    cJSON_Delete(prefs);
    if (rc != 0) {
        /* A script error (file:line) is the policy's problem, not the
         * caller's: 422 says the request could not be decided. */
        http_reply_error(req, 422, "policy_error", "%s", err.msg);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "strategy", policy_decision_json(&d));
    cJSON *reasons = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(d.doc, "reasons"), true);
    cJSON_AddItemToObject(doc, "reasons", reasons ? reasons : cJSON_CreateArray());
    cJSON_AddStringToObject(doc, "explanation", explanation);
    free(explanation);
    policy_decision_free(&d);
    lrt_status_t st;
    lrt_status(req->app->policy, &st);
    cJSON_AddNumberToObject(doc, "generation", (double)st.generation);
    http_reply_json(req, 200, doc);
}
