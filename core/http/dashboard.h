/*
 * dashboard.h - the operator's web dashboard (issue 15 item 4): plain HTML,
 * CSS and JavaScript from core/http/dashboard/, compiled into the binary by
 * tools/embed.cmake and served at /dashboard. It is a client of the API:
 * an operator signs in with an API key (POST /api/crm/auth/token), and every
 * figure it shows comes from the endpoints documented in docs/.
 */
#ifndef HERALD_HTTP_DASHBOARD_H
#define HERALD_HTTP_DASHBOARD_H

#include <stddef.h>

typedef struct dash_asset {
    const char *name; /* "index.html", "app.js", ... */
    const unsigned char *data;
    size_t len;
} dash_asset_t;

/* Every file, then {NULL, NULL, 0} (generated: build/dashboard_assets.c). */
extern const dash_asset_t dash_assets[];

#endif
