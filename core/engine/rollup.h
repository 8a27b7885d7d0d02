/*
 * rollup.h - the thread that folds the analytics deltas into the daily rows
 * (store/repo_analytics.h) behind GET /api/crm/analytics, and runs retention.
 */
#ifndef HERALD_ENGINE_ROLLUP_H
#define HERALD_ENGINE_ROLLUP_H

#include "engine/app.h"

typedef struct rollup rollup_t;

/* NULL when the thread cannot start (logged; the API still answers). */
rollup_t *rollup_start(app_t *app);
void rollup_stop(rollup_t *r);

/* How long the last fold took, in seconds (0 before the first, and for
 * NULL). */
double rollup_last_seconds(rollup_t *r);

/* Seconds until the next fold: the configured interval, or ROLLUP_DUTY
 * times what the last one took when that is longer. A fold costs what
 * changed since the last one, a few milliseconds at 1,000 messages/s; the
 * rule keeps it to a tenth of a database core whatever happens (a larger
 * delta table only makes reads a little slower, never wrong). */
#define ROLLUP_DUTY 10
int rollup_wait_s(int interval_s, double last_s);

#endif
