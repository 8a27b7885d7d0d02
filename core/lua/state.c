/*
 * state.c - sandboxed states (see state.h). The only place C enters Lua is
 * lstate_pcall: a protected call with a traceback message handler, as
 * lua.c's docall does, so one script error never takes the process down.
 */
#include "lua/state.h"
#include "base/buf.h"
#include "base/log.h"
#include "lua/module.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-state bookkeeping, kept in the allocator's ud and the registry. */
typedef struct lstate_box {
    size_t used;
    size_t limit;
    long instruction_limit;
    long instructions; /* executed in the current call */
    const lstate_source_t *src;
} lstate_box_t;

#define HOOK_EVERY 1000
#define REG_BOX    "herald.box"
#define REG_ENV    "herald.env"
#define REG_LOADED "herald.loaded"

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

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lstate_box_t *box = get_box(L);
    box->instructions += HOOK_EVERY;
    if (box->instruction_limit && box->instructions > box->instruction_limit)
        luaL_error(L, "instruction limit exceeded (%d instructions)", (int)box->instruction_limit);
}

static const lstate_file_t *find_script(const lstate_source_t *src, const char *name)
{
    for (int i = 0; i < src->nscripts; i++)
        if (strcmp(src->scripts[i].name, name) == 0)
            return &src->scripts[i];
    return NULL;
}

/* require(name): modules of this generation only, loaded once per state. */
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
    lua_setfield(L, env, "string");
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

int lstate_pcall(lua_State *L, int nargs, int nresults, hd_err_t *err)
{
    lstate_box_t *box = get_box(L);
    box->instructions = 0;
    int base = lua_gettop(L) - nargs; /* the function's slot */
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc == LUA_OK)
        return 0;
    const char *full = lua_tostring(L, -1);
    if (rc == LUA_ERRMEM)
        full = "memory limit exceeded";
    /* The first line is "file:line: message"; the rest is the traceback. */
    size_t first = full ? strcspn(full, "\n") : 0;
    hd_err_set(err, "%.*s", (int)first, full ? full : "unknown error");
    log_write(LOG_ERROR, "script error", "error", err ? err->msg : "", "traceback",
              full ? full : "", (const char *)NULL);
    lua_pop(L, 1);
    /* A failed call may leave garbage: collect now so the cap recovers. */
    lua_gc(L, LUA_GCCOLLECT);
    return -1;
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
