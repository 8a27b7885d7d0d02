/*
 * test_budget.c - a policy call cannot outrun its budgets (core/lua/state.c,
 * core/lua/runtime.c): once a call exceeds its instruction budget or its
 * wall-clock deadline, pcall, xpcall and coroutines cannot carry on, the call
 * fails even when the script swallowed the error, and the thread's next call
 * runs in a fresh state. C calls the hook cannot interrupt are bounded before
 * they start (pattern subjects, string.rep, __gc). Every test runs under a
 * watchdog: a call that escapes its budget fails the run instead of hanging it.
 * BUDGET_VERBOSE=1 prints how long each stopped call took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lua/runtime.h"
#include "lua/state.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_S 20 /* far above any bound tested here */

static char root[64], scripts[128], templates[128];

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "\ntest_budget: a call ran past the watchdog: a budget was escaped\n";
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(2);
    _exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The line numbers of loops.lua are asserted below: keep them. */
static const char loops_lua[] =
    "local M = {}\n"
    "function M.pcall_loop()\n"
    "  while true do pcall(function() while true do end end) end\n" /* 3 */
    "end\n"
    "function M.xpcall_loop()\n"
    "  while true do xpcall(function() while true do end end, function(e) return e end) end\n"
    "end\n"
    "function M.swallow()\n"
    "  return pcall(function() while true do end end)\n" /* 9: nothing runs after it */
    "end\n"
    "function M.catch_and_go_on()\n"
    "  local caught = 0\n"
    "  while true do\n"
    "    local ok = pcall(function() local x = 0 while true do x = x + 1 end end)\n"
    "    if not ok then caught = caught + 1 end\n"
    "  end\n"
    "end\n"
    "function M.handler_loops()\n"
    "  return xpcall(function() while true do end end, function() while true do end end)\n"
    "end\n"
    "function M.wrap_loop()\n"
    "  return coroutine.wrap(function()\n"
    "    while true do pcall(function() while true do end end) end\n" /* 23 */
    "  end)()\n"
    "end\n"
    "function M.resume_loop()\n"
    "  local co = coroutine.create(function()\n"
    "    while true do pcall(function() while true do end end) end\n" /* 28 */
    "  end)\n"
    "  return coroutine.resume(co)\n"
    "end\n"
    "function M.slow_c()\n"
    "  while true do local s = string.rep('x', 2 << 20) end\n" /* 33 */
    "end\n"
    "function M.spin() while true do end end\n" /* 35 */
    "function M.date(s) return s:match('^%s*(%d%d%d%d)%-(%d%d)%-(%d%d)(.-)%s*$') end\n"
    "function M.marker() return marker end\n"
    "function M.eval(src) local f, e = load(src) if not f then error(e, 0) end return f() end\n"
    "return M\n";

static const char strategy_lua[] =
    "local M = {}\n"
    "function M.decide(req, prefs, now)\n"
    "  return {primary_channel = 'email', fallback_channels = {}, send_at = now,\n"
    "          priority = 50, batch = false, reasons = {'test'}}\n"
    "end\n"
    "function M.explain(d) return d.primary_channel end\n"
    "function M.refusal(ch, prefs) return nil end\n"
    "function M.when(req, prefs, now) return {send_at = now, reasons = {}} end\n"
    "return M\n";

