/*
 * rollup.h - the thread that recomputes the analytics rollups
 * (store/repo_analytics.h) behind GET /api/crm/analytics.
 */
#ifndef HERALD_ENGINE_ROLLUP_H
#define HERALD_ENGINE_ROLLUP_H

#include "engine/app.h"

typedef struct rollup rollup_t;

/* NULL when the thread cannot start (logged; the API still answers). */
rollup_t *rollup_start(app_t *app);
void rollup_stop(rollup_t *r);

#endif
