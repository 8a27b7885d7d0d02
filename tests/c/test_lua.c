/*
 * test_lua.c - the policy runtime (core/lua): sandbox, budgets, generations,
 * reload, plain-data conversion. Uses its own small scripts in a temporary
 * directory so it tests the runtime, not the shipped policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lua/convert.h"
#include "lua/runtime.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64], scripts[128], templates[128];

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The smallest policy that satisfies the entry-point check, plus a probe
 * module whose functions the tests call. */
static void write_policy(const char *decide_channel)
{
    char strategy[640];
    snprintf(strategy, sizeof(strategy),
             "local M = {}\n"
             "function M.decide(req, prefs, now)\n"
             "  return {primary_channel = '%s', fallback_channels = {}, send_at = now,\n"
             "          priority = 50, batch = false, reasons = {'test'}}\n"
             "end\n"
             "function M.explain(d) return d.primary_channel end\n"
             "function M.refusal(ch, prefs) return nil end\n"
             "function M.when(req, prefs, now) return {send_at = now, reasons = {}} end\n"
             "return M\n",
             decide_channel);
    write_file(scripts, "strategy.lua", strategy);
    write_file(scripts, "retry.lua",
               "return {policy = function() return {action='give_up'} end,\n"
               "        no_receipt = function() return nil end,\n"
               "        alert = function() return {action='give_up'} end}");
    write_file(scripts, "classify.lua", "return {classify = function() return {} end}");
    write_file(
        scripts, "content.lua",
        "local M = {}\n"
        "function M.render(t, c, ctx) return {text = herald.templates['hello.txt']} end\n"
        "function M.compile_all()\n"
        "  if herald.templates['bad.txt'] then return nil, {'bad.txt:1: broken'} end\n"
        "  return true\n"
        "end\n"
        "function M.export_compiled()\n"
        "  return {['en\\thello.txt'] = 'frozen:' .. herald.templates['hello.txt'], 'skipped'}\n"
        "end\n"
        "return M\n");
    write_file(scripts, "inbound.lua",
               "return {keyword = function() return {action = \"none\"} end}");
    write_file(scripts, "whatsapp.lua",
               "return {choose = function() return {mode = \"text\", reason = \"t\"} end}");
    write_file(scripts, "limits.lua",
               "return {buckets = function() return {} end, cap = function() return nil end}");
    write_file(scripts, "types.lua",
               "return {check = function() return {known = true, problems = {}, warnings = {}} "
               "end,\n        list = function() return {} end}");
    write_file(scripts, "probe.lua",
               "local M = {}\n"
               "function M.eval(src) local f, e = load(src) if not f then error(e, 0) end\n"
               "  return f() end\n"
               "function M.echo(...) return {...} end\n"
               "function M.lib() return require('lib.util').twice(21) end\n"
               "return M\n");
    mkdir(scripts, 0755);
    char lib[256];
    snprintf(lib, sizeof(lib), "%s/lib", scripts);
    mkdir(lib, 0755);
    write_file(lib, "util.lua", "return {twice = function(x) return 2 * x end}");
    write_file(templates, "hello.txt", "Hello {{ name }}");
}

