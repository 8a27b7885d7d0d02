/*
 * api_auth.c - POST /api/crm/auth/token, POST /api/crm/auth/refresh,
 * GET /api/crm/auth/me, POST /api/crm/auth/revoke, GET /api/crm/apikeys.
 * Uses store/repo_auth and engine/revoke.
 */
#include "engine/revoke.h"
#include "http/api.h"
#include "http/ratelimit.h"
#include "store/repo_auth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers the token pair for key: a fresh access token plus refresh. */
static void reply_tokens(http_req_t *req, const apikey_info_t *key, char *refresh)
{
    const cfg_t *cfg = req->app->cfg;
    char sub[128];
    snprintf(sub, sizeof(sub), "apikey:%s", key->name);
    char *access = NULL;
    hd_err_t err;
    if (auth_mint(cfg, sub, key->scopes, cfg->access_ttl_s, (int64_t)time(NULL), &access, &err)) {
        http_reply_error(req, 500, "internal", "%s", err.msg);
        return;
    }
    char scope[64];
    scope_format(key->scopes, scope, sizeof(scope));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "access_token", access);
    cJSON_AddStringToObject(doc, "token_type", "Bearer");
    cJSON_AddNumberToObject(doc, "expires_in", cfg->access_ttl_s);
    cJSON_AddStringToObject(doc, "scope", scope);
    cJSON_AddStringToObject(doc, "refresh_token", refresh);
    cJSON_AddNumberToObject(doc, "refresh_expires_in", cfg->refresh_ttl_s);
    free(access);
    http_reply_json(req, 200, doc);
}

static const char *string_field(http_req_t *req, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->json, name);
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        http_reply_error(req, 400, "invalid_request", "%s: expected a non-empty string", name);
        return NULL;
    }
    return v->valuestring;
}

void api_auth_token(http_req_t *req)
{
    if (http_refuse_auth_failures(req))
        return;
    const char *key = string_field(req, "api_key");
    if (key == NULL)
        return;
    apikey_info_t info;
    hd_err_t err;
    int rc = apikey_authenticate(req->app->db, key, &info, &err);
    if (rc == -2) { /* not the caller's fault: say so */
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    if (rc != 0) {
        http_auth_failed(req, "invalid API key");
        http_reply_error(req, 401, "unauthorized", "invalid API key");
        return;
    }
    char *refresh = NULL;
    if (refresh_issue(req->app->db, &info, req->app->cfg->refresh_ttl_s, &refresh, &err) != 0) {
        http_reply_error(req, 503, "unavailable", "cannot issue a refresh token; retry later");
        return;
    }
    reply_tokens(req, &info, refresh);
    free(refresh);
}

void api_auth_refresh(http_req_t *req)
{
    if (http_refuse_auth_failures(req))
        return;
    const char *tok = string_field(req, "refresh_token");
    if (tok == NULL)
        return;
    apikey_info_t info;
    char *next = NULL;
    hd_err_t err;
    switch (refresh_rotate(req->app->db, tok, req->app->cfg->refresh_ttl_s, &info, &next, &err)) {
    case REFRESH_OK:
        reply_tokens(req, &info, next);
        break;
    case REFRESH_REUSED:
        http_auth_failed(req, "refresh token reused");
        http_reply_error(req, 401, "refresh_token_reused", "%s", err.msg);
        break;
    case REFRESH_INVALID:
        http_auth_failed(req, "invalid refresh token");
        http_reply_error(req, 401, "unauthorized", "%s", err.msg);
        break;
    case REFRESH_ERROR:
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        break;
    }
    free(next);
}

void api_auth_me(http_req_t *req)
{
    char scope[64];
    scope_format(req->principal.scopes, scope, sizeof(scope));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "sub", req->principal.sub);
    cJSON_AddStringToObject(doc, "scope", scope);
    cJSON_AddNumberToObject(doc, "exp", (double)req->principal.exp);
    cJSON_AddStringToObject(doc, "jti", req->principal.jti);
    http_reply_json(req, 200, doc);
}

/* {"jti": "...", "expires_at": unix seconds (optional: the longest life a
 * Herald token can have)} -> 200 {"jti", "expires_at", "revoked": true}. */
void api_auth_revoke(http_req_t *req)
{
    const char *jti = string_field(req, "jti");
    if (jti == NULL)
        return;
    if (!revoke_jti_ok(jti)) {
        http_reply_error(req, 400, "invalid_request",
                         "jti: expected 1 to 63 printable characters without spaces");
        return;
    }
    int64_t now = (int64_t)time(NULL), exp = now + REVOKE_MAX_LIFE_S;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(req->json, "expires_at");
    if (e != NULL) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0) ||
            e->valuedouble > (double)(now + REVOKE_MAX_LIFE_S) ||
            floor(e->valuedouble) != e->valuedouble) {
            http_reply_error(req, 400, "invalid_request",
                             "expires_at: expected whole Unix seconds, at most %d s from now",
                             REVOKE_MAX_LIFE_S);
            return;
        }
        exp = (int64_t)e->valuedouble;
    }
    hd_err_t err;
    if (revoke_token(req->app->db, req->app->redis, jti, exp, AUTH_LEEWAY_S, now,
                     req->principal.sub, &err) < 0) {
        http_reply_error(req, 503, "unavailable", "cannot record the revocation; retry later");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "jti", jti);
    cJSON_AddNumberToObject(doc, "expires_at", (double)exp);
    cJSON_AddBoolToObject(doc, "revoked", true);
    http_reply_json(req, 200, doc);
}

static void add_text(cJSON *o, const char *name, const char *v)
{
    cJSON_AddItemToObject(o, name, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

cJSON *api_apikeys_json(const apikey_row_t *rows, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const apikey_row_t *k = &rows[i];
        cJSON *o = cJSON_CreateObject();
        add_text(o, "id", k->id);
        add_text(o, "name", k->name);
        add_text(o, "prefix", k->prefix);
        cJSON *sc = cJSON_AddArrayToObject(o, "scopes");
        char *list = xstrdup(k->scopes ? k->scopes : ""), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(sc, cJSON_CreateString(t));
        free(list);
        add_text(o, "created_at", k->created_at);
        add_text(o, "last_used_at", k->last_used_at);
        add_text(o, "revoked_at", k->revoked_at);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

void api_apikeys_list(http_req_t *req)
{
    hd_err_t err;
    apikey_row_t *rows;
    int n;
    if (apikey_list(req->app->db, &rows, &n, &err) != 0) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "api_keys", api_apikeys_json(rows, n));
    apikey_rows_free(rows, n);
    http_reply_json(req, 200, doc);
}
