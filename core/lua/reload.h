/*
 * reload.h - live reload: watches scripts/ and templates/ with inotify and
 * asks the runtime for a new generation after each burst of changes.
 */
#ifndef HERALD_LUA_RELOAD_H
#define HERALD_LUA_RELOAD_H

#include "base/err.h"
#include "lua/runtime.h"

typedef struct lrt_watch lrt_watch_t;

/* Starts the watcher thread. rt must outlive it. */
lrt_watch_t *lrt_watch_start(lrt_t *rt, hd_err_t *err);

/* Stops and joins the watcher thread. */
void lrt_watch_stop(lrt_watch_t *w);

#endif
