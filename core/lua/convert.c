/* convert.c - Lua <-> cJSON (see convert.h). */
#include "lua/convert.h"

#include <lauxlib.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Its address is the null sentinel: the same in every state. */
static const char null_sentinel = 0;

void lconv_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&null_sentinel);
}

int lconv_is_null(lua_State *L, int idx)
{
    return lua_touserdata(L, idx) == (void *)&null_sentinel;
}

void lconv_push_array_mt(lua_State *L)
{
    if (luaL_newmetatable(L, "herald.array")) {
        lua_pushstring(L, "array");
        lua_setfield(L, -2, "__name");
    }
    /* Scripts reach this table (getmetatable): a __gc they put in it would
     * run with hooks off, outside every budget, once C sets it on a table. */
    lua_pushliteral(L, "__gc");
    lua_pushnil(L);
    lua_rawset(L, -3);
}

static void push_json(lua_State *L, const cJSON *j, int depth)
{
    if (depth > LCONV_MAX_DEPTH) {
        lconv_push_null(L);
        return;
    }
    luaL_checkstack(L, 4, "json nesting");
    if (cJSON_IsNull(j) || j == NULL) {
        lconv_push_null(L);
    } else if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        int i = 1;
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            push_json(L, e, depth + 1);
            lua_rawseti(L, -2, i++);
        }
        lconv_push_array_mt(L);
        lua_setmetatable(L, -2);
    } else if (cJSON_IsObject(j)) {
        lua_createtable(L, 0, cJSON_GetArraySize(j));
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            push_json(L, e, depth + 1);
            lua_setfield(L, -2, e->string);
        }
    } else {
        lconv_push_null(L);
    }
}

void lconv_push_json(lua_State *L, const cJSON *j)
{
    push_json(L, j, 0);
}

/* Length n when the table at idx has exactly the keys 1..n, else -1. */
static lua_Integer sequence_length(lua_State *L, int idx)
{
    lua_Integer n = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* stack: ..., key, value */
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max)
            max = k;
        n++;
    }
    return n == max ? n : -1;
}

static int is_array_marked(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, "herald.array");
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static cJSON *to_json(lua_State *L, int idx, int depth, char *path, size_t pathcap, hd_err_t *err);

static cJSON *table_to_json(lua_State *L, int idx, int depth, char *path, size_t pathcap,
                            hd_err_t *err)
{
    size_t plen = strlen(path);
    lua_Integer n = sequence_length(L, idx);
    bool marked = is_array_marked(L, idx);
    if (n > 0 || (n == 0 && marked)) {
        cJSON *arr = cJSON_CreateArray();
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            snprintf(path + plen, pathcap - plen, "[%lld]", (long long)i);
            cJSON *v = to_json(L, lua_gettop(L), depth + 1, path, pathcap, err);
            lua_pop(L, 1);
            if (v == NULL) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, v);
        }
        path[plen] = '\0';
        return arr;
    }
    cJSON *obj = cJSON_CreateObject();
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* stack: ..., key, value */
        if (lua_type(L, -2) != LUA_TSTRING) {
            hd_err_set(err,
                       "%s: a table mixing list items and named keys (or with non-string "
                       "keys) is not plain data",
                       *path ? path : "value");
            lua_pop(L, 2);
            cJSON_Delete(obj);
            return NULL;
        }
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        if (memchr(k, '\0', klen) != NULL) {
            hd_err_set(err, "%s: a key with a NUL byte is not plain data", *path ? path : "value");
            lua_pop(L, 2);
            cJSON_Delete(obj);
            return NULL;
        }
        snprintf(path + plen, pathcap - plen, "%s%s", plen ? "." : "", k);
        cJSON *v = to_json(L, lua_gettop(L), depth + 1, path, pathcap, err);
        path[plen] = '\0';
        if (v == NULL) {
            lua_pop(L, 2);
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, k, v);
        lua_pop(L, 1);
    }
    return obj;
}

static cJSON *to_json(lua_State *L, int idx, int depth, char *path, size_t pathcap, hd_err_t *err)
{
    if (depth > LCONV_MAX_DEPTH) {
        hd_err_set(err, "%s: nested deeper than %d levels (a cycle?)", *path ? path : "value",
                   LCONV_MAX_DEPTH);
        return NULL;
    }
    luaL_checkstack(L, 4, "conversion nesting");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return cJSON_CreateNull();
    case LUA_TBOOLEAN:
        return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) {
            hd_err_set(err, "%s: NaN and infinity are not plain data", *path ? path : "value");
            return NULL;
        }
        return cJSON_CreateNumber(d);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        if (memchr(str, '\0', len) != NULL) { /* a C string would silently end there */
            hd_err_set(err, "%s: a string with a NUL byte is not plain data",
                       *path ? path : "value");
            return NULL;
        }
        return cJSON_CreateString(str);
    }
    case LUA_TTABLE:
        return table_to_json(L, idx, depth, path, pathcap, err);
    case LUA_TLIGHTUSERDATA:
        if (lconv_is_null(L, idx))
            return cJSON_CreateNull();
        /* fall through */
    default:
        hd_err_set(err, "%s: a %s is not plain data", *path ? path : "value",
                   luaL_typename(L, idx));
        return NULL;
    }
}

cJSON *lconv_to_json(lua_State *L, int idx, hd_err_t *err)
{
    char path[512] = "";
    return to_json(L, lua_absindex(L, idx), 0, path, sizeof(path), err);
}
