/*
 * api_policy.c - the policy runtime over HTTP:
 *   POST /api/crm/scripts/reload     (admin) force a reload, report the result
 *   POST /api/crm/strategy/preview   (read) what strategy.decide would choose, and why
 */
#include "base/timefmt.h"
#include "http/api.h"
#include "lua/runtime.h"

#include <stdio.h>
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

cJSON *public_strategy_of(const cJSON *d)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(d, "primary_channel");
    cJSON_AddItemToObject(o, "primary_channel",
                          cJSON_IsString(p) ? cJSON_CreateString(p->valuestring)
                                            : cJSON_CreateNull());
    cJSON *fb = cJSON_AddArrayToObject(o, "fallback_channels");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "fallback_channels"))
    {
        if (cJSON_IsString(e))
            cJSON_AddItemToArray(fb, cJSON_CreateString(e->valuestring));
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(d, "send_at");
    char ts[32];
    timefmt_format(cJSON_IsNumber(at) ? (int64_t)at->valuedouble : (int64_t)time(NULL), ts);
    cJSON_AddStringToObject(o, "send_at", ts);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "priority");
    cJSON_AddNumberToObject(o, "priority", cJSON_IsNumber(pr) ? pr->valuedouble : 0);
    cJSON_AddBoolToObject(o, "batch", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "batch")));
    return o;
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
    cJSON *nowv = cJSON_CreateNumber((double)now);
    cJSON *args[] = {body, prefs, nowv};
    cJSON *decision = NULL, *explanation = NULL;
    hd_err_t err;
    int rc = lrt_call(req->app->policy, "strategy", "decide", args, 3, &decision, &err);
    if (rc == 0) {
        cJSON *eargs[] = {decision};
        rc = lrt_call(req->app->policy, "strategy", "explain", eargs, 1, &explanation, &err);
    }
    cJSON_Delete(prefs);
    cJSON_Delete(nowv);
    if (rc != 0) {
        cJSON_Delete(decision);
        /* A script error (file:line) is the policy's problem, not the
         * caller's: 422 says the request could not be decided. */
        http_reply_error(req, 422, "policy_error", "%s", err.msg);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "strategy", public_strategy_of(decision));
    cJSON_AddItemToObject(
        doc, "reasons",
        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(decision, "reasons"), true)
            ?: cJSON_CreateArray());
    cJSON_AddItemToObject(doc, "explanation", explanation);
    lrt_status_t st;
    lrt_status(req->app->policy, &st);
    cJSON_AddNumberToObject(doc, "generation", (double)st.generation);
    cJSON_Delete(decision);
    http_reply_json(req, 200, doc);
}
