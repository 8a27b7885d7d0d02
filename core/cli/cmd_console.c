/*
 * cmd_console.c - `herald console`: a Lua REPL in the scripts' sandbox,
 * with helpers to try policy by hand. Works from a terminal (libedit line
 * editing and history) and from a pipe (one chunk per line, no prompt).
 * With --attach it also sees a running engine through its admin API
 * (http/api_ops.c): queue(), message(id), why(client_id), providers(),
 * pause(channel), resume(channel), retry(id).
 */
#include "base/buf.h"
#include "base/log.h"
#include "base/scope.h"
#include "base/timefmt.h"
#include "cli/cli.h"
#include "crypto/field.h"
#include "engine/whatif.h"
#include "http/auth.h"
#include "store/pg.h"
#include "lua/convert.h"
#include "lua/runtime.h"
#include "lua/state.h"

#include <curl/curl.h>
#include <editline/readline.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* The attached engine's helpers: admin(method, path, body?) is the C side. */
static const char attached_helpers[] =
    "local function enc(s)\n"
    "  return (tostring(s):gsub('[^%w%-%._~]', function(c)\n"
    "    return string.format('%%%02X', c:byte()) end))\n"
    "end\n"
    "function queue() return admin('GET', '/api/crm/admin/queue') end\n"
    "function message(id) return admin('GET', '/api/crm/communications/' .. enc(id)) end\n"
    "function why(client_id, limit)\n"
    "  return admin('GET', '/api/crm/admin/clients/' .. enc(client_id) .. '/why?limit=' ..\n"
    "               tostring(limit or 10))\n"
    "end\n"
    "function providers(minutes)\n"
    "  return admin('GET', '/api/crm/admin/providers?minutes=' .. tostring(minutes or 5))\n"
    "end\n"
    "function pause(channel, reason)\n"
    "  return admin('POST', '/api/crm/admin/channels/' .. enc(channel) .. '/pause',\n"
    "               herald.json_encode({reason = reason or 'paused from the console'}))\n"
    "end\n"
    "function resume(channel, reason)\n"
    "  return admin('POST', '/api/crm/admin/channels/' .. enc(channel) .. '/resume',\n"
    "               herald.json_encode({reason = reason or 'resumed from the console'}))\n"
    "end\n"
    "function retry(id)\n"
    "  return admin('POST', '/api/crm/communications/' .. enc(id) .. '/retry')\n"
    "end\n";

typedef struct console {
    lrt_t *rt;
    const cfg_t *cfg;
    const cJSON *examples;
    const char *url;   /* --attach: the engine's base URL, or NULL */
    const char *token; /* an admin token for it */
} console_t;

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    if (b->len + size * n > (16u << 20))
        return 0; /* more than 16 MiB: not an admin answer */
    buf_append(b, p, size * n);
    return size * n;
}

/* admin(method, path, body?) -> the answer's JSON as a table (or its text);
 * an error status raises the API's message. */
static int l_admin(lua_State *L)
{
    console_t *con = lua_touserdata(L, lua_upvalueindex(1));
    const char *method = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    const char *body = luaL_optstring(L, 3, NULL);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return luaL_error(L, "admin: cannot start libcurl");
    buf_t url, auth, out;
    buf_init(&url);
    buf_init(&auth);
    buf_init(&out);
    buf_printf(&url, "%s%s", con->url, path);
    buf_printf(&auth, "Authorization: Bearer %s", con->token);
    struct curl_slist *h = curl_slist_append(NULL, auth.data);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_free(&auth);
    buf_putc(&out, '\0');
    out.len--;
    cJSON *doc = rc == CURLE_OK ? cJSON_Parse(out.data) : NULL;
    if (rc != CURLE_OK || status < 200 || status >= 300) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        lua_pushfstring(L, "%s %s: %s", method, url.data,
                        rc != CURLE_OK      ? curl_easy_strerror(rc)
                        : cJSON_IsString(m) ? m->valuestring
                                            : "unexpected answer");
        if (status)
            lua_pushfstring(L, " (HTTP %d)", (int)status);
        else
            lua_pushliteral(L, " (is herald serve running there?)");
        lua_concat(L, 2);
        cJSON_Delete(doc);
        buf_free(&url);
        buf_free(&out);
        return lua_error(L);
    }
    if (doc)
        lconv_push_json(L, doc);
    else
        lua_pushlstring(L, out.data, out.len);
    cJSON_Delete(doc);
    buf_free(&url);
    buf_free(&out);
    return 1;
}

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

