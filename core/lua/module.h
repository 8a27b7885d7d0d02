/*
 * module.h - the `herald` module: C primitives for policy scripts (time
 * zones, JSON, HTML escaping, hashing, UUIDs, logging, SMS measurement).
 *
 * The same luaopen_herald serves the engine's states and, built as
 * build/herald.so, the busted specs run by the stock lua5.4 interpreter.
 */
#ifndef HERALD_LUA_MODULE_H
#define HERALD_LUA_MODULE_H

#include <lua.h>

/* Pushes the module table (with default `config` and empty `templates`). */
int luaopen_herald(lua_State *L);

#endif
