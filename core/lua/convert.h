/*
 * convert.h - plain data between Lua and cJSON, the only values that cross
 * between Lua states (and between Lua and the rest of the engine).
 *
 * Lua → JSON: nil and herald.null → null; booleans; integers and finite
 * floats; strings (bytes kept as they are; a NUL byte in a value or a key is
 * an error, never a string cut short); a table whose keys are exactly 1..n,
 * or that carries the herald.array metatable, → array; a table with string
 * keys → object.
 * Mixed keys, functions, userdata, cycles, NaN/inf and nesting beyond 64
 * levels are errors naming the path ("context.items[3]: a function").
 * JSON → Lua: objects and arrays become tables (arrays with the herald.array
 * metatable, so an empty array stays an array), null becomes herald.null.
 */
#ifndef HERALD_LUA_CONVERT_H
#define HERALD_LUA_CONVERT_H

#include "base/err.h"

#include <cjson/cJSON.h>
#include <lua.h>

#define LCONV_MAX_DEPTH 64

/* Pushes the Lua form of j. */
void lconv_push_json(lua_State *L, const cJSON *j);

/* Converts the value at idx; NULL with err on a value that is not plain
 * data. Caller cJSON_Delete()s. */
cJSON *lconv_to_json(lua_State *L, int idx, hd_err_t *err);

/* Pushes herald.null (a light userdata shared by every state). */
void lconv_push_null(lua_State *L);
int lconv_is_null(lua_State *L, int idx);

/* Pushes the metatable that marks tables as JSON arrays (creates it once
 * per state in the registry as "herald.array"). */
void lconv_push_array_mt(lua_State *L);

#endif