static void write_policy(void)
{
    write_file(scripts, "strategy.lua", strategy_lua);
    write_file(scripts, "retry.lua",
               "return {policy = function() return {action='give_up'} end,\n"
               "        no_receipt = function() return nil end,\n"
               "        alert = function() return {action='give_up'} end}");
    write_file(scripts, "classify.lua", "return {classify = function() return {} end}");
    write_file(scripts, "content.lua",
               "return {render = function() return {text = 'hi'} end,\n"
               "        compile_all = function() return true end}");
    write_file(scripts, "inbound.lua",
               "return {keyword = function() return {action = \"none\"} end}");
    write_file(scripts, "whatsapp.lua",
               "return {choose = function() return {mode = \"text\", reason = \"t\"} end}");
    write_file(scripts, "limits.lua",
               "return {buckets = function() return {} end, cap = function() return nil end}");
    write_file(scripts, "types.lua",
               "return {check = function() return {known = true, problems = {}, warnings = {}} "
               "end,\n        list = function() return {} end}");
    write_file(scripts, "loops.lua", loops_lua);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGALRM, on_alarm);
    snprintf(root, sizeof(root), "/tmp/herald-budget-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(scripts, sizeof(scripts), "%s/scripts", root);
    snprintf(templates, sizeof(templates), "%s/templates", root);
    mkdir(scripts, 0755);
    mkdir(templates, 0755);
    write_policy();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

static int arm(void **state)
{
    (void)state;
    alarm(WATCHDOG_S);
    return 0;
}

static int disarm(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* A runtime over the test policy; 0 is "none" for every limit. */
static lrt_t *new_rt(long instructions, long decision_ms, long render_ms, size_t pattern_max)
{
    lrt_opts_t o = {.scripts_dir = scripts,
                    .templates_dir = templates,
                    .limits = {.instruction_limit = instructions,
                               .memory_limit = 8 << 20,
                               .deadline_ms = 2000,
                               .pattern_max = pattern_max,
                               .retry_scale = 1,
                               .default_timezone = "UTC",
                               .public_url = "https://h.example"},
                    .decision_ms = decision_ms,
                    .render_ms = render_ms};
    hd_err_t err;
    lrt_t *rt = lrt_new(&o, &err);
    if (rt == NULL)
        fail_msg("%s", err.msg);
    return rt;
}

/* Calls loops.fn(arg?) within `within`; returns 0 or -1 with err, and the
 * milliseconds it took in *ms. */
static int call(lrt_t *rt, lrt_deadline_t within, const char *fn, const char *arg, double *ms,
                cJSON **out, hd_err_t *err)
{
    cJSON *a = arg ? cJSON_CreateString(arg) : NULL;
    cJSON *args[] = {a};
    cJSON *res = NULL;
    double t0 = now_ms();
    int rc = lrt_call_within(rt, within, "loops", fn, args, a ? 1 : 0, &res, err);
    if (ms)
        *ms = now_ms() - t0;
    cJSON_Delete(a);
    if (out)
        *out = res;
    else
        cJSON_Delete(res);
    return rc;
}

/* loops.fn must fail within max_ms with an error containing every fragment. */
static void want_stopped(lrt_t *rt, lrt_deadline_t within, const char *fn, const char *arg,
                         double max_ms, const char *frag1, const char *frag2)
{
    hd_err_t err;
    double ms;
    cJSON *out = NULL;
    if (call(rt, within, fn, arg, &ms, &out, &err) == 0) {
        char *s = cJSON_PrintUnformatted(out);
        fail_msg("loops.%s: returned %s instead of failing", fn, s);
    }
    if (strstr(err.msg, frag1) == NULL || (frag2 && strstr(err.msg, frag2) == NULL))
        fail_msg("loops.%s: error \"%s\" lacks \"%s\" / \"%s\"", fn, err.msg, frag1,
                 frag2 ? frag2 : "");
    if (getenv("BUDGET_VERBOSE"))
        fprintf(stderr, "loops.%s: %.1f ms\n", fn, ms);
    if (ms > max_ms)
        fail_msg("loops.%s: stopped after %.0f ms, more than %.0f", fn, ms, max_ms);
}

/* Evaluates src through loops.eval; wants the JSON `json` back. */
static void want_value(lrt_t *rt, const char *src, const char *json)
{
    hd_err_t err;
    cJSON *out = NULL;
    if (call(rt, LRT_DECISION, "eval", src, NULL, &out, &err) != 0)
        fail_msg("%s: %s", src, err.msg);
    char *s = cJSON_PrintUnformatted(out);
    if (strcmp(s, json) != 0)
        fail_msg("%s: got %s, want %s", src, s, json);
    free(s);
    cJSON_Delete(out);
}

/* Makes `coroutine` visible to the calling thread's state: the sandbox has
 * no coroutines today, but the budget must hold if it ever gets them. */
static void give_coroutines(lrt_t *rt)
{
    hd_err_t err;
    lua_State *L = lrt_state(rt, &err);
    assert_non_null(L);
    lstate_push_env(L);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
    lua_setfield(L, -2, "coroutine");
    lua_pop(L, 1);
}

static void test_endless_loop_inside_pcall(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 0, 0, 0);
    want_stopped(rt, LRT_DECISION, "pcall_loop", NULL, 5000,
                 "loops.lua:3:", "instruction budget exceeded (1000000 instructions)");
    want_stopped(rt, LRT_DECISION, "xpcall_loop", NULL, 5000,
                 "loops.lua:6:", "instruction budget exceeded");
    /* A message handler that loops itself cannot hold the call either. */
    want_stopped(rt, LRT_DECISION, "handler_loops", NULL, 5000, "instruction budget exceeded",
                 NULL);
    lrt_free(rt);
}

static void test_caught_budget_error_still_fails_the_call(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 0, 0, 0);
    /* pcall is the function's last word (a tail call): no instruction of the
     * script runs after the error is caught, so only C can tell. */
    want_stopped(rt, LRT_DECISION, "swallow", NULL, 5000,
                 "loops.lua:9:", "instruction budget exceeded");
    /* A script that catches the error in a loop and goes on. */
    want_stopped(rt, LRT_DECISION, "catch_and_go_on", NULL, 5000,
                 "loops.lua:", "instruction budget exceeded");
    lrt_free(rt);
}

