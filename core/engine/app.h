/*
 * app.h - the process context: everything a request handler or worker needs,
 * passed explicitly (no globals). The composition root: `herald serve`
 * (cli/cmd_serve.c) builds it; engine/ and http/ use it; no repository
 * (store/) or lower layer ever sees it - they take the pool, the keyring or
 * the Redis client they need.
 */
#ifndef HERALD_ENGINE_APP_H
#define HERALD_ENGINE_APP_H

#include "base/config.h"
#include "cache/redis.h"
#include "crypto/field.h"
#include "engine/tracking.h"
#include "limit/limit.h"
#include "obs/metrics.h"
#include "lua/reload.h"
#include "lua/runtime.h"
#include "store/pg.h"
#include "transport/transport.h"

#include <time.h>

/* This process's copies of cluster-wide state, held by the engine's
 * modules that own them (engine/ops.c, engine/pace.c). */
typedef struct pace_state pace_state_t;
typedef struct ops_state ops_state_t;

typedef struct app {
    cfg_t *cfg;
    pg_pool_t *db;
    pg_pool_t *probe; /* one connection for health checks (never waits for the pool) */
    rd_client_t *redis;
    lim_t *limiter; /* shared rate limits (limit/limit.h) */
    fe_keyring_t *keyring;
    metrics_t *metrics;
    struct router *router;     /* the HTTP route table (http/router.h), owned by cli/serve */
    lrt_t *policy;             /* scripts and templates, one Lua state per thread */
    lrt_watch_t *watch;        /* live reload */
    tr_engine_t *transport;    /* the libcurl multi loop and its drivers */
    track_keys_t track;        /* open and click tokens: keys[0] signs (engine/tracking.h) */
    struct engine *engine;     /* the workers (engine/worker.h) */
    struct acceptq *acceptq;   /* group commit of acceptance (engine/acceptq.h); NULL: none */
    struct group *prefs_reads; /* group reads of preferences (engine/prefs.h); NULL: none */
    struct hint *prefs_stored; /* clients seen with a preferences row (prefs.h); NULL: none */
    pace_state_t *pacing;      /* adaptive pacing factors and priority holds (engine/pace.h) */
    ops_state_t *ops; /* the channel pauses as this process last read them (engine/ops.h) */
    time_t started;
} app_t;

#endif
