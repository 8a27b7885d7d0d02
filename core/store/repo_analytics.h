/*
 * repo_analytics.h - the daily rollups behind GET /api/crm/analytics
 * (migrations/0004_analytics_rollup.sql).
 */
#ifndef HERALD_STORE_REPO_ANALYTICS_H
#define HERALD_STORE_REPO_ANALYTICS_H

#include "base/err.h"
#include "store/pg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

/* Recomputes the rollup rows of the UTC days first..last ("YYYY-MM-DD",
 * inclusive) from crm_communications, in one transaction, unless another
 * process is doing it (*skipped). 0, or -1 on error. */
int analytics_refresh(pg_pool_t *db, const char *first, const char *last, bool *skipped,
                      hd_err_t *err);

/* The day (since the epoch, UTC) of the oldest message (-1 when there are
 * none / on error), and whether every day of first..last that has messages
 * has its rollup rows (*has): for the start-up fill-in. */
long analytics_oldest_day(pg_pool_t *db, hd_err_t *err);
int analytics_has_rows(pg_pool_t *db, const char *first, const char *last, bool *has,
                       hd_err_t *err);

/* The rollup rows of the days first..last, as
 * [{day, channel, message_type, total, reached, delivered, opened, clicked,
 *   fallbacks, by_status{}, failures{}, delivery_hist{}, computed_at}], or NULL. */
cJSON *analytics_rows(pg_pool_t *db, const char *first, const char *last, hd_err_t *err);

/* opened / delivered over the last 30 days per channel (email, sms,
 * whatsapp); -1 where nothing was delivered. */
int analytics_open_rates(pg_pool_t *db, double out[3], hd_err_t *err);

/* The arms of the A/B experiments on message_type, from the messages
 * accepted on the UTC days [first, last] (read from crm_communications, not
 * the rollups: the arm is the decision's, strategy->>'variant'):
 * [{experiment, variant, total, reached, delivered, opened, clicked}] with
 * "" for messages outside any experiment. NULL with err. */
cJSON *analytics_variants(pg_pool_t *db, const char *message_type, const char *first,
                          const char *last, hd_err_t *err);

#endif
