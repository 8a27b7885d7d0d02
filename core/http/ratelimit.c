/*
 * ratelimit.c - the API's rate limits (see ratelimit.h).
 */
#include "http/ratelimit.h"

#include "base/log.h"
#include "cache/denylist.h"
#include "http/auth.h"
#include "limit/limit.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void reply_429(http_req_t *req, long long wait_ms, const char *fmt, double n)
{
    char secs[24];
    snprintf(secs, sizeof(secs), "%lld", (wait_ms + 999) / 1000);
    http_reply_error(req, 429, "rate_limited", fmt, n, wait_ms);
    http_reply_header(req, "Retry-After", secs);
}

int http_authenticate_limited(http_req_t *req, hd_err_t *err)
{
    app_t *app = req->app;
    const cfg_t *cfg = app->cfg;
    int64_t now = (int64_t)time(NULL);
    auth_principal_t *p = &req->principal;
    if (auth_verify_bearer(cfg, http_header(req, "Authorization"), now, p, err) != 0)
        return -1;
    lim_rule_t rule = {.rate = cfg->limit_api_rate, .per_s = 1, .burst = cfg->limit_api_burst};
    char key[160], marker[DENY_KEY_MAX], entry[DENY_KEY_MAX];
    snprintf(key, sizeof(key), "api:%s", p->sub);
    const char *reads[] = {marker, entry};
    char *values[2] = {NULL, NULL};
    bool read_ok = false;
    int nreads = p->jti[0] ? 2 : 0;
    if (nreads)
        deny_keys(p->jti, marker, entry);
    lim_result_t r = lim_check_reading(app->limiter, key, &rule, nreads, reads, values, &read_ok);
    deny_status_t deny = read_ok ? deny_status_of(values[0] != NULL, values[1] != NULL) : DENY_DOWN;
    free(values[0]);
    free(values[1]);
    int arc = auth_check_revocation(app->db, app->redis, p, now, deny, err);
    if (arc != 0)
        return arc;
    req->authenticated = true; /* the access log names the subject, 429 or not */
    if (r.allowed)
        return 0;
    metrics_rate_limited(app->metrics, "api", lim_shared(app->limiter));
    reply_429(req, r.retry_after_ms,
              "more than %g requests a second for this token; retry in %lld ms",
              cfg->limit_api_rate);
    return 1;
}

/* The peer's address (the connection's, not a header's). */
static void client_addr(http_req_t *req, char *addr, size_t asize)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(addr, asize, "unknown");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, asize);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, asize);
    }
}

/* "authfail:<limit>:<address>"; the limit is in the key, so a new setting
 * starts new buckets. */
static void failure_key(http_req_t *req, char *key, size_t size, char *addr, size_t asize)
{
    client_addr(req, addr, asize);
    snprintf(key, size, "authfail:%d:%s", req->app->cfg->limit_auth_failures, addr);
}

bool http_refuse_source_flood(http_req_t *req)
{
    const cfg_t *cfg = req->app->cfg;
    const char *kind;
    double rate;
    if (strncmp(req->path, "/api/crm/webhooks/", 18) == 0) {
        kind = "webhook";
        rate = cfg->limit_webhook_rate;
    } else if (strncmp(req->path, "/t/", 3) == 0) {
        kind = "tracking";
        rate = cfg->limit_tracking_rate;
    } else {
        return false;
    }
    char addr[INET6_ADDRSTRLEN + 1], key[128];
    client_addr(req, addr, sizeof(addr));
    snprintf(key, sizeof(key), "src:%s:%g:%s", kind, rate, addr);
    lim_rule_t rule = {.rate = rate, .per_s = 1, .burst = rate * 2 < 1 ? 1 : (int)(rate * 2)};
    lim_result_t r = lim_check(req->app->limiter, key, &rule);
    if (r.allowed)
        return false;
    metrics_rate_limited(req->app->metrics, kind, lim_shared(req->app->limiter));
    reply_429(req, r.retry_after_ms,
              "more than %g requests a second from this address; retry in %lld ms", rate);
    return true;
}

static lim_rule_t failure_rule(const cfg_t *cfg, bool peek)
{
    return (lim_rule_t){.rate = cfg->limit_auth_failures,
                        .per_s = 60,
                        .burst = cfg->limit_auth_failures,
                        .peek = peek};
}

bool http_refuse_auth_failures(http_req_t *req)
{
    char key[96], addr[INET6_ADDRSTRLEN + 1];
    failure_key(req, key, sizeof(key), addr, sizeof(addr));
    lim_rule_t rule = failure_rule(req->app->cfg, true);
    lim_result_t r = lim_check(req->app->limiter, key, &rule);
    if (r.allowed)
        return false;
    metrics_rate_limited(req->app->metrics, "auth_failures", lim_shared(req->app->limiter));
    log_warn("auth: address refused for too many failures", "route", req->path);
    reply_429(req, r.retry_after_ms,
              "more than %g refused credentials a minute from this address; retry in %lld ms",
              req->app->cfg->limit_auth_failures);
    return true;
}

void http_auth_failed(http_req_t *req, const char *why)
{
    char key[96], addr[INET6_ADDRSTRLEN + 1];
    failure_key(req, key, sizeof(key), addr, sizeof(addr));
    lim_rule_t rule = failure_rule(req->app->cfg, false);
    (void)lim_check(req->app->limiter, key, &rule);
    metrics_auth_failure(req->app->metrics);
    log_info("auth: credential refused", "route", req->path, "reason", why);
}
