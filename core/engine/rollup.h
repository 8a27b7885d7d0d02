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

/* How long the last refresh of today's and yesterday's rollups took, in
 * seconds (0 before the first, and for NULL). */
double rollup_last_seconds(rollup_t *r);

/* Seconds until the next refresh of today's and yesterday's rollups: the
 * configured interval, or ROLLUP_DUTY times what the last one took when
 * that is longer. Recomputing a day reads all its messages, so the cost
 * grows with the day's volume; this keeps the refresher to about a tenth
 * of one database core however large the day grows (the rollups are then
 * older than the interval). */
#define ROLLUP_DUTY 10
int rollup_wait_s(int interval_s, double last_s);

#endif
