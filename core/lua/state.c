/*
 * state.c - sandboxed states (see state.h). The only place C enters Lua is
 * lstate_pcall: a protected call with a traceback message handler, as
 * lua.c's docall does, so one script error never takes the process down.
 */
#include "lua/state.h"
#include "base/buf.h"
#include "base/log.h"
#include "lua/module.h"
#include "lua/redact.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

/* Per-state bookkeeping, kept in the allocator's ud and the registry. */
typedef struct lstate_box {
    size_t used;
    size_t limit;
    long instruction_limit;
    long instructions; /* executed in the current call */
    long default_deadline_ms;
    long deadline_ms;    /* the current call's, for its message */
    int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
    int tripped;         /* TRIP_*: set once, for the life of the state */
    char trip_msg[200];  /* "file:line: instruction budget exceeded (...)" */
    size_t pattern_max;
    lua_State *main; /* the main thread, whose hook a trip speeds up too */
    const lstate_source_t *src;
    cJSON *const *priv; /* the current call's personal arguments (borrowed) */
    int npriv;
} lstate_box_t;

enum { TRIP_NONE, TRIP_INSTRUCTIONS, TRIP_DEADLINE };

#define HOOK_EVERY 1000       /* instructions between two reads of the budget */
#define BIG_ALLOC  (64 << 10) /* an allocation this large reads the clock */
#define REG_BOX    "herald.box"
#define REG_ENV    "herald.env"
#define REG_LOADED "herald.loaded"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool past_deadline(const lstate_box_t *box)
{
    return box->deadline_ns != 0 && now_ns() >= box->deadline_ns;
}

static void count_hook(lua_State *L, lua_Debug *ar);

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lstate_box_t *box = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        box->used -= old;
        return NULL;
    }
    /* Refusing the allocation makes Lua raise a memory error inside the
     * call that asked, which the protected call turns into a failure. */
    if (box->limit && nsize > old && box->used + (nsize - old) > box->limit)
        return NULL;
    /* A loop of large C operations (string.rep, table.concat, ...) can run
     * long between two ticks of the hook: past the deadline, a large
     * allocation has the hook run at the main thread's next instruction. */
    if (nsize >= BIG_ALLOC && nsize > old && !box->tripped && past_deadline(box))
        lua_sethook(box->main, count_hook, LUA_MASKCOUNT, 1);
    void *p = realloc(ptr, nsize);
    if (p != NULL)
        box->used = box->used - old + nsize;
    return p;
}

static lstate_box_t *get_box(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* The call ran out: remember why and where (the function at `level`), make
 * this thread and the main thread run the hook at every instruction (other
 * coroutines raise at their next tick: the flag is checked first), and
 * raise. */
static void trip(lua_State *L, int level, int why)
{
    lstate_box_t *box = get_box(L);
    lua_Debug ar;
    char where[LUA_IDSIZE + 24] = "";
    if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(where, sizeof(where), "%s:%d: ", ar.short_src, ar.currentline);
    if (why == TRIP_INSTRUCTIONS)
        snprintf(box->trip_msg, sizeof(box->trip_msg),
                 "%sinstruction budget exceeded (%ld instructions)", where, box->instruction_limit);
    else
        snprintf(box->trip_msg, sizeof(box->trip_msg), "%sdeadline of %ld ms exceeded", where,
                 box->deadline_ms);
    box->tripped = why;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    if (box->main != L)
        lua_sethook(box->main, count_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, box->trip_msg);
    lua_error(L);
}

/* Counts instructions and reads the clock every HOOK_EVERY instructions;
 * once tripped, raises again at every instruction, so a script that catches
 * the error cannot go on. Threads created by coroutine.create/wrap inherit
 * the hook (lua_newthread copies it), so coroutines are counted too. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lstate_box_t *box = get_box(L);
    if (box->tripped) {
        lua_pushstring(L, box->trip_msg);
        lua_error(L);
        return;
    }
    box->instructions += lua_gethookcount(L);
    if (past_deadline(box))
        trip(L, 0, TRIP_DEADLINE);
    else if (box->instruction_limit && box->instructions > box->instruction_limit)
        trip(L, 0, TRIP_INSTRUCTIONS);
}

/* For C functions that may run long: past the deadline, stop before. */
static void check_deadline(lua_State *L)
{
    lstate_box_t *box = get_box(L);
    if (!box->tripped && past_deadline(box))
        trip(L, 1, TRIP_DEADLINE);
}

static const lstate_file_t *find_script(const lstate_source_t *src, const char *name)
{
    for (int i = 0; i < src->nscripts; i++)
        if (strcmp(src->scripts[i].name, name) == 0)
            return &src->scripts[i];
    return NULL;
}

/* require(name): modules of this generation only, loaded once per state. */
/* herald.limit(key, rate, per?, burst?) -> allowed, retry_after_s: a rate
 * of the script's own (issue 13 item 6), in the engine's shared limiter
 * under "script:<key>", so no script reaches another's or the engine's
 * keys. key: 1 to 100 of [A-Za-z0-9:_.-]; rate > 0 per `per` (1) seconds,
 * burst (1) at once. */
static int l_limit(lua_State *L)
{
    const lstate_limits_t *lim = lua_touserdata(L, lua_upvalueindex(1));
    size_t n;
    const char *key = luaL_checklstring(L, 1, &n);
    double rate = luaL_checknumber(L, 2), per = luaL_optnumber(L, 3, 1);
    lua_Integer burst = luaL_optinteger(L, 4, 1);
    bool ok = n >= 1 && n <= 100;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)key[i]) || strchr(":_.-", key[i]) != NULL;
    if (!ok)
        return luaL_error(L, "herald.limit: key must be 1 to 100 of A-Z a-z 0-9 : _ . -");
    if (!(rate > 0) || !(per > 0) || burst < 1 || burst > 1000000)
        return luaL_error(L, "herald.limit: rate and per above 0, burst from 1 to 1000000");
    double after = 0;
    if (lim->limit && lim->limit(lim->limit_arg, key, rate, per, (int)burst, &after) != 0)
        return luaL_error(L, "herald.limit: the limiter cannot answer");
    lua_pushboolean(L, after <= 0);
    lua_pushnumber(L, after);
    return 2;
}

