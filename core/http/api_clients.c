/*
 * api_clients.c - a client's personal data as a whole (GDPR,
 * docs/compliance.md):
 *   DELETE /api/crm/clients/{client_id}   (admin)  erasure, Art. 17
 * The work is the engine's (engine/erase.h).
 */
#include "engine/erase.h"
#include "http/api.h"

void api_client_erase(http_req_t *req)
{
    const char *id = router_param(&req->match, "client_id");
    erase_counts_t n;
    hd_err_t err;
    int rc = client_erase(req->app, id, req->principal.sub, &n, &err);
    if (rc == ERASE_NOT_FOUND) {
        http_reply_error(req, 404, "not_found",
                         "no client with this id (unknown, or already erased)");
    } else if (rc != ERASE_OK) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
    } else {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "client_id", id);
        cJSON_AddBoolToObject(doc, "erased", true);
        cJSON_AddNumberToObject(doc, "communications", (double)n.communications);
        cJSON_AddNumberToObject(doc, "cancelled", (double)n.cancelled);
        cJSON_AddNumberToObject(doc, "suppressed", (double)n.suppressed);
        http_reply_json(req, 200, doc);
    }
}
