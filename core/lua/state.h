/*
 * state.h - building one sandboxed lua_State for a generation of scripts.
 *
 * A state gets: a memory cap (its own allocator), an instruction budget and a
 * wall-clock deadline per call (a count hook), `_ENV` from an allow list, a
 * `require` that loads only the generation's scripts, a `load` limited to
 * text chunks, bounded C calls (pattern subjects, string.rep, no __gc), and
 * the `herald` module with the generation's templates. See docs/scripting.md.
 */
#ifndef HERALD_LUA_STATE_H
#define HERALD_LUA_STATE_H

#include "base/err.h"

#include <cjson/cJSON.h>
#include <lua.h>
#include <stdbool.h>
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
    /* herald.compiled: the templates as the generation's check compiled them
     * ("tag\tname" -> text), so a new state does not compile them again */
    lstate_file_t *compiled;
    int ncompiled;
} lstate_source_t;

typedef struct lstate_limits {
    long instruction_limit; /* per call; 0 = none */
    size_t memory_limit;    /* bytes per state; 0 = none */
    long deadline_ms;       /* per call of lstate_pcall (loading, the console); 0 = none */
    size_t pattern_max;     /* longest subject of string.find/match/gmatch/gsub; 0 = none */
    double retry_scale;
    const char *default_timezone;
    const char *public_url;
    /* herald.limit(key, rate, per, burst): the engine's shared limiter, or
     * NULL (check, console, busted: every call is allowed, nothing is sent
     * there). 0 and *retry_after_s (0 when allowed); -1: no answer. */
    int (*limit)(void *arg, const char *key, double rate, double per_s, int burst,
                 double *retry_after_s);
    void *limit_arg;
} lstate_limits_t;

/* Creates a state over src (which must outlive it). NULL with err on OOM. */
lua_State *lstate_new(const lstate_source_t *src, const lstate_limits_t *lim, hd_err_t *err);
void lstate_free(lua_State *L);

/* Pushes the sandbox environment table of L. */
void lstate_push_env(lua_State *L);

/* Runs the function below nargs arguments on the stack in protected mode
 * with a traceback handler, a fresh instruction budget and a wall-clock
 * deadline of deadline_ms from now (0: none). On error returns -1 with
 * err = "file:line: message" (the traceback goes to the log).
 *
 * A call that exceeds its budget or deadline trips the state: the hook then
 * raises at every instruction, in every coroutine, so pcall, xpcall and
 * coroutines cannot carry on, and the call fails even when the script
 * caught the error ("file:line: instruction budget exceeded (N
 * instructions)", "file:line: deadline of N ms exceeded"). A tripped state
 * runs nothing more: its owner frees it and builds a fresh one. */
int lstate_pcall_within(lua_State *L, long deadline_ms, int nargs, int nresults, hd_err_t *err);

/* The personal arguments of the next calls (vals[0..n), borrowed; n = 0
 * clears them): a script error's text, logged and returned, shows their
 * values masked (lua/redact.h). */
void lstate_set_private(lua_State *L, cJSON *const *vals, int n);

/* lstate_pcall_within with the state's default deadline (limits.deadline_ms). */
int lstate_pcall(lua_State *L, int nargs, int nresults, hd_err_t *err);

/* True once a call of L exceeded its budget or deadline (see above). */
bool lstate_tripped(lua_State *L);

/* require(name) from C, protected: leaves the module on the stack. */
int lstate_require(lua_State *L, const char *name, hd_err_t *err);

/* Bytes currently allocated by L. */
size_t lstate_memory(lua_State *L);

#endif
