/*
 * api_dashboard.c - the dashboard's files and the one endpoint made for it:
 *
 *   GET /dashboard                              index.html
 *   GET /dashboard/{file}                       app.js, app.css (dashboard.h)
 *   GET /api/crm/communications/{id}/preview?channel=email|sms|whatsapp
 *                                               the message rendered again
 *                                               (engine/preview.h), scope read
 *
 * The pages run only their own script (Content-Security-Policy: script-src
 * 'self'); an email preview is shown in a sandboxed iframe, so its markup
 * can neither run a script nor reach the page.
 */
#include "engine/preview.h"
#include "http/api.h"
#include "http/dashboard.h"

#include <string.h>

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self' "
                          "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                          "frame-src 'self' about:; base-uri 'none'; form-action 'self'; "
                          "frame-ancestors 'none'";

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return "application/octet-stream";
}

static void serve(http_req_t *req, const char *name)
{
    for (const dash_asset_t *a = dash_assets; a->name; a++) {
        if (strcmp(a->name, name) == 0) {
            http_reply_bytes(req, 200, type_of(a->name), (const char *)a->data, a->len);
            http_reply_header(req, "Content-Security-Policy", CSP);
            http_reply_header(req, "X-Frame-Options", "DENY");
            http_reply_header(req, "Referrer-Policy", "no-referrer");
            http_reply_header(req, "Cache-Control", "no-cache");
            return;
        }
    }
    http_reply_error(req, 404, "not_found", "no such dashboard file");
}

void api_dashboard_index(http_req_t *req)
{
    serve(req, "index.html");
}

void api_dashboard_file(http_req_t *req)
{
    serve(req, router_param(&req->match, "file"));
}

void api_comms_preview(http_req_t *req)
{
    const char *id = router_param(&req->match, "id");
    const char *channel = http_query(req, "channel");
    tr_channel_t ch = TR_EMAIL;
    if (channel && tr_channel_parse(channel, &ch) != 0) {
        http_reply_error(req, 400, "invalid_request", "channel: expected email, sms or whatsapp");
        return;
    }
    cJSON *doc = NULL;
    hd_err_t err;
    int rc = preview_message(req->app, id, ch, &doc, &err);
    if (rc == PREVIEW_NOT_FOUND) {
        http_reply_error(req, 404, "not_found", "no communication with this id");
    } else if (rc == PREVIEW_NO_CONTEXT) {
        http_reply_error(req, 409, "conflict", "%s", err.msg);
    } else if (rc == PREVIEW_RENDER) {
        http_reply_error(req, 422, "render_failed", "%s", err.msg);
    } else if (rc < 0) {
        http_reply_error(req, 503, "unavailable", "database unavailable; retry later");
    } else {
        cJSON_AddStringToObject(doc, "channel", tr_channel_name(ch));
        cJSON_AddStringToObject(doc, "note",
                                "rendered again from the stored context with the current "
                                "templates, without tracking");
        http_reply_json(req, 200, doc);
    }
}
