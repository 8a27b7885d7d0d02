/*
 * api_suppress.c - the suppression list over HTTP (admin scope; issue 12
 * item 2):
 *
 *   GET    /api/crm/suppressions[?channel=&limit=&before=]   newest first
 *   POST   /api/crm/suppressions   {channel, address, reason?}   201 added,
 *                                  200 when the address was already listed
 *   DELETE /api/crm/suppressions/{id}   204 lifted (audited), 404 unknown
 *
 * Entries hold the address's blind index only: an address is given to add
 * one and never returned.
 */
#include "base/addr.h"
#include "base/log.h"
#include "http/api.h"
#include "store/repo_suppress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SUPP_LIST_DEFAULT 100

static const char *const REASONS[] = {"unsubscribe", "bounce",  "complaint",
                                      "opt_out",     "invalid", "manual"};

static bool parse_id(const char *s, long long min, long long max, long long *out)
{
    if (s == NULL || *s == '\0')
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

void api_suppressions_list(http_req_t *req)
{
    const char *channel = http_query(req, "channel");
    if (channel && !addr_is_channel(channel)) {
        http_reply_error(req, 400, "invalid_request", "channel: expected email, sms or whatsapp");
        return;
    }
    long long limit = SUPP_LIST_DEFAULT, before = 0;
    const char *l = http_query(req, "limit"), *b = http_query(req, "before");
    if (l && !parse_id(l, 1, SUPP_LIST_MAX, &limit)) {
        http_reply_error(req, 400, "invalid_request", "limit: expected 1 to %d", SUPP_LIST_MAX);
        return;
    }
    if (b && !parse_id(b, 1, INT64_MAX, &before)) {
        http_reply_error(req, 400, "invalid_request", "before: expected an entry id");
        return;
    }
    hd_err_t err;
    cJSON *items = supp_list(req->app->db, channel, (int)limit, before, &err);
    if (items == NULL) {
        http_reply_error(req, 503, "unavailable", "cannot read the suppression list; retry");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "items", items);
    http_reply_json(req, 200, doc);
}

void api_suppressions_add(http_req_t *req)
{
    const cJSON *body = req->json;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(body, "channel");
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(body, "address");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(body, "reason");
    if (!cJSON_IsObject(body) || !cJSON_IsString(ch) || !addr_is_channel(ch->valuestring)) {
        http_reply_error(req, 400, "invalid_request", "channel: expected email, sms or whatsapp");
        return;
    }
    bool email = strcmp(ch->valuestring, "email") == 0;
    hd_err_t err;
    if (!cJSON_IsString(ad) ||
        (email ? addr_check_email(ad->valuestring, &err) != 0 : !addr_is_e164(ad->valuestring))) {
        http_reply_error(req, 400, "invalid_request", "address: expected %s",
                         email ? "an email address" : "an E.164 number like +33612345678");
        return;
    }
    const char *reason = "manual";
    if (re != NULL) {
        bool ok = false;
        for (size_t i = 0; cJSON_IsString(re) && i < sizeof(REASONS) / sizeof(REASONS[0]); i++)
            ok = ok || strcmp(re->valuestring, REASONS[i]) == 0;
        if (!ok) {
            http_reply_error(req, 400, "invalid_request",
                             "reason: expected unsubscribe, bounce, complaint, opt_out, invalid "
                             "or manual");
            return;
        }
        reason = re->valuestring;
    }
    char index[65];
    if (fe_blind_index(req->app->keyring, email ? "email" : "phone", ad->valuestring, index) != 0) {
        http_reply_error(req, 500, "internal", "cannot compute the address's blind index");
        return;
    }
    int64_t id = 0;
    bool created = false;
    if (supp_add(req->app->db, ch->valuestring, index, reason, "api", req->principal.sub, &id,
                 &created, &err) != 0) {
        http_reply_error(req, 503, "unavailable", "cannot write the suppression list; retry");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "id", (double)id);
    cJSON_AddStringToObject(doc, "channel", ch->valuestring);
    cJSON_AddStringToObject(doc, "address_index", index);
    cJSON_AddBoolToObject(doc, "created", created);
    http_reply_json(req, created ? 201 : 200, doc);
}

void api_suppressions_lift(http_req_t *req)
{
    long long id;
    if (!parse_id(router_param(&req->match, "id"), 1, INT64_MAX, &id)) {
        http_reply_error(req, 404, "not_found", "no such suppression");
        return;
    }
    hd_err_t err;
    int rc = supp_lift(req->app->db, id, req->principal.sub, &err);
    if (rc < 0) {
        http_reply_error(req, 503, "unavailable", "cannot write the suppression list; retry");
        return;
    }
    if (rc == 0) {
        http_reply_error(req, 404, "not_found", "no such suppression");
        return;
    }
    http_reply_bytes(req, 204, "text/plain", "", 0);
}
