/*
 * app.h - the process context: everything a request handler or worker needs,
 * passed explicitly (no globals). Owned by `herald serve`.
 */
#ifndef HERALD_ENGINE_APP_H
#define HERALD_ENGINE_APP_H

#include "base/config.h"
#include "cache/redis.h"
#include "crypto/field.h"
#include "engine/tracking.h"
#include "obs/metrics.h"
#include "http/router.h"
#include "lua/reload.h"
#include "lua/runtime.h"
#include "store/pg.h"
#include "transport/transport.h"

#include <time.h>

typedef struct app {
    cfg_t *cfg;
    pg_pool_t *db;
    rd_client_t *redis;
    fe_keyring_t *keyring;
    metrics_t *metrics;
    router_t router;
    lrt_t *policy;          /* scripts and templates, one Lua state per thread */
    lrt_watch_t *watch;     /* live reload */
    tr_engine_t *transport; /* the libcurl multi loop and its drivers */
    track_key_t track_key;  /* open and click tokens (engine/tracking.h) */
    struct engine *engine;  /* the workers (engine/worker.h) */
    time_t started;
} app_t;

#endif