/* A time given to whatif{}: a date (its midnight UTC) or RFC 3339. */
static int when_of(lua_State *L, const char *name, const char *s, int64_t *out)
{
    char buf[64];
    if (s && strlen(s) == 10) {
        snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
        s = buf;
    }
    if (s == NULL || timefmt_parse(s, out) != 0)
        return luaL_error(L, "whatif: %s: expected a date (2026-11-30) or an RFC 3339 time", name);
    return 0;
}

/* whatif{scripts = DIR, from = DATE, to = DATE?, top = 20?} -> the report of
 * `herald whatif` (engine/whatif.h) as a table. */
static int l_whatif(lua_State *L)
{
    console_t *con = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "scripts");
    lua_getfield(L, 1, "from");
    lua_getfield(L, 1, "to");
    lua_getfield(L, 1, "top");
    const char *scripts = lua_tostring(L, -4), *from = lua_tostring(L, -3);
    const char *to = lua_tostring(L, -2);
    whatif_opts_t o = {.top = (int)luaL_optinteger(L, -1, 20), .to = (int64_t)time(NULL)};
    if (scripts == NULL)
        return luaL_error(L, "whatif: scripts = DIR (an edited copy of scripts/) is required");
    if (con->cfg == NULL)
        return luaL_error(L, "whatif: the stored preferences need the keys: start the console "
                             "with --attach, or with HERALD_ENCRYPTION_KEY set");
    when_of(L, "from", from, &o.from);
    if (to)
        when_of(L, "to", to, &o.to);
    if (o.to <= o.from)
        return luaL_error(L, "whatif: to must be after from");
    cfg_t cfg = *con->cfg;
    cfg.scripts_dir = (char *)scripts;
    hd_err_t err;
    lrt_t *edited = cli_policy(&cfg, &err);
    if (edited == NULL)
        return luaL_error(L, "whatif: %s: %s", scripts, err.msg);
    lrt_t *live = cli_policy(con->cfg, &err);
    fe_keyring_t *kr = live ? cli_keyring(con->cfg, "console") : NULL;
    pg_pool_t *db = kr ? cli_pool(con->cfg, "console") : NULL;
    cJSON *report = db ? whatif_run(db, kr, live, edited, &o, &err) : NULL;
    pg_pool_free(db);
    fe_keyring_free(kr);
    lrt_free(live);
    lrt_free(edited);
    if (report == NULL)
        return luaL_error(L, "whatif: %s", db ? err.msg : "no database (see above)");
    lconv_push_json(L, report);
    cJSON_Delete(report);
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
    lua_pushlightuserdata(L, con);
    lua_pushcclosure(L, l_whatif, 1);
    lua_setfield(L, -2, "whatif");
    if (con->url) {
        lua_pushlightuserdata(L, con);
        lua_pushcclosure(L, l_admin, 1);
        lua_setfield(L, -2, "admin");
    }
    lua_setfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
    if (luaL_loadbufferx(L, helpers, sizeof(helpers) - 1, "=console", "t") != LUA_OK)
        return hd_err_set(err, "%s", lua_tostring(L, -1));
    lua_getfield(L, LUA_REGISTRYINDEX, REG_CONSOLE);
    lua_setupvalue(L, -2, 1);
    if (lstate_pcall(L, 0, 0, err) != 0 || con->url == NULL)
        return con->url == NULL ? 0 : -1;
    if (luaL_loadbufferx(L, attached_helpers, sizeof(attached_helpers) - 1, "=console", "t") !=
        LUA_OK)
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
                                         {"attach", optional_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *attach = NULL;
    bool attached = false;
    int o;
    optind = 1;
    while ((o = cli_getopt("console", argc, argv, "c:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'a':
            attached = true;
            attach = optarg;
            break;
        case 'h':
            printf("usage: herald console [--config FILE] [--attach[=URL]]\n\n"
                   "A Lua prompt in the same sandbox the policy scripts run in. Helpers:\n"
                   "  decide{message_type='welcome', urgency='normal',\n"
                   "         prefs={timezone='Europe/Paris', email='a@b.c'}, now=...}\n"
                   "  explain{...}                  the decision in plain words\n"
                   "  render('welcome', 'sms' [, context])   examples[...] by default\n"
                   "  reload()                      load the scripts again\n"
                   "  require('strategy') ...       any policy module\n"
                   "With --attach (the engine at URL, default http://<http.listen>; an admin\n"
                   "token from HERALD_ADMIN_TOKEN, or minted with HERALD_JWT_SECRET):\n"
                   "  queue()                       jobs by state, messages by status, channel\n"
                   "                                and urgency, the oldest due job, pauses\n"
                   "  message(id)                   a message: attempts, events, reasons\n"
                   "  why(client_id [, n])          the client's last messages with reasons\n"
                   "  providers([minutes])          attempts, error rate, last error per provider\n"
                   "  pause(channel [, reason])     stop sending on a channel (jobs wait;\n"
                   "  resume(channel)               audited); resume sends what waited\n"
                   "  retry(id)                     send a failed message again (audited)\n"
                   "whatif{scripts=DIR, from='2026-11-01', to=..., top=20}: the stored requests\n"
                   "  of the period through DIR and the live scripts (herald whatif --help)\n"
                   "Reads from a pipe too: one chunk per line, results on stdout.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("console", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    const char *env_token = getenv("HERALD_ADMIN_TOKEN");
    bool mint = attached && (env_token == NULL || *env_token == '\0');
    /* secrets: a minted token, and whatif{} decrypts stored preferences; a
     * console for trying policy by hand needs none */
    const char *enc = getenv("HERALD_ENCRYPTION_KEY");
    bool secrets = attached || (enc && *enc);
    if (cli_load_config(config, &cfg, secrets) != 0)
        return CLI_FAIL;
    char url[600] = "";
    char *minted = NULL;
    if (attached) {
        if (attach && *attach)
            snprintf(url, sizeof(url), "%s", attach);
        else
            snprintf(url, sizeof(url), "http://%s:%d",
                     strcmp(cfg.listen_host, "0.0.0.0") == 0 ? "127.0.0.1" : cfg.listen_host,
                     cfg.listen_port);
        size_t ul = strlen(url);
        while (ul && url[ul - 1] == '/')
            url[--ul] = '\0';
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
            cfg_free(&cfg);
            return cli_usage_error("console", "--attach: expected an http(s) URL, got %s", url);
        }
        hd_err_t merr;
        if (mint && auth_mint(&cfg, "console", SCOPE_ADMIN | SCOPE_READ, 3600, (int64_t)time(NULL),
                              &minted, &merr) != 0) {
            fprintf(stderr, "herald console: %s\n", merr.msg);
            cfg_free(&cfg);
            return CLI_FAIL;
        }
    }
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
    console_t con = {.rt = rt,
                     .cfg = secrets ? &cfg : NULL,
                     .examples = examples,
                     .url = attached ? url : NULL,
                     .token = minted ? minted : env_token};
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
    free(minted);
    cfg_free(&cfg);
    /* From a pipe, a failing line makes the whole run fail (scripts use it). */
    return (!tty && failures) ? CLI_FAIL : CLI_OK;
}
