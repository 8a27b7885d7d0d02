/*
 * ratelimit.h - the API's rate limits (limit/limit.h): each token subject's
 * share of the API. Uses http/server, limit.
 */
#ifndef HERALD_HTTP_RATELIMIT_H
#define HERALD_HTTP_RATELIMIT_H

#include "http/server.h"

#include <stdbool.h>

/* The authenticated subject's share of the API (limits.api_rate, api_burst):
 * true when refused, the reply set to 429 with Retry-After (whole seconds,
 * rounded up) and the JSON error body. */
bool http_refuse_over_limit(http_req_t *req);

#endif
