/*
 * router.h - maps (method, path) to a handler.
 *
 * Patterns are literal segments and {name} captures ("/api/crm/x/{id}").
 * A path that matches a pattern under another method gives ROUTE_BAD_METHOD
 * with the Allow list, so the server can answer 405 rather than 404.
 */
#ifndef HERALD_HTTP_ROUTER_H
#define HERALD_HTTP_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_ROUTES 64
#define ROUTER_MAX_PARAMS 4

typedef enum { ROUTE_FOUND = 0, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD } route_status_t;

/* What a route expects as request body. BODY_JSON_OPT: a JSON object, or
 * nothing at all (no body: req->json stays NULL). */
typedef enum { BODY_NONE = 0, BODY_JSON, BODY_JSON_OPT, BODY_FORM, BODY_RAW } body_kind_t;

typedef struct route {
    const char *method;
    const char *pattern;
    void *handler;  /* opaque to the router: the server casts it */
    unsigned scope; /* required scope bits; 0 = public; ROUTE_AUTH = any valid token */
    body_kind_t body;
    int index; /* position in the table: the metrics label slot */
} route_t;

#define ROUTE_AUTH 0x100u

typedef struct route_match {
    const route_t *route;
    int nparams;
    char names[ROUTER_MAX_PARAMS][32];
    char values[ROUTER_MAX_PARAMS][256]; /* percent-decoded */
    char allow[64];                      /* ROUTE_BAD_METHOD: "GET, POST" */
} route_match_t;

typedef struct router {
    route_t routes[ROUTER_MAX_ROUTES];
    int count;
} router_t;

void router_init(router_t *r);

/* Adds a route; the strings must outlive the router. -1 when full or the
 * pattern is malformed. */
int router_add(router_t *r, const char *method, const char *pattern, void *handler, unsigned scope,
               body_kind_t body);

/* Matches path (no query string). HEAD matches GET routes. */
route_status_t router_match(const router_t *r, const char *method, const char *path,
                            route_match_t *m);

/* Value of the capture called name in m, or NULL. */
const char *router_param(const route_match_t *m, const char *name);

#endif
