/*
 * api_tracking.c - the open pixel and the click redirect (DESIGN.md §5):
 *
 *   GET /t/o/{token}.gif   a 1x1 GIF, never cached; records an open
 *   GET /t/c/{token}       302 to the link the token was made for; records
 *                          a click
 *
 * Tokens are HMAC-signed (engine/tracking.h). A tampered, unknown or expired
 * token records nothing and never redirects: the click answers a small page
 * saying the link is invalid or expired (404 / 410), so Herald is never an
 * open redirect. Recording is best effort: a database hiccup still gets the
 * recipient their pixel or their link.
 */
#include "base/log.h"
#include "engine/tracking.h"
#include "http/api.h"
#include "store/repo_receipts.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The smallest transparent GIF: 1x1, one transparent colour. */
static const unsigned char PIXEL[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

static void no_cache(http_req_t *req)
{
    http_reply_header(req, "Cache-Control", "no-cache, no-store, must-revalidate, private");
    http_reply_header(req, "Pragma", "no-cache");
    http_reply_header(req, "Expires", "0");
    http_reply_header(req, "Referrer-Policy", "no-referrer");
}

static void link_page(http_req_t *req, int status, const char *what)
{
    char page[512];
    int n = snprintf(page, sizeof(page),
                     "<!doctype html><html><head><meta charset=\"utf-8\"><title>Link %s</title>"
                     "</head><body><p>This link is %s. If you need it, please ask for the "
                     "message again.</p></body></html>",
                     what, what);
    http_reply_bytes(req, status, "text/html; charset=utf-8", page, (size_t)n);
    no_cache(req);
}

static void record(app_t *app, const track_claim_t *c, const char *url)
{
    hd_err_t err;
    char moved[16], channel[16], type[64];
    if (tracking_record(app->db, c->comm_id, c->kind, c->index, url, moved, channel, type, &err) <
        0)
        log_warn(c->kind == 'c' ? "cannot record a click" : "cannot record an open", "comm_id",
                 c->comm_id, "reason", err.msg);
    else if (moved[0])
        metrics_comm(app->metrics, channel, moved, type);
}

void api_track_open(http_req_t *req)
{
    app_t *app = req->app;
    const char *t = router_param(&req->match, "token");
    char token[256];
    size_t n = t ? strlen(t) : 0;
    track_claim_t c;
    track_check_t rc = TRACK_INVALID;
    if (n > 4 && n < sizeof(token) && strcmp(t + n - 4, ".gif") == 0) {
        memcpy(token, t, n - 4);
        token[n - 4] = '\0';
        rc = track_verify_ring(&app->track, token, (int64_t)time(NULL), &c);
    }
    /* HEAD (link checkers, prefetchers) answers the same and records nothing */
    bool head = strcmp(req->method, "HEAD") == 0;
    if (rc == TRACK_OK && c.kind == 'o' && !head)
        record(app, &c, NULL);
    /* The pixel whatever the token: a mail client gets its image either way,
     * and an expired or forged token is recorded nowhere. */
    http_reply_bytes(req, 200, "image/gif", PIXEL, sizeof(PIXEL));
    no_cache(req);
}

void api_track_click(http_req_t *req)
{
    app_t *app = req->app;
    const char *token = router_param(&req->match, "token");
    track_claim_t c;
    track_check_t rc = track_verify_ring(&app->track, token, (int64_t)time(NULL), &c);
    if (rc == TRACK_EXPIRED && c.kind == 'c') {
        link_page(req, 410, "expired");
        return;
    }
    if (rc != TRACK_OK || c.kind != 'c') {
        link_page(req, 404, "not valid");
        return;
    }
    hd_err_t err;
    char *url = NULL;
    if (tracking_link(app->db, c.comm_id, c.index, &url, &err) != 0) {
        http_reply_error(req, 503, "unavailable", "cannot read the link; try again");
        return;
    }
    /* Only the URL the token was made for, and only one fit for a header. */
    if (url == NULL || !track_url_matches(&c, url) || !track_url_ok(url)) {
        free(url);
        link_page(req, 404, "not valid");
        return;
    }
    if (strcmp(req->method, "HEAD") != 0)
        record(app, &c, url);
    http_reply_bytes(req, 302, "text/plain", "", 0);
    http_reply_header(req, "Location", url);
    no_cache(req);
    free(url);
}
