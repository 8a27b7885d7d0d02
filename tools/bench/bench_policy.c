/*
 * bench_policy.c - cost of the C -> Lua policy calls the engine makes per
 * message: strategy.decide (with its JSON in/out conversion) and
 * content.render for each channel (and the welcome email of make bench-e2e),
 * through lrt_call on one thread.
 *   build/bench_policy [iterations]   (run from the repository root)
 */
#include "lua/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The declared example of a message type (scripts/types.lua). */
static cJSON *example(lrt_t *rt, const char *type)
{
    cJSON *list = NULL, *found = NULL;
    hd_err_t err;
    if (lrt_call(rt, "types", "list", NULL, 0, &list, &err) != 0) {
        fprintf(stderr, "bench_policy: types.list: %s\n", err.msg);
        exit(1);
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, type) == 0)
            found = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "example"), true);
    }
    cJSON_Delete(list);
    if (found == NULL) {
        fprintf(stderr, "bench_policy: no example for %s\n", type);
        exit(1);
    }
    return found;
}

static void bench(lrt_t *rt, const char *label, const char *mod, const char *fn, cJSON **args,
                  int nargs, long iters)
{
    hd_err_t err;
    cJSON *out = NULL;
    for (int i = 0; i < 100; i++) { /* warm the state and its template cache */
        if (lrt_call(rt, mod, fn, args, nargs, &out, &err) != 0) {
            fprintf(stderr, "%s: %s\n", label, err.msg);
            exit(1);
        }
        cJSON_Delete(out);
    }
    double t0 = now_s();
    clock_t c0 = clock();
    for (long i = 0; i < iters; i++) {
        lrt_call(rt, mod, fn, args, nargs, &out, &err);
        cJSON_Delete(out);
    }
    double wall = now_s() - t0, cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("%-34s %8ld calls  %7.2f us/call  %9.0f calls/s  (cpu %.2f s)\n", label, iters,
           wall / (double)iters * 1e6, (double)iters / wall, cpu);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    lrt_opts_t o = {.scripts_dir = "scripts",
                    .templates_dir = "templates",
                    .limits = {.instruction_limit = 10000000,
                               .memory_limit = 64 << 20,
                               .deadline_ms = 1000,
                               .pattern_max = 16384,
                               .retry_scale = 1,
                               .default_timezone = "UTC",
                               .public_url = "http://127.0.0.1:8080"},
                    .decision_ms = 50, /* config.lua's defaults: the clock is read */
                    .render_ms = 200};
    hd_err_t err;
    lrt_t *rt = lrt_new(&o, &err);
    if (rt == NULL) {
        fprintf(stderr, "bench_policy: %s (run from the repository root)\n", err.msg);
        return 1;
    }
    cJSON *req = cJSON_Parse("{\"message_type\":\"vendor_options\",\"urgency\":\"high\","
                             "\"plan_id\":\"p1\",\"client_id\":\"c1\",\"context\":{}}");
    cJSON *prefs = cJSON_Parse("{\"email\":\"a@b.c\",\"phone\":\"+14155550100\","
                               "\"timezone\":\"Europe/Paris\",\"quiet_hours\":"
                               "{\"start\":\"21:00\",\"end\":\"08:00\"}}");
    cJSON *now = cJSON_CreateNumber(1795856400);
    cJSON *dargs[] = {req, prefs, now};
    bench(rt, "strategy.decide", "strategy", "decide", dargs, 3, iters);
    cJSON *ctx = example(rt, "vendor_options");
    const char *ctypes[] = {"welcome", "vendor_options"};
    for (int i = 0; i < 2; i++) {
        /* what acceptance asks of every request (scripts/types.lua) */
        cJSON *t = cJSON_CreateString(ctypes[i]), *c = example(rt, ctypes[i]);
        cJSON *cargs[] = {t, c};
        char label[64];
        snprintf(label, sizeof(label), "types.check %s", ctypes[i]);
        bench(rt, label, "types", "check", cargs, 2, iters);
        cJSON_Delete(t);
        cJSON_Delete(c);
    }
    {
        /* the e2e bench's message (tools/bench/e2e.sh): a welcome email */
        cJSON *t = cJSON_CreateString("welcome"), *c = cJSON_CreateString("email"),
              *wctx = example(rt, "welcome");
        cJSON *rargs[] = {t, c, wctx};
        bench(rt, "content.render welcome/email", "content", "render", rargs, 3, iters / 4);
        cJSON_Delete(t);
        cJSON_Delete(c);
        cJSON_Delete(wctx);
    }
    const char *channels[] = {"email", "sms", "whatsapp"};
    for (int i = 0; i < 3; i++) {
        cJSON *t = cJSON_CreateString("vendor_options"), *c = cJSON_CreateString(channels[i]);
        cJSON *rargs[] = {t, c, ctx};
        char label[64];
        snprintf(label, sizeof(label), "content.render vendor_options/%s", channels[i]);
        bench(rt, label, "content", "render", rargs, 3, iters / (i == 0 ? 10 : 1));
        cJSON_Delete(t);
        cJSON_Delete(c);
    }
    cJSON_Delete(ctx);
    cJSON_Delete(req);
    cJSON_Delete(prefs);
    cJSON_Delete(now);
    lrt_free(rt);
    return 0;
}