static void test_coroutines_are_counted_and_stopped(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 0, 0, 0);
    give_coroutines(rt);
    want_stopped(rt, LRT_DECISION, "wrap_loop", NULL, 5000,
                 "loops.lua:23:", "instruction budget exceeded");
    give_coroutines(rt); /* the tripped state is gone with what was added to it */
    want_stopped(rt, LRT_DECISION, "resume_loop", NULL, 5000,
                 "loops.lua:28:", "instruction budget exceeded");
    lrt_free(rt);
}

static void test_deadline_stops_slow_calls(void **state)
{
    (void)state;
    /* No instruction limit at all: the clock alone stops the loop. */
    lrt_t *rt = new_rt(0, 50, 120, 0);
    want_stopped(rt, LRT_DECISION, "spin", NULL, 1000,
                 "loops.lua:35:", "deadline of 50 ms exceeded");
    /* The render deadline is the render's. */
    want_stopped(rt, LRT_RENDER, "spin", NULL, 1000,
                 "loops.lua:35:", "deadline of 120 ms exceeded");
    lrt_free(rt);
    /* Few instructions, each a slowish C call: the budget of instructions
     * would take many seconds; the deadline stops it. */
    rt = new_rt(1000000, 50, 200, 0);
    want_stopped(rt, LRT_DECISION, "slow_c", NULL, 500,
                 "loops.lua:33:", "deadline of 50 ms exceeded");
    lrt_free(rt);
}

static void test_next_call_runs_in_a_fresh_state(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 50, 200, 0);
    hd_err_t err;
    lua_State *L = lrt_state(rt, &err);
    lstate_push_env(L);
    lua_pushstring(L, "left over");
    lua_setfield(L, -2, "marker");
    lua_pop(L, 1);
    want_value(rt, "return marker", "\"left over\"");
    want_stopped(rt, LRT_DECISION, "pcall_loop", NULL, 5000, "instruction budget exceeded", NULL);
    /* Nothing of the tripped state reaches the next call, which works. */
    want_value(rt, "return marker == nil", "true");
    want_value(rt, "return 6 * 7", "42");
    cJSON *out = NULL;
    assert_int_equal(call(rt, LRT_DECISION, "marker", NULL, NULL, &out, &err), 0);
    assert_true(cJSON_IsNull(out));
    cJSON_Delete(out);
    lrt_free(rt);
}

/* The state layer on its own: a caught error still fails the call, and a
 * tripped state runs nothing more. */
static void test_tripped_state_runs_nothing_more(void **state)
{
    (void)state;
    lstate_source_t src = {0};
    lstate_limits_t lim = {.instruction_limit = 100000, .memory_limit = 8 << 20};
    hd_err_t err;
    lua_State *L = lstate_new(&src, &lim, &err);
    assert_non_null(L);
    assert_int_equal(luaL_loadstring(L, "return pcall(function() while true do end end)"), 0);
    assert_int_equal(lstate_pcall_within(L, 0, 0, 1, &err), -1);
    assert_non_null(strstr(err.msg, "instruction budget exceeded"));
    assert_true(lstate_tripped(L));
    assert_int_equal(lua_gettop(L), 0);
    assert_int_equal(luaL_loadstring(L, "return 1"), 0);
    assert_int_equal(lstate_pcall(L, 0, 1, &err), -1);
    assert_non_null(strstr(err.msg, "the state was abandoned"));
    assert_int_equal(lua_gettop(L), 0);
    lstate_free(L);
}

static void test_string_rep_is_bounded(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 50, 200, 0);
    double t0 = now_ms();
    /* Lua copies nothing 1e15 times for an empty string: refused to spin. */
    want_value(rt, "return #string.rep('', 1e15)", "0");
    want_value(rt, "return #('').rep('', 1e15, '')", "0");
    assert_true(now_ms() - t0 < 1000);
    /* Anything else is bounded by the memory cap (8 MiB here). */
    hd_err_t err;
    double ms;
    assert_int_equal(
        call(rt, LRT_DECISION, "eval", "return string.rep('x', 1 << 30)", &ms, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "memory"));
    assert_int_equal(call(rt, LRT_DECISION, "eval", "return ('ab'):rep(3e8, ',')", &ms, NULL, &err),
                     -1);
    assert_non_null(strstr(err.msg, "memory"));
    assert_true(ms < 1000);
    want_value(rt, "return #string.rep('ab', 3, ',')", "8");
    lrt_free(rt);
}

