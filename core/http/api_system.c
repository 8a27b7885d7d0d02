/* api_system.c - GET /api/crm/health and GET /metrics (engine/status samples
 * the gauges, obs/metrics renders them, labelled with the router's routes). */
#include "base/log.h"
#include "engine/status.h"
#include "http/api.h"
#include "obs/metrics.h"
#include "obs/process.h"

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

/* The queue for an admin: depth by state and how long the longest-waiting
 * due job has waited (null when the database cannot say). */
static void add_queue(cJSON *doc, app_t *app, int db_ok)
{
    status_queue_t q;
    hd_err_t err;
    if (!db_ok || status_queue(app, &q, &err) != 0) {
        cJSON_AddNullToObject(doc, "queue");
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(doc, "queue");
    cJSON_AddNumberToObject(o, "due", (double)q.due);
    cJSON_AddNumberToObject(o, "scheduled", (double)q.scheduled);
    cJSON_AddNumberToObject(o, "leased", (double)q.leased);
    cJSON_AddNumberToObject(o, "oldest_due_age_s", (double)(long)(q.oldest_due_s * 1000) / 1000);
}

static void add_process(cJSON *doc)
{
    proc_sample_t p;
    if (proc_sample(&p) != 0) {
        cJSON_AddNullToObject(doc, "process");
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(doc, "process");
    cJSON_AddNumberToObject(o, "cpu_seconds", (double)(long)(p.cpu_seconds * 100) / 100);
    cJSON_AddNumberToObject(o, "resident_memory_bytes", p.resident_bytes);
    cJSON_AddNumberToObject(o, "open_fds", (double)p.open_fds);
    cJSON_AddNumberToObject(o, "max_fds", (double)p.max_fds);
    cJSON_AddNumberToObject(o, "threads", (double)p.threads);
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
        add_queue(doc, app, db_ok);
        add_process(doc);
    }
    http_reply_json(req, db_ok && rd_ok ? 200 : 503, doc);
}

void api_metrics(http_req_t *req)
{
    app_t *app = req->app;
    metrics_gauges_t g;
    status_gauges(app, &g);
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
