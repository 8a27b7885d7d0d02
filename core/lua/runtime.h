/*
 * runtime.h - the policy runtime: generations of scripts and templates, one
 * lua_State per thread, and the calls C makes into policy.
 *
 * A generation is an immutable snapshot of every file under scripts/ and
 * templates/, read once and validated in a fresh state (every script
 * compiles, the entry points exist, every template compiles) before it
 * becomes current. Each thread builds its own state from the current
 * snapshot, lazily, and switches between calls when the generation changes:
 * no lock is taken on the hot path, only an atomic read of the generation.
 */
#ifndef HERALD_LUA_RUNTIME_H
#define HERALD_LUA_RUNTIME_H

#include "base/err.h"
#include "lua/state.h"

#include <cjson/cJSON.h>
#include <lua.h>
#include <stdbool.h>
#include <time.h>

typedef struct lrt lrt_t;

typedef struct lrt_opts {
    const char *scripts_dir;
    const char *templates_dir;
    lstate_limits_t limits; /* limits.deadline_ms: loading (start, reload, a first require) */
    long decision_ms;       /* deadline of a call within LRT_DECISION; 0 = none */
    long render_ms;         /* deadline of a call within LRT_RENDER; 0 = none */
} lrt_opts_t;

/* Which wall-clock deadline of lrt_opts_t a call gets. */
typedef enum { LRT_DECISION, LRT_RENDER } lrt_deadline_t;

typedef struct lrt_status {
    long generation;
    time_t loaded_at;
    int nscripts, ntemplates;
    bool failing;    /* the last reload attempt failed */
    char error[512]; /* its error: "scripts/strategy.lua:12: ..." */
    time_t error_at;
    long reload_errors; /* failed reloads since start */
} lrt_status_t;

/* Loads the first generation. Fails (NULL, err) when it does not load: at
 * start there is no previous generation to keep. */
lrt_t *lrt_new(const lrt_opts_t *opts, hd_err_t *err);

/* Frees the runtime and the calling thread's state. Other threads that used
 * it must have exited (their states are freed as they exit). */
void lrt_free(lrt_t *rt);

/* Reads, validates and publishes a new generation. On failure the current
 * one stays and the error is recorded for lrt_status. Serialised. */
int lrt_reload(lrt_t *rt, hd_err_t *err);

/* The calling thread's state for the current generation (created or
 * rebuilt as needed, and rebuilt after a call tripped it); NULL with err when
 * it cannot be built. */
lua_State *lrt_state(lrt_t *rt, hd_err_t *err);

/* What lrt_call_within returns when the call ran out of its instruction
 * budget or its deadline (a script error is -1): the script may be fine and
 * the machine slow, so a caller may try again later rather than give up. */
#define LRT_TRIPPED (-2)

/* Calls module.fn(args...) in the calling thread's state with plain data and
 * returns the first result as JSON (caller cJSON_Delete()s *out). A script
 * error is -1 with err "file:line: message", never a crash. The call has the
 * instruction budget and the deadline named by `within`; one that exceeds
 * either fails ("...: deadline of 50 ms exceeded") even if the script caught
 * the error, and the thread's state is thrown away: its next call runs in a
 * fresh state of the current generation. */
int lrt_call_within(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                    cJSON *const *args, int nargs, cJSON **out, hd_err_t *err);

/* lrt_call_within whose arguments with bit i of private_args set (args[i])
 * hold personal data (a context, a client): a script error, in the log and
 * in err, shows their values as "<path: N bytes>" (lua/redact.h). */
int lrt_call_private(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                     cJSON *const *args, int nargs, unsigned private_args, cJSON **out,
                     hd_err_t *err);

/* lrt_call_within(rt, LRT_DECISION, ...). */
int lrt_call(lrt_t *rt, const char *module, const char *fn, cJSON *const *args, int nargs,
             cJSON **out, hd_err_t *err);

/* Where module.fn is defined in the current generation ("scripts/retry.lua:52"),
 * for errors about what it returned; "scripts/<module>.lua" when unknown. */
void lrt_where(lrt_t *rt, const char *module, const char *fn, char *out, size_t n);

void lrt_status(lrt_t *rt, lrt_status_t *out);

/* The directories the runtime reads (for the watcher). */
const char *lrt_scripts_dir(const lrt_t *rt);
const char *lrt_templates_dir(const lrt_t *rt);

#endif
