/*
 * api_clients.c - a client's personal data as a whole (GDPR,
 * docs/compliance.md):
 *   GET    /api/crm/clients/{client_id}/export   (admin)  Art. 15 and 20
 *   DELETE /api/crm/clients/{client_id}          (admin)  erasure, Art. 17
 * The work is the engine's (engine/export.h, engine/erase.h).
 */
#include "engine/erase.h"
#include "engine/export.h"
#include "http/api.h"

/* libmicrohttpd asks for the next bytes on the connection's thread. */
static ssize_t export_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    ssize_t n = client_export_read(cls, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void export_done(void *cls)
{
    client_export_free(cls);
}

void api_client_export(http_req_t *req)
{
    const char *id = router_param(&req->match, "client_id");
    client_export_t *ex = NULL;
    hd_err_t err;
    int rc = client_export_open(req->app, id, &ex, &err);
    if (rc == EXPORT_NOT_FOUND) {
        http_reply_error(req, 404, "not_found", "no client with this id");
        return;
    }
    if (rc != EXPORT_OK) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
        return;
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, export_reader, ex, export_done);
    if (r == NULL) {
        client_export_free(ex);
        http_reply_error(req, 500, "internal", "cannot start the export");
        return;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    http_set_response(req, 200, r);
}

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
