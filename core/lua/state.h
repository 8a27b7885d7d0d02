/*
 * state.h - building one sandboxed lua_State for a generation of scripts.
 *
 * A state gets: a memory cap (its own allocator), an instruction budget per
 * call (a count hook), `_ENV` from an allow list, a `require` that loads only
 * the generation's scripts, a `load` limited to text chunks, and the
 * `herald` module with the generation's templates. See docs/scripting.md.
 */
#ifndef HERALD_LUA_STATE_H
#define HERALD_LUA_STATE_H

#include "base/err.h"

#include <lua.h>
#include <stddef.h>

/* One file of a generation: scripts are keyed by module name
 * ("lib.template"), templates by file name ("welcome.html"). */
typedef struct lstate_file {
    char *name;
    char *path; /* for messages: "scripts/lib/template.lua" */
    char *source;
    size_t len;
} lstate_file_t;

typedef struct lstate_source {
    lstate_file_t *scripts;
    int nscripts;
    lstate_file_t *templates;
    int ntemplates;
} lstate_source_t;

typedef struct lstate_limits {
    long instruction_limit; /* per call; 0 = none */
    size_t memory_limit;    /* bytes per state; 0 = none */
    double retry_scale;
    const char *default_timezone;
    const char *public_url;
} lstate_limits_t;

/* Creates a state over src (which must outlive it). NULL with err on OOM. */
lua_State *lstate_new(const lstate_source_t *src, const lstate_limits_t *lim, hd_err_t *err);
void lstate_free(lua_State *L);

/* Pushes the sandbox environment table of L. */
void lstate_push_env(lua_State *L);

/* Runs the function below nargs arguments on the stack in protected mode
 * with a traceback handler and a fresh instruction budget. On error returns
 * -1 with err = "file:line: message" (the traceback goes to the log). */
int lstate_pcall(lua_State *L, int nargs, int nresults, hd_err_t *err);

/* require(name) from C, protected: leaves the module on the stack. */
int lstate_require(lua_State *L, const char *name, hd_err_t *err);

/* Bytes currently allocated by L. */
size_t lstate_memory(lua_State *L);

#endif