static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_LOADED);
    lua_getfield(L, -1, name); /* stack: name, loaded, mod */
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    if (strcmp(name, "herald") == 0) {
        lstate_push_env(L);
        lua_getfield(L, -1, "herald");
        return 1;
    }
    const lstate_file_t *f = find_script(get_box(L)->src, name);
    if (f == NULL)
        return luaL_error(L, "module '%s' not found in scripts/", name);
    char chunk[512];
    snprintf(chunk, sizeof(chunk), "@%s", f->path);
    if (luaL_loadbufferx(L, f->source, f->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    lstate_push_env(L);
    lua_setupvalue(L, -2, 1); /* the chunk's _ENV is the sandbox */
    lua_pushstring(L, name);
    lua_call(L, 1, 1); /* errors propagate to the caller's protected call */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name); /* stack: name, loaded, mod */
    return 1;
}

/* load(chunk [, name [, mode [, env]]]): text chunks only; the default
 * environment is the sandbox, never the real globals. */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) {
        lua_pushnil(L);
        lua_pushstring(L, "load: only text chunks are allowed");
        return 2;
    }
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnoneornil(L, 4))
        lua_pushvalue(L, 4);
    else
        lstate_push_env(L);
    lua_setupvalue(L, -2, 1);
    return 1;
}

/* ---- C calls the hook cannot interrupt, bounded before they start ---- */

/* Each guard runs the library's own function (upvalue 1) in its own frame,
 * so argument errors still name the function the script called. */
static int call_original(lua_State *L)
{
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* string.rep(s, n, sep): Lua's loop copies s and sep n times, so with both
 * empty a large n spins for ever; otherwise the result is bounded by the
 * memory cap. */
static int l_rep(lua_State *L)
{
    size_t len, seplen;
    luaL_checklstring(L, 1, &len);
    luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    check_deadline(L);
    if (len + seplen == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return call_original(L);
}

/* string.find/match/gmatch/gsub: a backtracking pattern costs up to the
 * square of the subject's length inside one C call, where neither budget can
 * stop it, so subjects longer than pattern_max are refused. A plain find
 * matches no pattern and is not limited. */
static int l_pattern(lua_State *L)
{
    size_t len;
    luaL_checklstring(L, 1, &len);
    size_t max = get_box(L)->pattern_max;
    bool plain = lua_toboolean(L, lua_upvalueindex(3)) && lua_toboolean(L, 4);
    check_deadline(L);
    if (max && len > max && !plain)
        return luaL_error(L,
                          "string.%s: a subject of %I bytes is longer than the %I bytes "
                          "patterns may scan (lua.pattern_max_bytes)",
                          lua_tostring(L, lua_upvalueindex(2)), (lua_Integer)len, (lua_Integer)max);
    return call_original(L);
}

/* setmetatable(t, mt): a __gc finalizer runs with hooks off (during a
 * collection, or when the state is closed), outside every budget. */
static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
        lua_pop(L, 1);
    }
    return call_original(L);
}

