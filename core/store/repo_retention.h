/*
 * repo_retention.h - deleting what is older than the retention periods, a
 * small batch per statement (engine/retention.c runs them). Each batch takes
 * a transaction-scoped advisory lock first: one process at a time deletes,
 * the others skip.
 */
#ifndef HERALD_STORE_REPO_RETENTION_H
#define HERALD_STORE_REPO_RETENTION_H

#include "store/pg.h"

#include <stdbool.h>

/* Up to limit communications created more than days ago that have ended
 * (sent, delivered, opened, clicked, failed, cancelled, suppressed), with
 * their attempts, events and jobs (ON DELETE CASCADE). A message still
 * waiting or sending is never deleted. *deleted: how many; *skipped: another
 * process holds the lock. 0, or -1 with err. */
int retention_comms_batch(pg_pool_t *db, int days, int limit, int *deleted, bool *skipped,
                          hd_err_t *err);

/* Up to limit events (receipts, opens, clicks: crm_delivery_logs rows of
 * kind 'event') older than days. As above. */
int retention_events_batch(pg_pool_t *db, int days, int limit, int *deleted, bool *skipped,
                           hd_err_t *err);

/* Up to limit Idempotency-Key records that expired more than days ago (0:
 * any expired one). As above. */
int retention_idem_batch(pg_pool_t *db, int days, int limit, int *deleted, bool *skipped,
                         hd_err_t *err);

#endif
