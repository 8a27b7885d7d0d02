/*
 * retention.h - the retention periods (config retention.*): communications
 * that ended more than retention.communications_days ago (with their
 * attempts, events and jobs) and events older than retention.events_days
 * are deleted in batches of retention.batch_size, one short transaction
 * each with retention.pause_ms between them, so the API keeps answering.
 * The analytics daily rows are kept (a deleted message is not subtracted:
 * migrations/0018_analytics_counts.sql). One process at
 * a time deletes (an advisory lock per batch). Run by the maintenance thread
 * (engine/rollup.c) every retention.interval_seconds.
 */
#ifndef HERALD_ENGINE_RETENTION_H
#define HERALD_ENGINE_RETENTION_H

#include "engine/app.h"

#include <stdbool.h>

/* One pass: batches until nothing is left or stop(arg) says so. */
void retention_run(app_t *app, bool (*stop)(void *), void *arg);

#endif
