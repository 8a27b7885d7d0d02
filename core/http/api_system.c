/* api_system.c - GET /api/crm/health and GET /metrics (obs/metrics renders it,
 * labelled with the router's routes). */
#include "base/log.h"
#include "http/api.h"
#include "obs/metrics.h"
#include "store/repo_analytics.h"
#include "store/repo_comms.h"

#include <time.h>

/* A route's slot (route_t.index) is its metrics slot. */
_Static_assert(ROUTER_MAX_ROUTES <= METRICS_MAX_ROUTES, "every route needs a metrics slot");

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Without an admin token the body says only what is up and what is down;
 * the log says why (host names and user names stay out of any answer). */
static cJSON *probe(const char *what, int ok, double ms, const char *why, bool detail)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ok ? "up" : "down");
    if (detail)
        cJSON_AddNumberToObject(o, "latency_ms", (double)(long)(ms * 1000) / 1000);
    if (!ok) {
        cJSON_AddStringToObject(o, "error", "unreachable; see the server log");
        log_warn("health check failed", "component", what, "reason", why);
    }
    return o;
}

/* An admin token, when one is presented, opens the details (versions, the
 * script error with its file and line). Health itself needs no token, and a
 * wrong one is not an error here: it only gets the public answer. */
static bool admin_asks(http_req_t *req)
{
    const char *h = http_header(req, "Authorization");
    auth_principal_t who;
    hd_err_t err;
    return h &&
           auth_authenticate(req->app->cfg, req->app->db, req->app->redis, h, (int64_t)time(NULL),
                             &who, &err) == 0 &&
           (who.scopes & SCOPE_ADMIN);
}

/* The scripts' state: public, whether they load and which generation runs;
 * for an admin, the counts and the last error. */
static cJSON *scripts_state(app_t *app, bool detail)
{
    if (detail)
        return api_policy_status(app);
    lrt_status_t st;
    lrt_status(app->policy, &st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", st.failing ? "error" : "ok");
    cJSON_AddNumberToObject(o, "generation", (double)st.generation);
    return o;
}

void api_health(http_req_t *req)
{
    app_t *app = req->app;
    hd_err_t dberr = {{0}}, rderr = {{0}};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int db_ok = pg_pool_ping(app->probe ? app->probe : app->db, &dberr) == 0;
    double db_ms = ms_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rd_ok = rd_ping(app->redis, &rderr) == 0;
    double rd_ms = ms_since(&t0);

    /* Without Redis the engine keeps serving (degraded); without the
     * database it cannot accept anything (down). Both answer 503 so a load
     * balancer moves traffic, while the body tells an operator which. */
    const char *status = db_ok && rd_ok ? "ok" : (db_ok ? "degraded" : "down");
    bool detail = admin_asks(req);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "status", status);
    if (detail) {
        cJSON_AddStringToObject(doc, "version", HERALD_VERSION);
        cJSON_AddNumberToObject(doc, "uptime_s", (double)(time(NULL) - app->started));
    }
    cJSON_AddItemToObject(doc, "database", probe("database", db_ok, db_ms, dberr.msg, detail));
    cJSON_AddItemToObject(doc, "redis", probe("redis", rd_ok, rd_ms, rderr.msg, detail));
    cJSON_AddItemToObject(doc, "scripts", scripts_state(app, detail));
    if (detail) { /* the limiter: shared buckets, or in-process at rate / processes */
        cJSON *l = cJSON_AddObjectToObject(doc, "limits");
        cJSON_AddStringToObject(l, "mode", lim_shared(app->limiter) ? "shared" : "in_process");
        cJSON_AddNumberToObject(l, "processes", lim_processes(app->limiter));
        cJSON_AddNumberToObject(l, "in_process_checks", (double)lim_fallback_count(app->limiter));
    }
    http_reply_json(req, db_ok && rd_ok ? 200 : 503, doc);
}

void api_metrics(http_req_t *req)
{
    app_t *app = req->app;
    metrics_gauges_t g = {0};
    pg_pool_stats(app->db, &g.db_in_use, &g.db_idle, &g.db_size);
    g.db_up = pg_pool_ping(app->db, NULL) == 0;
    /* Probe on every scrape (cheap; throttled while Redis is down), so the
     * gauge falls even when nothing else touches Redis. */
    g.redis_up = rd_ping(app->redis, NULL) == 0;
    g.uptime_s = (double)(time(NULL) - app->started);
    g.limit_shared = lim_shared(app->limiter);
    g.limit_processes = lim_processes(app->limiter);
    if (g.db_up) {
        g.queue_known = comms_queue_depth(app->db, &g.queue_due, &g.queue_scheduled,
                                          &g.queue_leased, NULL) == 0;
        analytics_open_rates(app->db, g.open_rate, NULL);
    } else {
        g.open_rate[0] = g.open_rate[1] = g.open_rate[2] = -1;
    }
    lrt_status_t ls;
    lrt_status(app->policy, &ls);
    g.script_generation = ls.generation;
    g.script_reload_errors = ls.reload_errors;
    g.script_failing = ls.failing;
    metrics_route_t routes[ROUTER_MAX_ROUTES];
    for (int i = 0; i < app->router->count; i++)
        routes[i] =
            (metrics_route_t){app->router->routes[i].method, app->router->routes[i].pattern};
    buf_t out;
    buf_init(&out);
    metrics_render(app->metrics, routes, app->router->count, &g, &out);
    http_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    buf_free(&out);
}
