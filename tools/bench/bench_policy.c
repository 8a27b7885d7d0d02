/*
 * bench_policy.c - cost of the C -> Lua policy calls the engine makes per
 * message: strategy.decide (with its JSON in/out conversion) and
 * content.render for each channel (and the welcome email of make bench-e2e),
 * through lrt_call on one thread.
 *   build/bench_policy [--only TEXT] [--profile FILE] [iterations]
 *   (run from the repository root)
 * --only runs the benchmarks whose label contains TEXT; --profile samples the
 * Lua stack 1,000 times a CPU second (a SIGPROF timer arms a one-instruction
 * hook, which records the stack and puts the state's own hook back) and
 * writes one line per distinct stack, "frame;frame;... count", root first,
 * for tools/bench/lua_profile.py. Time in a C function (string.gsub, ...)
 * falls on the Lua line that called it.
 */
#include "lua/runtime.h"

#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *only;

/* --- the sampler ------------------------------------------------------- */

#define PROF_MAX_STACKS 8192
#define PROF_STACK_LEN  2048

static lua_State *prof_L;
static lua_Hook prof_saved_hook;
static int prof_saved_mask, prof_saved_count;
static char *prof_stacks[PROF_MAX_STACKS];
static long prof_counts[PROF_MAX_STACKS];
static int prof_n;
static long prof_samples, prof_dropped;

static void prof_record(lua_State *L)
{
    char frames[64][160];
    int depth = 0;
    lua_Debug ar;
    for (int level = 0; depth < 64 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Snl", &ar))
            break;
        if (ar.what[0] == 'C')
            snprintf(frames[depth++], sizeof(frames[0]), "[C] %s", ar.name ? ar.name : "?");
        else
            snprintf(frames[depth++], sizeof(frames[0]), "%s:%d %s%s", ar.short_src,
                     level == 0 ? ar.currentline : ar.linedefined, ar.name ? ar.name : "?",
                     level == 0 ? " (line)" : "");
    }
    char stack[PROF_STACK_LEN];
    size_t off = 0;
    stack[0] = '\0';
    for (int i = depth - 1; i >= 0 && off < sizeof(stack); i--)
        off += (size_t)snprintf(stack + off, sizeof(stack) - off, "%s%s", frames[i], i ? ";" : "");
    prof_samples++;
    for (int i = 0; i < prof_n; i++)
        if (strcmp(prof_stacks[i], stack) == 0) {
            prof_counts[i]++;
            return;
        }
    if (prof_n == PROF_MAX_STACKS) {
        prof_dropped++;
        return;
    }
    prof_stacks[prof_n] = strdup(stack);
    prof_counts[prof_n++] = 1;
}

static void prof_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, prof_saved_hook, prof_saved_mask, prof_saved_count);
    prof_record(L);
}

static void prof_signal(int sig)
{
    (void)sig;
    /* lua_sethook is the one Lua call safe in a signal handler (lua.c);
     * armed again at every tick, since a new call puts the state's hook back */
    if (prof_L != NULL)
        lua_sethook(prof_L, prof_hook, LUA_MASKCOUNT, 1);
}

static void prof_start(lrt_t *rt)
{
    hd_err_t err;
    prof_L = lrt_state(rt, &err);
    if (prof_L == NULL) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        exit(1);
    }
    prof_saved_hook = lua_gethook(prof_L);
    prof_saved_mask = lua_gethookmask(prof_L);
    prof_saved_count = lua_gethookcount(prof_L);
    signal(SIGPROF, prof_signal);
    struct itimerval it = {.it_interval = {0, 1000}, .it_value = {0, 1000}};
    setitimer(ITIMER_PROF, &it, NULL);
}

static void prof_write(const char *path)
{
    struct itimerval off = {0};
    setitimer(ITIMER_PROF, &off, NULL);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    for (int i = 0; i < prof_n; i++)
        fprintf(f, "%s %ld\n", prof_stacks[i], prof_counts[i]);
    fclose(f);
    fprintf(stderr, "bench_policy: %ld samples (%ld in stacks beyond the table) in %s\n",
            prof_samples, prof_dropped, path);
}

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
    if (only != NULL && strstr(label, only) == NULL)
        return;
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
    long iters = 20000;
    const char *profile = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc)
            profile = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: build/bench_policy [--only TEXT] [--profile FILE] [iterations]\n"
                   "  the cost of the engine's C -> Lua policy calls, one thread;\n"
                   "  --only: the benchmarks whose label contains TEXT\n"
                   "  --profile: Lua stacks sampled 1,000 times a CPU second, to FILE\n"
                   "    (summarize with tools/bench/lua_profile.py FILE)\n");
            return 0;
        } else if (argv[i][0] >= '1' && argv[i][0] <= '9')
            iters = atol(argv[i]);
        else {
            fprintf(stderr, "bench_policy: unknown argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
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
    if (profile != NULL)
        prof_start(rt);
    cJSON *req = cJSON_Parse("{\"message_type\":\"vendor_options\",\"urgency\":\"high\","
                             "\"plan_id\":\"p1\",\"client_id\":\"c1\",\"context\":{}}");
    cJSON *prefs = cJSON_Parse("{\"email\":\"a@b.c\",\"phone\":\"+14155550100\","
                               "\"timezone\":\"Europe/Paris\",\"quiet_hours\":"
                               "{\"start\":\"21:00\",\"end\":\"08:00\"}}");
    cJSON *now = cJSON_CreateNumber(1795856400);
    cJSON *dargs[] = {req, prefs, now};
    bench(rt, "strategy.decide", "strategy", "decide", dargs, 3, iters);
    {
        /* asked before every attempt (engine/dispatch.c): the smallest calls,
         * where the C <-> Lua crossing is most of the cost */
        cJSON *ch = cJSON_CreateString("email"), *sender = cJSON_CreateString("default"),
              *type = cJSON_CreateString("welcome"), *urg = cJSON_CreateString("high");
        cJSON *rargs[] = {ch, prefs};
        bench(rt, "strategy.refusal", "strategy", "refusal", rargs, 2, iters);
        cJSON *wargs[] = {req, prefs, now};
        bench(rt, "strategy.when", "strategy", "when", wargs, 3, iters);
        cJSON *bargs[] = {ch, sender, type, urg};
        bench(rt, "limits.buckets", "limits", "buckets", bargs, 4, iters);
        cJSON *cargs[] = {ch, type, urg};
        bench(rt, "limits.cap", "limits", "cap", cargs, 3, iters);
        cJSON_Delete(ch);
        cJSON_Delete(sender);
        cJSON_Delete(type);
        cJSON_Delete(urg);
    }
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
    if (profile != NULL)
        prof_write(profile);
    lrt_free(rt);
    return 0;
}
