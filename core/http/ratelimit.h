/*
 * ratelimit.h - the API's rate limits (limit/limit.h): each token subject's
 * share of the API. Uses http/server, limit.
 */
#ifndef HERALD_HTTP_RATELIMIT_H
#define HERALD_HTTP_RATELIMIT_H

#include "http/server.h"

#include <stdbool.h>

/* Authenticates the request (http/auth.h) and counts it against its
 * subject's share of the API (limits.api_rate, api_burst), with one Redis
 * round trip for both: the API bucket's GCRA and the token's deny list
 * entry are one script call (lim_check_reading). Fills req->principal and,
 * for a token that is good, sets req->authenticated.
 * Returns 0 (authenticated, within its share), -1 (401: err says why), -2
 * (503: whether the token is revoked cannot be told) or 1: over its share,
 * the reply set to 429 with Retry-After (whole seconds, rounded up) and the
 * JSON error body. A token that is refused is still counted. */
int http_authenticate_limited(http_req_t *req, hd_err_t *err);

/* Webhooks (/api/crm/webhooks/...) and tracking (/t/...) per source address
 * (limits.webhook_rate, tracking_rate, burst twice that), so a flood cannot
 * starve the API: true when refused (reply set: 429, Retry-After). Other
 * paths are not counted. */
bool http_refuse_source_flood(http_req_t *req);

/* Brute-force protection of POST /auth/token and /auth/refresh: at most
 * limits.auth_failures refused credentials a minute per client address.
 * http_refuse_auth_failures is asked before the credential is checked: true
 * when this address used them up (reply set: 429, Retry-After). */
bool http_refuse_auth_failures(http_req_t *req);
/* A credential was refused: counted against the address, logged (the route
 * and the reason; never the credential nor the address) and in crm_auth_failures_total. */
void http_auth_failed(http_req_t *req, const char *why);

#endif
