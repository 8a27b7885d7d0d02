/*
 * test_pg.c - the PostgreSQL pool against the real server named by
 * HERALD_DATABASE_URL (make test starts it): statements, transactions,
 * errors, exhaustion and reconnection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *url(void)
{
    const char *u = getenv("HERALD_DATABASE_URL");
    return u ? u : "postgresql://herald@127.0.0.1:55432/herald";
}

static const pg_stmt_t st_add = {"t_add", "SELECT $1::int + $2::int", 2, false};
static const pg_stmt_t st_pid = {"t_pid", "SELECT pg_backend_pid()", 0, false};
static const pg_stmt_t st_ins = {"t_ins", "INSERT INTO herald_test_pg (k) VALUES ($1)", 1, false};
static const pg_stmt_t st_count = {"t_count", "SELECT count(*) FROM herald_test_pg WHERE k = $1", 1,
                                   false};

/* the same batch lookup, planned the server's way and once per connection */
#define BATCH_SQL "SELECT k FROM herald_test_pg WHERE k = ANY($1::text[]) ORDER BY k"
static const pg_stmt_t st_batch_auto = {"t_batch_auto", BATCH_SQL, 1, false};
static const pg_stmt_t st_batch_generic = {"t_batch_generic", BATCH_SQL, 1, true};

static int setup(void **state)
{
    hd_err_t err;
    bool up;
    pg_pool_t *pool = pg_pool_new(url(), 2, 5, 5000, &up, &err);
    if (!up)
        fail_msg("database not reachable at %s: %s", url(), err.msg);
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    assert_non_null(c);
    /* A temp table would vanish with the connection; a real one, per run. */
    assert_int_equal(pg_exec_script(c,
                                    "CREATE TABLE IF NOT EXISTS herald_test_pg (k text "
                                    "PRIMARY KEY)",
                                    &err),
                     0);
    pg_pool_put(pool, c);
    *state = pool;
    return 0;
}

static int teardown(void **state)
{
    pg_pool_free(*state);
    return 0;
}

static long count(pg_pool_t *pool, const char *k)
{
    hd_err_t err;
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    assert_non_null(c);
    const char *p[] = {k};
    PGresult *r = pg_exec(c, &st_count, p, &err);
    assert_non_null(r);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    pg_pool_put(pool, c);
    return n;
}

static void test_prepared_statements(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    assert_non_null(c);
    for (int i = 0; i < 3; i++) { /* prepared once, executed thrice */
        const char *p[] = {"40", "2"};
        PGresult *r = pg_exec(c, &st_add, p, &err);
        assert_non_null(r);
        assert_string_equal(PQgetvalue(r, 0, 0), "42");
        PQclear(r);
    }
    PGresult *r = PQexec(pg_raw(c), "SELECT count(*) FROM pg_prepared_statements WHERE name = "
                                    "'t_add'");
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    /* A NULL parameter is SQL NULL. */
    const char *p[] = {NULL, "2"};
    r = pg_exec(c, &st_add, p, &err);
    assert_non_null(r);
    assert_true(PQgetisnull(r, 0, 0));
    PQclear(r);
    pg_pool_put(pool, c);
}

/* A pool of one connection (so every call of a test runs on the same
 * session), and that connection borrowed. */
static pg_pool_t *pool_of_one(void)
{
    hd_err_t err;
    bool up;
    pg_pool_t *pool = pg_pool_new(url(), 1, 5, 5000, &up, &err);
    if (!up)
        fail_msg("database not reachable at %s: %s", url(), err.msg);
    return pool;
}

static pg_conn_t *borrow(pg_pool_t *pool)
{
    hd_err_t err;
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    if (c == NULL)
        fail_msg("no connection: %s", err.msg);
    return c;
}

