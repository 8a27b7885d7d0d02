/*
 * pg.h - PostgreSQL connection pool, prepared statements, transactions.
 *
 * A fixed-size pool of libpq connections opened lazily. Getting a connection
 * checks its health and reconnects a broken one; statements are prepared on
 * first use per connection and re-prepared after a reconnect. All SQL takes
 * parameters; nothing is built from strings.
 */
#ifndef HERALD_STORE_PG_H
#define HERALD_STORE_PG_H

#include "base/err.h"

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct pg_pool pg_pool_t;
typedef struct pg_conn pg_conn_t;

/* A named statement. Define them as static const objects; the pool tracks
 * preparation by address.
 *
 * generic: plan it once per connection, as index lookups. For the hot
 * statements of the send path, whose parameters are arrays of a batch:
 * PostgreSQL's default plans such a statement again on most calls (a custom
 * plan knows the arrays' lengths, so it always looks cheaper than the generic
 * one), and the acceptance's batch insert spent 0.41 ms planning each call,
 * as much as executing it. A plan made once is made on the tables as they are
 * then, and kept while they grow: made on a new database's few pages, the
 * statements' own scans and those of the checks PostgreSQL runs inside them
 * (foreign keys) stayed sequential scans of a table that grew to 25,000 rows
 * (docs/benchmarks.md). So a generic statement runs with plan_cache_mode =
 * force_generic_plan, enable_seqscan = off (an index wherever there is one,
 * whatever the statistics said when it was planned), enable_hashjoin and
 * enable_mergejoin = off (a join to a table is a probe of its key per row: a
 * generic plan cannot see how few rows a batch has, and hashed a whole table
 * to join a batch to it, migration 0021) and jit = off (a disabled path's
 * cost would otherwise ask for a compile), like crm_claim_jobs() (migrations
 * 0019, 0021). Only statements whose every access is by an index, for a
 * batch of rows, may be generic, and a plan made on empty tables (every
 * table one row) may put any table on the outer side of a nested loop: every
 * table a generic statement reads needs an index condition of its own, from
 * parameters or `= ANY(ARRAY(SELECT ...))` of rows already found, never only
 * a join condition; a correlated EXISTS needs OFFSET 0 (a probe per row;
 * else the plan may hash the whole subquery or turn it into a join).
 * Statements without the flag run with the server's settings. A
 * connection switches mode with one round trip when the next statement wants
 * the other: a session SET outside a transaction, a SET LOCAL inside one
 * (which its end undoes). */
typedef struct pg_stmt {
    const char *name;
    const char *sql;
    int nparams;
    bool generic;
} pg_stmt_t;

/* Creates a pool of up to size connections to url. Connects one connection
 * now so a bad URL or a down server is reported at start; when that fails
 * the pool is still returned (it reconnects later) and err says why, with
 * *connected set to false. Every command must answer within
 * query_timeout_ms (0: no limit, for migrations); the server enforces the
 * same as statement_timeout. Caller frees with pg_pool_free. */
pg_pool_t *pg_pool_new(const char *url, int size, int connect_timeout_s, int query_timeout_ms,
                       bool *connected, hd_err_t *err);
void pg_pool_free(pg_pool_t *pool);

/* Borrows a connection, waiting up to timeout_ms for one to be free. Returns
 * NULL with err when none is free in time or the server is unreachable. */
pg_conn_t *pg_pool_get(pg_pool_t *pool, int timeout_ms, hd_err_t *err);

/* Returns a borrowed connection. One left inside a transaction or broken is
 * rolled back or dropped, never handed to the next borrower as it is. */
void pg_pool_put(pg_pool_t *pool, pg_conn_t *c);

/* Connections borrowed and idle (open, not borrowed) right now. */
void pg_pool_stats(pg_pool_t *pool, int *in_use, int *idle, int *size);

/* SET commands this pool has sent to switch connections between generic and
 * default planning (pg_stmt_t.generic): for tests and the debug log. */
long pg_pool_plan_switches(pg_pool_t *pool);

/* DISCARD PLANS this pool has sent: a connection's generic plans are made
 * again 1 s after it opens, then 2, 4, ... s later, then every minute (a
 * plan made on empty tables must not outlive them; pg.c). For tests. */
long pg_pool_replans(pg_pool_t *pool);

/* One round trip (SELECT 1) on a pooled connection: 0 when the database answers. */
int pg_pool_ping(pg_pool_t *pool, hd_err_t *err);

/* Runs a prepared statement with text parameters (NULL entries are SQL NULL).
 * Returns the result (caller PQclear()s) or NULL with err; the SQLSTATE of
 * the failure is available from pg_last_sqlstate(). */
PGresult *pg_exec(pg_conn_t *c, const pg_stmt_t *st, const char *const *params, hd_err_t *err);

/* Runs one or more statements without parameters (BEGIN, a migration file). */
/* pg_exec for a statement whose rows do not matter: 0, or -1 (err set). */
int pg_exec_ok(pg_conn_t *c, const pg_stmt_t *st, const char *const *params, hd_err_t *err);
/* The same on a connection borrowed from pool for the one statement. */
int pg_pool_exec_ok(pg_pool_t *pool, const pg_stmt_t *st, const char *const *params, hd_err_t *err);

int pg_exec_script(pg_conn_t *c, const char *sql, hd_err_t *err);

/* COMMIT that fails unless the transaction really committed (a COMMIT of a
 * transaction that had an error answers ROLLBACK). */
int pg_commit(pg_conn_t *c, hd_err_t *err);

/* The SQLSTATE of the last failed command on c ("" when none). */
const char *pg_last_sqlstate(const pg_conn_t *c);

/* The raw libpq connection, for LISTEN/NOTIFY and COPY. */
PGconn *pg_raw(pg_conn_t *c);

/* The one transaction helper. pg_tx_begin borrows a connection and opens
 * a transaction on it (NULL with err when no connection or BEGIN fails);
 * pg_tx_end ends it: COMMIT when rc == 0 (a commit that fails makes the
 * result -1), ROLLBACK otherwise, and returns the connection to the pool.
 * Returns the transaction's result: rc, or -1 when the commit failed.
 *
 *   pg_conn_t *c = pg_tx_begin(db, err);
 *   if (c == NULL) return -1;
 *   int rc = step_one(c, ..., err);
 *   if (rc == 0) rc = step_two(c, ..., err);
 *   return pg_tx_end(db, c, rc, err);
 */
pg_conn_t *pg_tx_begin(pg_pool_t *pool, hd_err_t *err);
int pg_tx_end(pg_pool_t *pool, pg_conn_t *c, int rc, hd_err_t *err);

/* The same on a connection the caller already holds (it stays borrowed).
 * pg_tx_open_read opens a read-only transaction on one snapshot, for reads
 * of several statements that must agree (a message and its log rows). */
int pg_tx_open(pg_conn_t *c, hd_err_t *err);
int pg_tx_open_read(pg_conn_t *c, hd_err_t *err);
int pg_tx_close(pg_conn_t *c, int rc, hd_err_t *err);

/* True when the SQLSTATE means a unique constraint was violated. */
bool pg_is_unique_violation(const pg_conn_t *c);

#endif
