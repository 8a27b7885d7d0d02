/*
 * api_types.c - the message types and what each one's context must hold,
 * for the workflows that call Herald (scripts/types.lua is the one source):
 *   GET  /api/crm/message-types                  (read) every type: description,
 *        channels, JSON Schema (draft 2020-12) of its context, an example
 *   GET  /api/crm/message-types/{name}           (read) one type
 *   POST /api/crm/message-types/{name}/validate  (read) a context checked exactly
 *        as POST /api/crm/communications checks it, nothing stored:
 *        {valid, problems, warnings}
 * The answers follow the scripts live, like every policy edit.
 */
#include "engine/policy.h"
#include "http/api.h"

#include <string.h>

/* types.list(), or a 503/422 answer and NULL. */
static cJSON *types_list(http_req_t *req)
{
    cJSON *list = NULL;
    hd_err_t err;
    if (policy_types(req->app->policy, &list, &err) != 0) {
        http_reply_error(req, 422, "policy_error", "%s", err.msg);
        return NULL;
    }
    return list;
}

static cJSON *find_type(cJSON *list, const char *name)
{
    cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return t;
    }
    return NULL;
}

void api_types_list(http_req_t *req)
{
    cJSON *list = types_list(req);
    if (list == NULL)
        return;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "message_types", list);
    http_reply_json(req, 200, doc);
}

void api_types_get(http_req_t *req)
{
    const char *name = router_param(&req->match, "name");
    cJSON *list = types_list(req);
    if (list == NULL)
        return;
    cJSON *t = find_type(list, name);
    if (t == NULL) {
        cJSON_Delete(list);
        http_reply_error(req, 404, "not_found",
                         "no message type of this name (GET /api/crm/message-types lists them)");
        return;
    }
    http_reply_json(req, 200, cJSON_DetachItemViaPointer(list, t));
    cJSON_Delete(list);
}

void api_types_validate(http_req_t *req)
{
    const char *name = router_param(&req->match, "name");
    if (!cJSON_IsObject(req->json)) {
        http_reply_error(req, 400, "invalid_request", "body: expected the context, a JSON object");
        return;
    }
    policy_context_check_t c;
    hd_err_t err;
    if (policy_check_context(req->app->policy, name, req->json, &c, &err) != 0) {
        http_reply_error(req, 422, "policy_error", "%s", err.msg);
        return;
    }
    if (!c.known) {
        policy_context_check_free(&c);
        http_reply_error(req, 404, "not_found",
                         "no message type of this name (GET /api/crm/message-types lists them)");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "valid", cJSON_GetArraySize(c.problems) == 0);
    cJSON_AddItemToObject(doc, "problems", c.problems);
    cJSON_AddItemToObject(doc, "warnings", c.warnings);
    c.problems = c.warnings = NULL;
    http_reply_json(req, 200, doc);
}