/* How the server planned a prepared statement of this connection so far. */
static void plans_of(pg_conn_t *c, const char *name, long *generic, long *custom)
{
    const char *p[] = {name};
    PGresult *r = PQexecParams(pg_raw(c),
                               "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                               "WHERE name = $1",
                               1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    *generic = atol(PQgetvalue(r, 0, 0));
    *custom = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
}

static void run_batch(pg_conn_t *c, const pg_stmt_t *st, int times)
{
    hd_err_t err;
    for (int i = 0; i < times; i++) {
        const char *p[] = {i % 2 ? "{a,b,c}" : "{x}"};
        PGresult *r = pg_exec(c, st, p, &err);
        if (r == NULL)
            fail_msg("%s: %s", st->name, err.msg);
        PQclear(r);
    }
}

static const char *show(pg_conn_t *c, const char *setting)
{
    static char value[64];
    char sql[96];
    snprintf(sql, sizeof(sql), "SHOW %s", setting);
    PGresult *r = PQexec(pg_raw(c), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(value, sizeof(value), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return value;
}

static const char *plan_mode_now(pg_conn_t *c)
{
    return show(c, "plan_cache_mode");
}

static void reads_of(pg_conn_t *c, const char *table, long *seq, long *idx)
{
    const char *p[] = {table};
    PGresult *r = PQexecParams(pg_raw(c),
                               "SELECT seq_scan, coalesce(idx_scan, 0) FROM "
                               "pg_stat_xact_user_tables WHERE relname = $1",
                               1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    *seq = atol(PQgetvalue(r, 0, 0));
    *idx = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
}

/* Made once on a table of one page, analyzed, a generic plan would read the
 * table (and so would the foreign key's check PostgreSQL plans inside the
 * statement); the table then grows to 50,000 rows with no new statistics.
 * The generic mode keeps both on the index. */
static const pg_stmt_t st_grow = {
    "t_grow",
    "WITH p AS (SELECT id FROM herald_test_gp_parent WHERE id = ANY($1::int[])) "
    "INSERT INTO herald_test_gp_child (parent) SELECT id FROM p",
    1, true};

static void test_generic_plans_stay_on_the_index(void **state)
{
    (void)state;
    hd_err_t err;
    pg_pool_t *pool = pool_of_one();
    pg_conn_t *c = borrow(pool);
    assert_int_equal(
        pg_exec_script(c,
                       "DROP TABLE IF EXISTS herald_test_gp_child, herald_test_gp_parent; "
                       "CREATE TABLE herald_test_gp_parent (id int PRIMARY KEY, pad text) "
                       "WITH (autovacuum_enabled = false); "
                       "CREATE TABLE herald_test_gp_child (id serial PRIMARY KEY, parent int "
                       "NOT NULL REFERENCES herald_test_gp_parent (id)) "
                       "WITH (autovacuum_enabled = false); "
                       "INSERT INTO herald_test_gp_parent VALUES (1, 'x'); "
                       "ANALYZE herald_test_gp_parent",
                       &err),
        0);
    const char *one[] = {"{1}"};
    PGresult *r = pg_exec(c, &st_grow, one, &err); /* planned now, on one page */
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(pg_exec_script(c,
                                    "INSERT INTO herald_test_gp_parent SELECT g, repeat('x', "
                                    "100) FROM generate_series(2, 50000) g",
                                    &err),
                     0);
    /* the same connection, still in the generic mode; the counters of the
     * backend's reads of the table (pending ones included) around the call */
    long seq0, idx0, seq, idx;
    assert_int_equal(pg_tx_open(c, &err), 0);
    reads_of(c, "herald_test_gp_parent", &seq0, &idx0);
    const char *some[] = {"{7,4000,49999}"};
    r = pg_exec(c, &st_grow, some, &err);
    assert_non_null(r);
    PQclear(r);
    reads_of(c, "herald_test_gp_parent", &seq, &idx);
    assert_int_equal(pg_tx_close(c, -1, &err), -1);
    seq -= seq0;
    idx -= idx0;
    if (seq != 0)
        fail_msg("the parent table was read %ld times (index used %ld times)", seq, idx);
    assert_true(idx >= 2); /* the lookup and the foreign key's checks */
    long g, cu;
    plans_of(c, "t_grow", &g, &cu);
    assert_int_equal(cu, 0);
    assert_int_equal(g, 2); /* both calls ran the generic plan */
    assert_int_equal(
        pg_exec_script(c, "DROP TABLE herald_test_gp_child, herald_test_gp_parent", &err), 0);
    pg_pool_put(pool, c);
    pg_pool_free(pool);
}

/* A connection's generic plans are made again (DISCARD PLANS) 1 s after it
 * opens and 2 s after that: a plan made on a new database's empty tables
 * does not outlive them. The prepared statements keep working, in a
 * transaction too, still generic; statements of the default mode never
 * cause it. */
static void test_generic_plans_made_again(void **state)
{
    (void)state;
    hd_err_t err;
    pg_pool_t *pool = pool_of_one();
    pg_conn_t *c = borrow(pool);
    run_batch(c, &st_batch_generic, 2);
    assert_int_equal(pg_pool_replans(pool), 0);
    usleep(1100 * 1000);
    run_batch(c, &st_batch_auto, 1);
    assert_int_equal(pg_pool_replans(pool), 0);
    run_batch(c, &st_batch_generic, 1);
    assert_int_equal(pg_pool_replans(pool), 1);
    run_batch(c, &st_batch_generic, 1);
    assert_int_equal(pg_pool_replans(pool), 1); /* the next one 2 s later */
    usleep(2100 * 1000);
    assert_int_equal(pg_tx_open(c, &err), 0);
    run_batch(c, &st_batch_generic, 2);
    assert_int_equal(pg_tx_close(c, 0, &err), 0);
    assert_int_equal(pg_pool_replans(pool), 2);
    long g, cu;
    plans_of(c, "t_batch_generic", &g, &cu);
    assert_int_equal(cu, 0);
    assert_int_equal(g, 6);
    pg_pool_put(pool, c);
    pg_pool_free(pool);
}

/* A statement marked generic is planned once per connection; the same SQL
 * unmarked gets PostgreSQL's default (custom plans first); the connection
 * switches back for it, and never inside a transaction. */
static void test_generic_plans(void **state)
{
    (void)state;
    hd_err_t err;
    pg_pool_t *pool = pool_of_one();
    pg_conn_t *c = borrow(pool);
    run_batch(c, &st_batch_generic, 8);
    long g, cu;
    plans_of(c, "t_batch_generic", &g, &cu);
    assert_int_equal(cu, 0);
    assert_true(g >= 1);
    assert_string_equal(plan_mode_now(c), "force_generic_plan");
    assert_string_equal(show(c, "enable_seqscan"), "off");
    assert_string_equal(show(c, "enable_hashjoin"), "off");
    assert_string_equal(show(c, "enable_mergejoin"), "off");
    assert_string_equal(show(c, "jit"), "off");
    assert_int_equal(pg_pool_plan_switches(pool), 1);

    run_batch(c, &st_batch_auto, 8);
    plans_of(c, "t_batch_auto", &g, &cu);
    assert_true(cu >= 5); /* the server's default: five custom plans first */
    assert_string_equal(plan_mode_now(c), "auto");
    assert_string_equal(show(c, "enable_seqscan"), "on");
    assert_string_equal(show(c, "enable_hashjoin"), "on");
    assert_string_equal(show(c, "enable_mergejoin"), "on");
    assert_int_equal(pg_pool_plan_switches(pool), 2);

    /* inside a transaction each statement still runs in its own mode, by
     * SET LOCAL, which the transaction's end undoes: the session's mode is
     * what the pool believes whether it commits or rolls back */
    assert_int_equal(pg_tx_open(c, &err), 0);
    run_batch(c, &st_batch_generic, 2);
    assert_string_equal(show(c, "enable_seqscan"), "off");
    assert_string_equal(show(c, "enable_hashjoin"), "off");
    run_batch(c, &st_batch_auto, 1);
    assert_string_equal(show(c, "enable_seqscan"), "on");
    assert_string_equal(show(c, "enable_hashjoin"), "on");
    run_batch(c, &st_batch_generic, 1);
    assert_string_equal(plan_mode_now(c), "force_generic_plan");
    assert_int_equal(pg_tx_close(c, -1, &err), -1); /* rolled back */
    assert_string_equal(plan_mode_now(c), "auto");
    assert_string_equal(show(c, "enable_seqscan"), "on");
    assert_int_equal(pg_pool_plan_switches(pool), 5);
    plans_of(c, "t_batch_generic", &g, &cu);
    assert_int_equal(cu, 0); /* never planned the default way */

    /* a generic session: an unflagged statement in a transaction runs with
     * the server's settings, and the session stays generic after commit */
    run_batch(c, &st_batch_generic, 1);
    assert_string_equal(plan_mode_now(c), "force_generic_plan");
    assert_int_equal(pg_tx_open(c, &err), 0);
    run_batch(c, &st_batch_auto, 1);
    assert_string_equal(plan_mode_now(c), "auto");
    assert_string_equal(show(c, "enable_seqscan"), "on");
    assert_int_equal(pg_tx_close(c, 0, &err), 0); /* committed */
    assert_string_equal(plan_mode_now(c), "force_generic_plan");
    assert_string_equal(show(c, "enable_seqscan"), "off");
    /* a new transaction starts from the session's mode, not the last one's */
    assert_int_equal(pg_tx_open(c, &err), 0);
    run_batch(c, &st_batch_generic, 1);
    assert_string_equal(show(c, "enable_seqscan"), "off");
    assert_int_equal(pg_tx_close(c, 0, &err), 0);
    assert_int_equal(pg_pool_plan_switches(pool), 7);
    pg_pool_put(pool, c);
    pg_pool_free(pool);
}

/* A migration that changes the type of a column a prepared statement returns
 * makes the statement fail on every call of that connection (0A000); outside
 * a transaction it is prepared again on a new connection and runs, inside one
 * the error stands and the connection is replaced when returned. */
static const pg_stmt_t st_typed = {"t_typed", "SELECT v FROM herald_test_pg_typed WHERE k = $1", 1,
                                   false};

static void test_prepared_again_after_a_type_change(void **state)
{
    (void)state;
    hd_err_t err;
    pg_pool_t *pool = pool_of_one(), *other = pool_of_one();
    pg_conn_t *o = borrow(other);
    assert_int_equal(
        pg_exec_script(o,
                       "DROP TABLE IF EXISTS herald_test_pg_typed; "
                       "CREATE TABLE herald_test_pg_typed (k text PRIMARY KEY, v int); "
                       "INSERT INTO herald_test_pg_typed VALUES ('a', 1)",
                       &err),
        0);
    pg_conn_t *c = borrow(pool);
    assert_non_null(c);
    const char *p[] = {"a"};
    PGresult *r = pg_exec(c, &st_typed, p, &err);
    assert_non_null(r);
    assert_int_equal(PQftype(r, 0), 23); /* int4 */
    PQclear(r);
    pg_pool_put(pool, c);

    assert_int_equal(
        pg_exec_script(o, "ALTER TABLE herald_test_pg_typed ALTER COLUMN v TYPE bigint", &err), 0);
    c = borrow(pool);
    r = pg_exec(c, &st_typed, p, &err);
    if (r == NULL)
        fail_msg("not prepared again: %s", err.msg);
    assert_int_equal(PQftype(r, 0), 20); /* int8 */
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    pg_pool_put(pool, c);

    assert_int_equal(
        pg_exec_script(o, "ALTER TABLE herald_test_pg_typed ALTER COLUMN v TYPE text", &err), 0);
    c = borrow(pool);
    assert_int_equal(pg_tx_open(c, &err), 0);
    assert_null(pg_exec(c, &st_typed, p, &err));
    assert_string_equal(pg_last_sqlstate(c), "0A000");
    pg_tx_close(c, -1, NULL);
    pg_pool_put(pool, c);
    c = borrow(pool);
    assert_int_equal(pg_tx_open(c, &err), 0);
    r = pg_exec(c, &st_typed, p, &err);
    if (r == NULL)
        fail_msg("the connection was not replaced: %s", err.msg);
    assert_int_equal(PQftype(r, 0), 25); /* text */
    PQclear(r);
    assert_int_equal(pg_tx_close(c, 0, &err), 0);
    pg_pool_put(pool, c);

    assert_int_equal(pg_exec_script(o, "DROP TABLE herald_test_pg_typed", &err), 0);
    pg_pool_put(other, o);
    pg_pool_free(pool);
    pg_pool_free(other);
}

static int insert_two(pg_pool_t *pool, const char **keys, hd_err_t *err)
{
    pg_conn_t *c = pg_tx_begin(pool, err);
    if (c == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        const char *p[] = {keys[i]};
        if ((rc = pg_exec_ok(c, &st_ins, p, err)) != 0)
            break;
    }
    return pg_tx_end(pool, c, rc, err);
}

static void test_transactions(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    char a[64], b[64];
    snprintf(a, sizeof(a), "a-%d-%ld", getpid(), random());
    snprintf(b, sizeof(b), "b-%d-%ld", getpid(), random());
    const char *ok[] = {a, b};
    assert_int_equal(insert_two(pool, ok, &err), 0);
    assert_int_equal(count(pool, a), 1);
    assert_int_equal(count(pool, b), 1);

    /* The second insert violates the key: the first is rolled back too. */
    char c2[64];
    snprintf(c2, sizeof(c2), "c-%d-%ld", getpid(), random());
    const char *dup[] = {c2, a};
    assert_int_equal(insert_two(pool, dup, &err), -1);
    assert_non_null(strstr(err.msg, "duplicate key"));
    assert_int_equal(count(pool, c2), 0);
}

static void test_unique_violation_state(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    char k[64];
    snprintf(k, sizeof(k), "u-%d-%ld", getpid(), random());
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    const char *p[] = {k};
    PQclear(pg_exec(c, &st_ins, p, &err));
    assert_null(pg_exec(c, &st_ins, p, &err));
    assert_true(pg_is_unique_violation(c));
    assert_string_equal(pg_last_sqlstate(c), "23505");
    pg_pool_put(pool, c);
}

static void test_left_open_transaction_is_rolled_back(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    char k[64];
    snprintf(k, sizeof(k), "open-%d-%ld", getpid(), random());
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    assert_int_equal(pg_exec_script(c, "BEGIN", &err), 0);
    const char *p[] = {k};
    PQclear(pg_exec(c, &st_ins, p, &err));
    pg_pool_put(pool, c); /* never committed */
    assert_int_equal(count(pool, k), 0);
    c = pg_pool_get(pool, 1000, &err);
    assert_int_equal(PQtransactionStatus(pg_raw(c)), PQTRANS_IDLE);
    pg_pool_put(pool, c);
}

static void test_exhaustion_times_out(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    pg_conn_t *a = pg_pool_get(pool, 1000, &err);
    pg_conn_t *b = pg_pool_get(pool, 1000, &err);
    assert_non_null(a);
    assert_non_null(b);
    int in_use, idle, size;
    pg_pool_stats(pool, &in_use, &idle, &size);
    assert_int_equal(in_use, 2);
    assert_int_equal(size, 2);
    assert_null(pg_pool_get(pool, 100, &err));
    assert_non_null(strstr(err.msg, "no connection free within 100 ms"));
    pg_pool_put(pool, a);
    pg_pool_put(pool, b);
    pg_pool_stats(pool, &in_use, &idle, &size);
    assert_int_equal(in_use, 0);
    assert_int_equal(idle, 2);
}

static void test_reconnects_after_backend_killed(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    PGresult *r = pg_exec(c, &st_pid, NULL, &err);
    char pid[32];
    snprintf(pid, sizeof(pid), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    pg_pool_put(pool, c);

    /* Kill every backend of this pool from a separate connection. */
    PGconn *killer = PQconnectdb(url());
    assert_int_equal(PQstatus(killer), CONNECTION_OK);
    const char *kp[] = {pid};
    r = PQexecParams(killer, "SELECT pg_terminate_backend($1::int)", 1, NULL, kp, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    /* Wait until the server has really ended it. */
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        r = PQexecParams(killer, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1,
                         NULL, kp, NULL, NULL, 0);
        gone = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
        PQclear(r);
        if (!gone)
            usleep(10000);
    }
    assert_true(gone);
    PQfinish(killer);

    /* Every connection handed out afterwards works at once. */
    for (int i = 0; i < 2; i++) {
        if (pg_pool_ping(pool, &err) != 0)
            fail_msg("ping %d after the kill: %s", i, err.msg);
    }
    c = pg_pool_get(pool, 1000, &err);
    r = pg_exec(c, &st_pid, NULL, &err);
    assert_non_null(r);
    assert_string_not_equal(PQgetvalue(r, 0, 0), pid);
    PQclear(r);
    pg_pool_put(pool, c);
}

static void test_commit_of_a_failed_transaction_fails(void **state)
{
    pg_pool_t *pool = *state;
    hd_err_t err;
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    assert_int_equal(pg_exec_script(c, "BEGIN", &err), 0);
    assert_int_equal(pg_exec_script(c, "SELECT 1/0", &err), -1);
    assert_string_equal(pg_last_sqlstate(c), "22012");
    /* PostgreSQL answers this COMMIT with ROLLBACK; that is a failure. */
    assert_int_equal(pg_commit(c, &err), -1);
    assert_non_null(strstr(err.msg, "rolled back"));
    pg_pool_put(pool, c);
}

static void test_query_deadline(void **state)
{
    hd_err_t err;
    bool up;
    pg_pool_t *pool = pg_pool_new(url(), 1, 5, 300, &up, &err);
    assert_true(up);
    pg_conn_t *c = pg_pool_get(pool, 1000, &err);
    /* The server's statement_timeout (the same 300 ms) cancels it. */
    assert_int_equal(pg_exec_script(c, "SELECT pg_sleep(3)", &err), -1);
    assert_string_equal(pg_last_sqlstate(c), "57014");
    pg_pool_put(pool, c);
    /* And the connection is usable afterwards. */
    assert_int_equal(pg_pool_ping(pool, &err), 0);
    pg_pool_free(pool);
}

static void test_unreachable_server(void **state)
{
    hd_err_t err;
    bool up = true;
    pg_pool_t *pool = pg_pool_new("postgresql://herald@127.0.0.1:1/herald", 1, 2, 1000, &up, &err);
    assert_false(up);
    assert_non_null(strstr(err.msg, "database:"));
    assert_int_equal(pg_pool_ping(pool, &err), -1);
    pg_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepared_statements),
        cmocka_unit_test(test_generic_plans),
        cmocka_unit_test(test_generic_plans_stay_on_the_index),
        cmocka_unit_test(test_generic_plans_made_again),
        cmocka_unit_test(test_prepared_again_after_a_type_change),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_unique_violation_state),
        cmocka_unit_test(test_left_open_transaction_is_rolled_back),
        cmocka_unit_test(test_exhaustion_times_out),
        cmocka_unit_test(test_reconnects_after_backend_killed),
        cmocka_unit_test(test_commit_of_a_failed_transaction_fails),
        cmocka_unit_test(test_query_deadline),
        cmocka_unit_test(test_unreachable_server),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