/* xpcall's message handler runs inside the raise of the error it handles;
 * for an error the count hook raised, that is with hooks off, where nothing
 * would stop a handler that loops. Once the state is tripped (the only time
 * the hook raises) the script's handler is skipped and the error passes. */
static int l_handler(lua_State *L)
{
    if (get_box(L)->tripped)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_xpcall(lua_State *L)
{
    if (lua_isfunction(L, 2)) {
        lua_pushvalue(L, 2);
        lua_pushcclosure(L, l_handler, 1);
        lua_replace(L, 2);
    }
    return call_original(L);
}

/* Replaces t[name] (a C function) with guard, which calls it. */
static void guard(lua_State *L, int t, const char *name, lua_CFunction fn, bool find)
{
    lua_getfield(L, t, name);
    lua_pushstring(L, name);
    lua_pushboolean(L, find);
    lua_pushcclosure(L, fn, 3);
    lua_setfield(L, t, name);
}

void lstate_push_env(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV);
}

static void copy_fields(lua_State *L, int from, int to, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, from, *names);
        lua_setfield(L, to, *names);
    }
}

/* Builds the sandbox environment from an allow list (docs/scripting.md). */
static void build_env(lua_State *L, const lstate_source_t *src, const lstate_limits_t *lim)
{
    static const char *const base[] = {
        "assert",   "error",        "ipairs",       "next",   "pairs",    "pcall",  "select",
        "tonumber", "tostring",     "type",         "xpcall", "rawequal", "rawget", "rawlen",
        "rawset",   "setmetatable", "getmetatable", "print",  "_VERSION", NULL};
    static const char *const os_allowed[] = {"time", "date", "clock", "difftime", NULL};

    lua_newtable(L); /* stack: env */
    int env = lua_gettop(L);
    lua_pushglobaltable(L);
    copy_fields(L, -1, env, base);
    lua_pop(L, 1);

    /* string.dump is removed from the real string table: strings share it
     * as their metatable's __index, so ("").dump would reach it. */
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    int str = lua_gettop(L);
    guard(L, str, "rep", l_rep, false);
    guard(L, str, "find", l_pattern, true);
    guard(L, str, "match", l_pattern, false);
    guard(L, str, "gmatch", l_pattern, false);
    guard(L, str, "gsub", l_pattern, false);
    lua_setfield(L, env, "string");
    guard(L, env, "setmetatable", l_setmetatable, false);
    guard(L, env, "xpcall", l_xpcall, false);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    lua_setfield(L, env, "table");
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    lua_setfield(L, env, "math");
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    lua_setfield(L, env, "utf8");
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_newtable(L);
    copy_fields(L, -2, lua_gettop(L), os_allowed);
    lua_setfield(L, env, "os");
    lua_pop(L, 1); /* the full os table */

    lua_pushcfunction(L, l_require);
    lua_setfield(L, env, "require");
    lua_pushcfunction(L, l_load);
    lua_setfield(L, env, "load");

    luaL_requiref(L, "herald", luaopen_herald, 0); /* stack: env, herald */
    lua_pushlightuserdata(L, (void *)lim);
    lua_pushcclosure(L, l_limit, 1);
    lua_setfield(L, -2, "limit");
    lua_getfield(L, -1, "config");
    lua_pushnumber(L, lim->retry_scale);
    lua_setfield(L, -2, "retry_scale");
    lua_pushstring(L, lim->default_timezone ? lim->default_timezone : "UTC");
    lua_setfield(L, -2, "default_timezone");
    lua_pushstring(L, lim->public_url ? lim->public_url : "");
    lua_setfield(L, -2, "public_url");
    lua_pop(L, 1);
    lua_getfield(L, -1, "templates");
    for (int i = 0; i < src->ntemplates; i++) {
        lua_pushlstring(L, src->templates[i].source, src->templates[i].len);
        lua_setfield(L, -2, src->templates[i].name);
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, src->ncompiled); /* herald.compiled: see content.export_compiled */
    for (int i = 0; i < src->ncompiled; i++) {
        lua_pushlstring(L, src->compiled[i].source, src->compiled[i].len);
        lua_setfield(L, -2, src->compiled[i].name);
    }
    lua_setfield(L, -2, "compiled");
    lua_setfield(L, env, "herald");

    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_setfield(L, LUA_REGISTRYINDEX, REG_ENV);
}

