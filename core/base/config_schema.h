/*
 * config_schema.h - the schema of config.lua and its checks, shared by
 * config.c (which runs the file) and config_schema.c (which knows the keys).
 * Not for use outside base/config*.c: the public entry points are config.h's.
 */
#ifndef HERALD_BASE_CONFIG_SCHEMA_H
#define HERALD_BASE_CONFIG_SCHEMA_H

#include "base/config.h"
#include "base/err.h"

#include <lua.h>

/* The value on top of L's stack is what the file called name returned.
 * Refuses anything but a table, unknown keys (secrets named as such get a
 * pointed message), values of the wrong type or out of range and missing
 * required keys; applies the defaults, stores every value into out (which
 * the caller zeroed) and checks the rules across keys (what a chosen driver
 * needs). 0, or -1 with err "name: key: problem". The returned value stays
 * on the stack. */
int cfg_schema_apply(lua_State *L, const char *name, cfg_t *out, hd_err_t *err);

#endif
