/*
 * ratelimit.c - the API's rate limits (see ratelimit.h).
 */
#include "http/ratelimit.h"

#include "limit/limit.h"

#include <stdio.h>

bool http_refuse_over_limit(http_req_t *req)
{
    const cfg_t *cfg = req->app->cfg;
    lim_rule_t rule = {.rate = cfg->limit_api_rate, .per_s = 1, .burst = cfg->limit_api_burst};
    char key[160];
    snprintf(key, sizeof(key), "api:%s", req->principal.sub);
    lim_result_t r = lim_check(req->app->limiter, key, &rule);
    if (r.allowed)
        return false;
    char secs[24];
    snprintf(secs, sizeof(secs), "%lld", (r.retry_after_ms + 999) / 1000);
    http_reply_error(req, 429, "rate_limited",
                     "more than %g requests a second for this token; retry in %lld ms",
                     cfg->limit_api_rate, r.retry_after_ms);
    http_reply_header(req, "Retry-After", secs);
    return true;
}