static int setup(void **state)
{
    snprintf(root, sizeof(root), "/tmp/herald-lua-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(scripts, sizeof(scripts), "%s/scripts", root);
    snprintf(templates, sizeof(templates), "%s/templates", root);
    mkdir(scripts, 0755);
    mkdir(templates, 0755);
    write_policy("email");
    lrt_opts_t o = {.scripts_dir = scripts,
                    .templates_dir = templates,
                    .limits = {.instruction_limit = 1000000,
                               .memory_limit = 8 << 20,
                               .retry_scale = 0.5,
                               .default_timezone = "Europe/Paris",
                               .public_url = "https://h.example"}};
    hd_err_t err;
    lrt_t *rt = lrt_new(&o, &err);
    if (rt == NULL)
        fail_msg("%s", err.msg);
    *state = rt;
    return 0;
}

static int teardown(void **state)
{
    lrt_free(*state);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

/* Evaluates src in the sandbox (through probe.eval); returns the JSON of
 * the result or NULL with err. */
static cJSON *eval(lrt_t *rt, const char *src, hd_err_t *err)
{
    cJSON *arg = cJSON_CreateString(src), *out = NULL;
    cJSON *args[] = {arg};
    int rc = lrt_call(rt, "probe", "eval", args, 1, &out, err);
    cJSON_Delete(arg);
    return rc == 0 ? out : NULL;
}

static void want_value(lrt_t *rt, const char *src, const char *json)
{
    hd_err_t err;
    cJSON *out = eval(rt, src, &err);
    if (out == NULL)
        fail_msg("%s: %s", src, err.msg);
    char *s = cJSON_PrintUnformatted(out);
    if (strcmp(s, json) != 0)
        fail_msg("%s: got %s, want %s", src, s, json);
    free(s);
    cJSON_Delete(out);
}

static void want_error(lrt_t *rt, const char *src, const char *fragment)
{
    hd_err_t err;
    cJSON *out = eval(rt, src, &err);
    if (out != NULL) {
        char *s = cJSON_PrintUnformatted(out);
        fail_msg("%s: expected an error containing \"%s\", got %s", src, fragment, s);
    }
    if (strstr(err.msg, fragment) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", src, err.msg, fragment);
}

static void test_forbidden_functions_are_absent(void **state)
{
    lrt_t *rt = *state;
    static const char *const absent[] = {
        "io",
        "os.execute",
        "os.exit",
        "os.getenv",
        "os.remove",
        "package",
        "dofile",
        "loadfile",
        "debug",
        "string.dump",
        "collectgarbage",
        "os.rename",
        "os.tmpname",
        "require and package",
    };
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        char src[128];
        snprintf(src, sizeof(src), "return %s == nil", absent[i]);
        if (strcmp(absent[i], "require and package") == 0)
            snprintf(src, sizeof(src), "return package == nil");
        want_value(rt, src, "true");
    }
    /* Reaching dump through the string metatable does not work either. */
    want_value(rt, "return (''). dump == nil", "true");
    want_value(rt, "return getmetatable('').__index.dump == nil", "true");
    /* Allowed pieces are there. */
    want_value(rt, "return os.time{year=2026, month=1, day=1, hour=0} ~= nil", "true");
    want_value(rt, "return string.format('%05.1f', math.pi)", "\"003.1\"");
}

static void test_escape_attempts_fail_safely(void **state)
{
    lrt_t *rt = *state;
    /* A binary chunk is refused even when asked for by mode. */
    want_value(rt, "return select(2, load('\\27Lua', 'x', 'b'))",
               "\"load: only text chunks are allowed\"");
    want_value(rt, "return select(2, load('\\27LuaT\\0'))",
               "\"attempt to load a binary chunk (mode is 't')\"");
    /* require reaches only scripts/, not files on disk. */
    want_error(rt, "return require('../../etc/passwd')", "not found in scripts/");
    want_error(rt, "return require('io')", "not found in scripts/");
    /* The real globals are not reachable through _G or load's env. */
    want_value(rt, "return _G.io == nil and load('return io')() == nil", "true");
}

static void test_endless_loop_is_stopped(void **state)
{
    lrt_t *rt = *state;
    want_error(rt, "while true do end", "instruction budget exceeded");
    /* The state still works afterwards. */
    want_value(rt, "return 1 + 1", "2");
}

static void test_memory_bomb_is_stopped(void **state)
{
    lrt_t *rt = *state;
    want_error(rt, "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end", "memory");
    want_error(rt, "return string.rep('x', 64 * 1024 * 1024)", "memory");
    want_value(rt, "return #string.rep('x', 1000)", "1000");
}

static void test_script_error_names_file_and_line(void **state)
{
    lrt_t *rt = *state;
    want_error(rt, "error('boom')", "boom");
    hd_err_t err;
    cJSON *out = NULL;
    assert_int_equal(lrt_call(rt, "probe", "nope", NULL, 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "probe.nope is not a function"));
}

static void test_plain_data_round_trip(void **state)
{
    lrt_t *rt = *state;
    cJSON *in = cJSON_Parse("{\"s\":\"é\",\"n\":1.5,\"i\":3,\"b\":true,\"z\":null,"
                            "\"a\":[1,\"two\",[]],\"o\":{\"k\":{}}}");
    cJSON *args[] = {in};
    cJSON *out = NULL;
    hd_err_t err;
    assert_int_equal(lrt_call(rt, "probe", "echo", args, 1, &out, &err), 0);
    /* empty JSON arrays stay arrays; an empty object stays an object */
    cJSON *want = cJSON_CreateArray();
    cJSON_AddItemToArray(want, cJSON_Duplicate(in, true));
    if (!cJSON_Compare(out, want, true)) {
        char *s = cJSON_PrintUnformatted(out);
        fail_msg("round trip changed the data: %s", s);
    }
    cJSON_Delete(want);
    cJSON_Delete(out);
    cJSON_Delete(in);
    /* Functions and mixed tables are not plain data: a clear error. */
    want_error(rt, "return {f = print}", "f: a function is not plain data");
    want_error(rt, "return {1, x = 2}", "not plain data");
    /* A NUL byte would cut the string short in C: refused, never truncated
     * (found by tests/fuzz/fuzz_lua.c). */
    want_error(rt, "return {subject = 'a\\0b'}", "subject: a string with a NUL byte");
    want_error(rt, "return {['k\\0x'] = 1}", "a key with a NUL byte");
    want_value(rt, "return {s = 'a\\1b'}", "{\"s\":\"a\\u0001b\"}");
}

static void test_herald_module(void **state)
{
    lrt_t *rt = *state;
    want_value(rt, "return herald.config.retry_scale", "0.5");
    want_value(rt, "return herald.config.default_timezone", "\"Europe/Paris\"");
    want_value(rt, "return herald.templates['hello.txt']", "\"Hello {{ name }}\"");
    want_value(rt, "return herald.sha256('abc'):sub(1, 16)", "\"ba7816bf8f01cfea\"");
    want_value(rt, "return herald.html_escape([[<a href=\"x\">'&]])",
               "\"&lt;a href=&#34;x&#34;&gt;&#39;&amp;\"");
    want_value(rt, "return herald.json_decode('{\"a\":[1,2]}').a[2]", "2");
    want_value(rt, "return select(2, herald.json_decode('{\"a\":'))",
               "\"malformed JSON at byte 4\"");
    want_value(rt, "return herald.sms_info('hello').encoding", "\"GSM-7\"");
    want_value(rt, "return herald.sms_info(string.rep('a', 161)).segments", "2");
    want_value(rt, "return herald.sms_info('zoë ✓').encoding", "\"UCS-2\"");
    want_value(rt, "return herald.to_local(1782900000, 'Europe/Paris').abbr", "\"CEST\"");
    want_value(rt, "return herald.valid_zone('Mars/Base')", "false");
    want_value(rt, "local r = herald.random() return r >= 0 and r < 1", "true");
    want_value(rt, "return #herald.uuid()", "36");
    want_value(rt, "return require('probe').lib()", "42");
}

/* Reload: a good edit becomes the next generation; a broken one keeps the
 * previous generation running and is reported with file and line. */
static void test_reload(void **state)
{
    lrt_t *rt = *state;
    hd_err_t err;
    lrt_status_t st;
    lrt_status(rt, &st);
    long gen = st.generation;

    cJSON *out = NULL, *req = cJSON_CreateObject(), *prefs = cJSON_CreateObject(),
          *now = cJSON_CreateNumber(1);
    cJSON *args[] = {req, prefs, now};
    assert_int_equal(lrt_call(rt, "strategy", "decide", args, 3, &out, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "primary_channel")->valuestring, "email");
    cJSON_Delete(out);

    write_policy("sms");
    assert_int_equal(lrt_reload(rt, &err), 0);
    assert_int_equal(lrt_call(rt, "strategy", "decide", args, 3, &out, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "primary_channel")->valuestring, "sms");
    cJSON_Delete(out);
    lrt_status(rt, &st);
    assert_int_equal(st.generation, gen + 1);
    assert_false(st.failing);

    /* A syntax error: refused, named, the sms policy keeps running. */
    write_file(scripts, "strategy.lua", "local M = {}\nfunction M.decide(\nreturn M\n");
    assert_int_equal(lrt_reload(rt, &err), -1);
    assert_non_null(strstr(err.msg, "strategy.lua:3:"));
    lrt_status(rt, &st);
    assert_true(st.failing);
    assert_non_null(strstr(st.error, "strategy.lua:3:"));
    assert_int_equal(st.generation, gen + 1);
    assert_int_equal(lrt_call(rt, "strategy", "decide", args, 3, &out, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "primary_channel")->valuestring, "sms");
    cJSON_Delete(out);

    /* A missing entry point and a template that does not compile: refused. */
    write_policy("sms");
    write_file(scripts, "retry.lua", "return {}");
    assert_int_equal(lrt_reload(rt, &err), -1);
    assert_non_null(strstr(err.msg, "entry point retry.policy is missing"));
    write_policy("sms");
    write_file(templates, "bad.txt", "{{");
    assert_int_equal(lrt_reload(rt, &err), -1);
    assert_non_null(strstr(err.msg, "bad.txt:1: broken"));
    char bad[256];
    snprintf(bad, sizeof(bad), "%s/bad.txt", templates);
    unlink(bad);

    /* Fixing it recovers. */
    write_policy("whatsapp");
    assert_int_equal(lrt_reload(rt, &err), 0);
    lrt_status(rt, &st);
    assert_false(st.failing);
    assert_int_equal(lrt_call(rt, "strategy", "decide", args, 3, &out, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "primary_channel")->valuestring, "whatsapp");
    cJSON_Delete(out);
    cJSON_Delete(req);
    cJSON_Delete(prefs);
    cJSON_Delete(now);
}

/* What the generation's check compiled (content.export_compiled) reaches
 * every state as herald.compiled, and follows a reload. */
static void test_compiled_templates_are_shared(void **state)
{
    lrt_t *rt = *state;
    hd_err_t err;
    want_value(rt, "return herald.compiled['en\\thello.txt']", "\"frozen:Hello {{ name }}\"");
    want_value(rt, "local n = 0 for _ in pairs(herald.compiled) do n = n + 1 end return n", "1");
    write_file(templates, "hello.txt", "Bonjour {{ name }}");
    assert_int_equal(lrt_reload(rt, &err), 0);
    want_value(rt, "return herald.compiled['en\\thello.txt']", "\"frozen:Bonjour {{ name }}\"");
}

static void *thread_decide(void *arg)
{
    lrt_t *rt = arg;
    hd_err_t err;
    for (int i = 0; i < 200; i++) {
        cJSON *out = NULL;
        cJSON *src = cJSON_CreateString("return 6 * 7");
        cJSON *args[] = {src};
        if (lrt_call(rt, "probe", "eval", args, 1, &out, &err) != 0 || out->valueint != 42)
            return (void *)1;
        cJSON_Delete(out);
        cJSON_Delete(src);
    }
    return NULL;
}

/* One state per thread: threads call concurrently while reloads happen. */
static void test_threads_and_reloads(void **state)
{
    lrt_t *rt = *state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_decide, rt);
    hd_err_t err;
    for (int i = 0; i < 5; i++)
        assert_int_equal(lrt_reload(rt, &err), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_functions_are_absent),
        cmocka_unit_test(test_escape_attempts_fail_safely),
        cmocka_unit_test(test_endless_loop_is_stopped),
        cmocka_unit_test(test_memory_bomb_is_stopped),
        cmocka_unit_test(test_script_error_names_file_and_line),
        cmocka_unit_test(test_plain_data_round_trip),
        cmocka_unit_test(test_herald_module),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_compiled_templates_are_shared),
        cmocka_unit_test(test_threads_and_reloads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
