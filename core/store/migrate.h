/*
 * migrate.h - applies migrations/NNNN_name.sql in order.
 *
 * Under a PostgreSQL advisory lock (so two processes starting together do not
 * race), each file is applied in its own transaction and recorded in
 * herald_schema_migrations with its SHA-256. A file that changed after it was
 * applied stops the run before anything new is applied.
 */
#ifndef HERALD_STORE_MIGRATE_H
#define HERALD_STORE_MIGRATE_H

#include "base/err.h"
#include "store/pg.h"

/* Applies pending migrations from dir. *applied (when non-NULL) receives the
 * number of files applied by this call. */
int mig_run(pg_conn_t *c, const char *dir, int *applied, hd_err_t *err);

#endif
