/*
 * cmd_console.c - `herald console`: a Lua REPL in the scripts' sandbox,
 * with helpers to try policy by hand. Works from a terminal (libedit line
 * editing and history) and from a pipe (one chunk per line, no prompt).
 */
#include "base/buf.h"
#include "base/log.h"
#include "cli/cli.h"
#include "lua/convert.h"
#include "lua/runtime.h"
#include "lua/state.h"

#include <editline/readline.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REG_CONSOLE "herald.console"

/* Helpers, run in the console environment of each (re)built state. */
static const char helpers[] =
    "local function req_of(t)\n"
    "  local r = {}\n"
    "  for k, v in pairs(t or {}) do\n"
    "    if k ~= 'prefs' and k ~= 'preferences' and k ~= 'now' then r[k] = v end\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "function decide(t)\n"
    "  t = t or {}\n"
    "  return require('strategy').decide(req_of(t), t.prefs or t.preferences or {},\n"
    "                                    t.now or herald.now())\n"
    "end\n"
    "function explain(t) return require('strategy').explain(decide(t)) end\n"
    "function render(message_type, channel, context)\n"
    "  return require('content').render(message_type, channel or 'email',\n"
    "                                   context or examples[message_type] or {})\n"
    "end\n"
    "local function show(v, indent, seen)\n"
    "  indent = indent or ''\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  if type(v) ~= 'table' then return tostring(v) end\n"
    "  seen = seen or {}\n"
    "  if seen[v] then return '<cycle>' end\n"
    "  seen[v] = true\n"
    "  local keys = {}\n"
    "  for k in pairs(v) do keys[#keys + 1] = k end\n"
    "  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "  if #keys == 0 then return '{}' end\n"
    "  local out, inner = {}, indent .. '  '\n"
    "  for _, k in ipairs(keys) do\n"
    "    local name = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k\n"
    "                 or '[' .. show(k) .. ']'\n"
    "    out[#out + 1] = inner .. name .. ' = ' .. show(v[k], inner, seen)\n"
    "  end\n"
    "  return '{\\n' .. table.concat(out, ',\\n') .. '\\n' .. indent .. '}'\n"
    "end\n"
    "function show_all(...)\n"
    "  local n, parts = select('#', ...), {}\n"
    "  for i = 1, n do parts[i] = show((select(i, ...))) end\n"
    "  return table.concat(parts, '\\t')\n"
    "end\n";

typedef struct console {
    lrt_t *rt;
    const cJSON *examples;
} console_t;

static int l_reload(lua_State *L)
{
    console_t *con = lua_touserdata(L, lua_upvalueindex(1));
    hd_err_t err;
    if (lrt_reload(con->rt, &err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushstring(L, "reloaded: the next line runs the new generation (local variables are "
                      "gone)");
    return 1;
}

/* Installs the console environment in L once per state. */
static int setup_env(lua_State *L, console_t *con, hd_err_t *err)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
    bool ready = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (ready)
        return 0;
    lua_newtable(L); /* stack: env */
    lua_newtable(L);
    lstate_push_env(L);
    lua_setfield(L, -2, "__index"); /* globals fall through to the sandbox */
    lua_setmetatable(L, -2);
    lconv_push_json(L, con->examples);
    lua_setfield(L, -2, "examples");
    lua_pushlightuserdata(L, con);
    lua_pushcclosure(L, l_reload, 1);
    lua_setfield(L, -2, "reload");
    lua_setfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
    if (luaL_loadbufferx(L, helpers, sizeof(helpers) - 1, "=console", "t") != LUA_OK)
        return hd_err_set(err, "%s", lua_tostring(L, -1));
    lua_getfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
    lua_setupvalue(L, -2, 1);
    return lstate_pcall(L, 0, 0, err);
}

/* Compiles line as an expression ("return ...") or else a statement. 0:
 * the function is on the stack; 1: the chunk is incomplete (more lines
 * needed) and -1: a syntax error, each with the message on the stack. */
static int compile(lua_State *L, const char *code)
{
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "return %s;", code);
    int rc = luaL_loadbufferx(L, b.data, b.len, "=stdin", "t");
    buf_free(&b);
    if (rc == LUA_OK)
        return 0;
    lua_pop(L, 1);
    rc = luaL_loadbufferx(L, code, strlen(code), "=stdin", "t");
    if (rc == LUA_OK)
        return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (rc == LUA_ERRSYNTAX && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0)
        return 1;
    return -1;
}

