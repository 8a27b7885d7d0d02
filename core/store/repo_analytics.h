/*
 * repo_analytics.h - the analytics behind GET /api/crm/analytics: one row
 * per UTC day, channel and message type (crm_analytics_daily), kept by
 * triggers on crm_communications that write deltas, which the engine folds
 * in (migrations/0018_analytics_counts.sql).
 */
#ifndef HERALD_STORE_REPO_ANALYTICS_H
#define HERALD_STORE_REPO_ANALYTICS_H

#include "base/err.h"
#include "store/pg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

/* Folds the deltas the triggers wrote into the daily rows, in one
 * transaction, unless another process is doing it (*skipped); *deltas: how
 * many delta rows it folded. prune: also delete the rows that reached zero
 * (a scan of the rows: hourly). 0, or -1 on error. */
int analytics_fold(pg_pool_t *db, bool prune, long *deltas, bool *skipped, hd_err_t *err);

/* The figures of the days first..last (rows plus deltas not yet folded:
 * exact as of the read; computed_at is the read's time), as
 * [{day, channel, message_type, total, reached, delivered, opened, clicked,
 *   fallbacks, by_status{}, failures{}, delivery_hist{}, computed_at}], or NULL. */
cJSON *analytics_rows(pg_pool_t *db, const char *first, const char *last, hd_err_t *err);

/* opened / delivered over the last 30 days per channel (email, sms,
 * whatsapp); -1 where nothing was delivered. */
int analytics_open_rates(pg_pool_t *db, double out[3], hd_err_t *err);

/* The arms of the A/B experiments on message_type, from the messages
 * accepted on the UTC days [first, last] (read from crm_communications, not
 * the daily rows: the arm is the decision's, strategy->>'variant'):
 * [{experiment, variant, total, reached, delivered, opened, clicked}] with
 * "" for messages outside any experiment. NULL with err. */
cJSON *analytics_variants(pg_pool_t *db, const char *message_type, const char *first,
                          const char *last, hd_err_t *err);

#endif