static void test_patterns_refuse_long_subjects(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 50, 200, 16384);
    /* The date filter's pattern is quadratic: 65 KB of spaces took seconds. */
    char *subject = malloc(70000);
    snprintf(subject, 70000, "2026-01-01%*sx", 65536, "");
    want_stopped(rt, LRT_DECISION, "date", subject, 200, "loops.lua:36:",
                 "string.match: a subject of 65547 bytes is longer than the 16384 bytes");
    free(subject);
    want_value(rt, "return select(2, pcall(string.gsub, string.rep('a', 16385), 'a', 'b'))",
               "\"string.gsub: a subject of 16385 bytes is longer than the 16384 bytes patterns "
               "may scan (lua.pattern_max_bytes)\"");
    want_value(rt, "return pcall(string.gmatch, string.rep('a', 16385), 'a')", "false");
    want_value(rt, "return pcall(string.find, string.rep('a', 16385), 'a+b')", "false");
    /* Up to the limit, and plain finds of any length, work as before. */
    want_value(rt, "return select(2, string.rep(' ', 16384):gsub('%s', 'x'))", "16384");
    want_value(rt, "return (string.rep('a', 100000) .. 'b'):find('b', 1, true)", "100001");
    want_value(rt, "return select(2, pcall(string.find))",
               "\"bad argument #1 to 'string.find' (string expected, got no value)\"");
    /* A replacement function re-enters Lua: the budget covers it. */
    want_stopped(rt, LRT_DECISION, "eval",
                 "return (('a'):rep(100)):gsub('a', function() while true do end end)", 1000,
                 "exceeded", NULL);
    lrt_free(rt);
}

static void test_finalizers_cannot_run_unbounded(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 50, 200, 0);
    /* A __gc runs with hooks off, when a collection or lua_close finds the
     * table: no budget could stop it, so scripts cannot set one. */
    want_value(rt,
               "return select(2, pcall(setmetatable, {}, {__gc = function() while true do end "
               "end}))",
               "\"setmetatable: __gc metamethods are not allowed in scripts\"");
    hd_err_t err;
    assert_int_equal(call(rt, LRT_DECISION, "eval",
                          "getmetatable(herald.array()).__gc = function() while true do end end\n"
                          "local t = herald.array({}) error('collect now')",
                          NULL, NULL, &err),
                     -1);
    assert_non_null(strstr(err.msg, "collect now"));
    want_value(rt, "return getmetatable(herald.array()).__gc", "null");
    want_value(rt, "return getmetatable(setmetatable({}, {__index = {}})) ~= nil", "true");
    lrt_free(rt);
}

/* A script that runs away while it is loaded is refused at reload with file
 * and line; the previous generation keeps answering. */
static void test_reload_refuses_a_runaway_script(void **state)
{
    (void)state;
    lrt_t *rt = new_rt(1000000, 50, 200, 0);
    lrt_status_t st;
    lrt_status(rt, &st);
    long gen = st.generation;
    char text[2048];
    snprintf(text, sizeof(text), "while true do pcall(function() while true do end end) end\n%s",
             strategy_lua);
    write_file(scripts, "strategy.lua", text);
    hd_err_t err;
    double t0 = now_ms();
    assert_int_equal(lrt_reload(rt, &err), -1);
    assert_true(now_ms() - t0 < 5000);
    if (strstr(err.msg, "strategy.lua:1: instruction budget exceeded") == NULL)
        fail_msg("reload error: %s", err.msg);
    lrt_status(rt, &st);
    assert_true(st.failing);
    assert_int_equal(st.generation, gen);
    assert_non_null(strstr(st.error, "strategy.lua:1:"));
    cJSON *out = NULL, *req = cJSON_CreateObject(), *prefs = cJSON_CreateObject(),
          *now = cJSON_CreateNumber(1);
    cJSON *args[] = {req, prefs, now};
    assert_int_equal(lrt_call(rt, "strategy", "decide", args, 3, &out, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "primary_channel")->valuestring, "email");
    cJSON_Delete(out);
    cJSON_Delete(req);
    cJSON_Delete(prefs);
    cJSON_Delete(now);
    write_policy();
    assert_int_equal(lrt_reload(rt, &err), 0);
    lrt_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endless_loop_inside_pcall, arm, disarm),
        cmocka_unit_test_setup_teardown(test_caught_budget_error_still_fails_the_call, arm, disarm),
        cmocka_unit_test_setup_teardown(test_coroutines_are_counted_and_stopped, arm, disarm),
        cmocka_unit_test_setup_teardown(test_deadline_stops_slow_calls, arm, disarm),
        cmocka_unit_test_setup_teardown(test_next_call_runs_in_a_fresh_state, arm, disarm),
        cmocka_unit_test_setup_teardown(test_tripped_state_runs_nothing_more, arm, disarm),
        cmocka_unit_test_setup_teardown(test_string_rep_is_bounded, arm, disarm),
        cmocka_unit_test_setup_teardown(test_patterns_refuse_long_subjects, arm, disarm),
        cmocka_unit_test_setup_teardown(test_finalizers_cannot_run_unbounded, arm, disarm),
        cmocka_unit_test_setup_teardown(test_reload_refuses_a_runaway_script, arm, disarm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