static char *read_line(bool tty, const char *prompt)
{
    if (tty) {
        char *l = readline(prompt);
        if (l && *l)
            add_history(l);
        return l;
    }
    buf_t b;
    buf_init(&b);
    int c;
    while ((c = getchar()) != EOF && c != '\n')
        buf_putc(&b, (char)c);
    if (c == EOF && b.len == 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

/* Runs one complete chunk and prints its results; returns 0 or -1. */
static int run_chunk(lua_State *L, const char *code)
{
    int top = lua_gettop(L);
    int rc = compile(L, code);
    if (rc != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_settop(L, top);
        return -1;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
    lua_setupvalue(L, -2, 1);
    hd_err_t err;
    if (lstate_pcall(L, 0, LUA_MULTRET, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        lua_settop(L, top);
        return -1;
    }
    int n = lua_gettop(L) - top;
    if (n > 0) {
        lua_getfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
        lua_getfield(L, -1, "show_all");
        lua_remove(L, -2);
        lua_insert(L, top + 1); /* stack: show_all, results... */
        if (lstate_pcall(L, n, 1, &err) == 0)
            printf("%s\n", lua_tostring(L, -1));
        else
            fprintf(stderr, "error: %s\n", err.msg);
    }
    lua_settop(L, top);
    fflush(stdout);
    return 0;
}

int cmd_console(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int o;
    optind = 1;
    while ((o = cli_getopt("console", argc, argv, "c:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            printf("usage: herald console [--config FILE]\n\n"
                   "A Lua prompt in the same sandbox the policy scripts run in. Helpers:\n"
                   "  decide{message_type='welcome', urgency='normal',\n"
                   "         prefs={timezone='Europe/Paris', email='a@b.c'}, now=...}\n"
                   "  explain{...}                  the decision in plain words\n"
                   "  render('welcome', 'sms' [, context])   examples[...] by default\n"
                   "  reload()                      load the scripts again\n"
                   "  require('strategy') ...       any policy module\n"
                   "Reads from a pipe too: one chunk per line, results on stdout.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("console", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0)
        return CLI_FAIL;
    bool tty = isatty(STDIN_FILENO);
    /* A closed terminal is the end of input: finish cleanly (history saved)
     * rather than die of SIGHUP. */
    if (tty)
        signal(SIGHUP, SIG_IGN);
    /* The console prints each error itself; the log would say it twice. */
    log_set_level(LOG_CRIT);
    hd_err_t err;
    lrt_t *rt = cli_policy(&cfg, &err);
    if (rt == NULL) {
        fprintf(stderr, "herald console: %s\n", err.msg);
        cfg_free(&cfg);
        return CLI_FAIL;
    }
    cJSON *examples = cli_examples(rt, &err);
    if (examples == NULL) /* the prompt still helps to find out why */
        examples = cJSON_CreateObject();
    console_t con = {.rt = rt, .examples = examples};
    if (tty)
        printf("herald console (Lua 5.4 sandbox). Try explain{message_type='welcome'}; "
               "Ctrl-D quits.\n");
    /* History survives sessions, in var/ next to the other runtime files. */
    char history[1100];
    snprintf(history, sizeof(history), "%s/console_history", cfg.var_dir);
    if (tty) {
        stifle_history(1000);
        read_history(history);
    }
    int failures = 0;
    buf_t pending;
    buf_init(&pending);
    for (;;) {
        char *line = read_line(tty, pending.len ? ">> " : "> ");
        if (line == NULL)
            break;
        if (pending.len)
            buf_putc(&pending, '\n');
        buf_puts(&pending, line);
        free(line);
        lua_State *L = lrt_state(rt, &err);
        if (L == NULL || setup_env(L, &con, &err) != 0) {
            fprintf(stderr, "herald console: %s\n", err.msg);
            failures++;
            buf_reset(&pending);
            continue;
        }
        int top = lua_gettop(L);
        int c = compile(L, pending.data);
        lua_settop(L, top);
        if (c == 1 && tty)
            continue; /* incomplete: read another line */
        if (run_chunk(L, pending.data) != 0)
            failures++;
        buf_reset(&pending);
    }
    buf_free(&pending);
    if (tty && write_history(history) != 0)
        fprintf(stderr, "herald console: cannot save history to %s\n", history);
    cJSON_Delete(examples);
    lrt_free(rt);
    cfg_free(&cfg);
    /* From a pipe, a failing line makes the whole run fail (scripts use it). */
    return (!tty && failures) ? CLI_FAIL : CLI_OK;
}