static int setup(lua_State *L)
{
    const lstate_source_t *src = lua_touserdata(L, 1);
    const lstate_limits_t *lim = lua_touserdata(L, 2);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_LOADED);
    build_env(L, src, lim);
    /* The real globals keep only what C needs; scripts never see them. */
    return 0;
}

lua_State *lstate_new(const lstate_source_t *src, const lstate_limits_t *lim, hd_err_t *err)
{
    lstate_box_t *box = calloc(1, sizeof(*box));
    if (box == NULL) {
        hd_err_set(err, "out of memory");
        return NULL;
    }
    box->limit = 0; /* the libraries load uncapped; the cap applies to scripts */
    box->instruction_limit = lim->instruction_limit;
    box->default_deadline_ms = lim->deadline_ms;
    box->pattern_max = lim->pattern_max;
    box->src = src;
    lua_State *L = lua_newstate(capped_alloc, box);
    if (L == NULL) {
        free(box);
        hd_err_set(err, "out of memory");
        return NULL;
    }
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, (void *)src);
    lua_pushlightuserdata(L, (void *)lim);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        hd_err_set(err, "lua setup: %s", lua_tostring(L, -1));
        lstate_free(L);
        return NULL;
    }
    box->limit = lim->memory_limit ? box->used + lim->memory_limit : 0;
    box->main = L;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return L;
}

void lstate_free(lua_State *L)
{
    if (L == NULL)
        return;
    lstate_box_t *box = get_box(L);
    lua_close(L);
    free(box);
}

size_t lstate_memory(lua_State *L)
{
    return get_box(L)->used;
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) { /* an error object that is not a string */
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int lstate_pcall_within(lua_State *L, long deadline_ms, int nargs, int nresults, hd_err_t *err)
{
    lstate_box_t *box = get_box(L);
    int base = lua_gettop(L) - nargs; /* the function's slot */
    if (box->tripped) {
        lua_settop(L, base - 1);
        return hd_err_set(err, "%s (the state was abandoned)", box->trip_msg);
    }
    box->instructions = 0;
    box->deadline_ms = deadline_ms;
    box->deadline_ns = deadline_ms > 0 ? now_ns() + (int64_t)deadline_ms * 1000000 : 0;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    box->deadline_ns = 0;
    const char *full = rc == LUA_OK ? NULL : lua_tostring(L, -1);
    /* an error may quote a value of the context or the client: masked
     * before it reaches the log or the caller (who may store it) */
    char *masked = full && box->npriv > 0 ? redact_text(full, box->priv, box->npriv) : NULL;
    if (masked)
        full = masked;
    if (box->tripped) {
        /* Whatever the script caught or returned, the call failed. */
        hd_err_set(err, "%s", box->trip_msg);
        log_write(LOG_ERROR, "script error", "error", box->trip_msg, "traceback",
                  full ? full : box->trip_msg, (const char *)NULL);
        free(masked);
        lua_settop(L, base - 1);
        return -1;
    }
    if (rc == LUA_OK)
        return 0;
    if (rc == LUA_ERRMEM)
        full = "memory limit exceeded";
    /* The first line is "file:line: message"; the rest is the traceback. */
    size_t first = full ? strcspn(full, "\n") : 0;
    hd_err_set(err, "%.*s", (int)first, full ? full : "unknown error");
    log_write(LOG_ERROR, "script error", "error", err ? err->msg : "", "traceback",
              full ? full : "", (const char *)NULL);
    free(masked);
    lua_pop(L, 1);
    /* A failed call may leave garbage: collect now so the cap recovers. */
    lua_gc(L, LUA_GCCOLLECT);
    return -1;
}

void lstate_set_private(lua_State *L, cJSON *const *vals, int n)
{
    lstate_box_t *box = get_box(L);
    box->priv = n > 0 ? vals : NULL;
    box->npriv = n > 0 ? n : 0;
}

int lstate_pcall(lua_State *L, int nargs, int nresults, hd_err_t *err)
{
    return lstate_pcall_within(L, get_box(L)->default_deadline_ms, nargs, nresults, err);
}

bool lstate_tripped(lua_State *L)
{
    return get_box(L)->tripped != TRIP_NONE;
}

static int do_require(lua_State *L)
{
    lstate_push_env(L);
    lua_getfield(L, -1, "require");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

int lstate_require(lua_State *L, const char *name, hd_err_t *err)
{
    lua_pushcfunction(L, do_require);
    lua_pushstring(L, name);
    return lstate_pcall(L, 1, 1, err);
}
