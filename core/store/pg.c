/*
 * pg.c - libpq pool (see pg.h). A mutex and condition variable guard the
 * free list only; queries run outside the lock.
 */
#include "store/pg.h"
#include "base/buf.h"
#include "base/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_PREPARED 128

struct pg_conn {
    PGconn *conn; /* NULL until first use */
    const pg_stmt_t *prepared[MAX_PREPARED];
    int nprepared;
    bool borrowed;
    bool server_closed;   /* a FATAL notice arrived while idle */
    bool generic;         /* in the mode of generic statements (pg_stmt_t) */
    bool tx_set;          /* a SET LOCAL changed the mode for this transaction: */
    bool tx_generic;      /* to this one */
    bool drop_on_put;     /* its prepared statements are stale: reconnect */
    long long replan_at;  /* monotonic ms: DISCARD PLANS before the next generic statement */
    long long replan_gap; /* ms until the one after (doubling to REPLAN_MAX_MS) */
    pg_pool_t *pool;
    char sqlstate[6];
};

struct pg_pool {
    char *url;
    int connect_timeout_s;
    int query_timeout_ms;        /* 0: wait as long as it takes (migrations) */
    atomic_llong retry_after_ms; /* monotonic ms before which no connect is tried */
    atomic_long plan_switches;   /* SETs of plan_cache_mode sent */
    atomic_long replans;         /* DISCARD PLANS sent */
    int size;
    pg_conn_t *conns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Server notices ("relation already exists, skipping") go to the debug log,
 * not raw to stderr. A FATAL message arriving on an idle connection is the
 * server ending it (terminated backend, shutdown): the connection is marked
 * so the next borrower gets a fresh one, even before the socket's EOF shows. */
static void on_notice(void *arg, const PGresult *res)
{
    pg_conn_t *c = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        c->server_closed = true;
    char m[512];
    snprintf(m, sizeof(m), "%s", PQresultErrorMessage(res));
    m[strcspn(m, "\n")] = '\0';
    log_debug("database notice", "detail", m);
}

static long long now_ms(void);

/* A generic plan is made on the tables as they are at the statement's first
 * use on a connection, and kept: made on a new database's empty tables, where
 * every table counts one row, any index holding the column looks as good as
 * the key (the claim read a whole index of the messages, on `id` as its third
 * column, for 16 rows). A connection therefore has its plans made again
 * (DISCARD PLANS: the prepared statements stay, their plans and those of the
 * functions they call are made again at their next use) 1 s after it opens,
 * then 2, 4, ... s later, and every REPLAN_MAX_MS from then on: early while
 * the tables may still be filling, rarely after. */
#define REPLAN_FIRST_MS 1000
#define REPLAN_MAX_MS   60000

static void forget_prepared(pg_conn_t *c)
{
    c->replan_gap = REPLAN_FIRST_MS;
    c->replan_at = now_ms() + c->replan_gap;
    c->nprepared = 0;
    c->generic = false; /* a new session plans as the server says */
    c->tx_set = false;
    c->drop_on_put = false;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_conn(pg_pool_t *pool, pg_conn_t *c, hd_err_t *err)
{
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    forget_prepared(c);
    /* After a failed connect, fail fast for a second: a down server must not
     * cost every request a connect timeout. */
    if (now_ms() < atomic_load(&pool->retry_after_ms))
        return hd_err_set(err, "database: unreachable (next connection attempt within 1 s)");
    char timeout[16], user_timeout[16], options[64];
    snprintf(timeout, sizeof(timeout), "%d", pool->connect_timeout_s);
    /* A peer that stops acknowledging (host gone, network cut) is declared
     * dead by the kernel instead of hanging a thread forever. */
    snprintf(user_timeout, sizeof(user_timeout), "%d",
             pool->query_timeout_ms > 0 ? pool->query_timeout_ms : 30000);
    snprintf(options, sizeof(options), "-c statement_timeout=%d", pool->query_timeout_ms);
    const char *keys[] = {"dbname",           "connect_timeout",
                          "application_name", "keepalives",
                          "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout",
                          "options",          NULL};
    const char *vals[] = {pool->url, timeout, "herald",     "1",     "30",
                          "10",      "3",     user_timeout, options, NULL};
    /* expand_dbname=1: the URL in "dbname" is parsed as a connection string;
     * the keys after it override what the URL says. */
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (c->conn == NULL)
        return hd_err_set(err, "database: out of memory");
    if (PQstatus(c->conn) != CONNECTION_OK) {
        hd_err_set(err, "database: %s", PQerrorMessage(c->conn));
        if (err)
            err->msg[strcspn(err->msg, "\n")] = '\0';
        PQfinish(c->conn);
        c->conn = NULL;
        atomic_store(&pool->retry_after_ms, now_ms() + 1000);
        return -1;
    }
    atomic_store(&pool->retry_after_ms, 0);
    c->server_closed = false;
    PQsetNoticeReceiver(c->conn, on_notice, c);
    return 0;
}

pg_pool_t *pg_pool_new(const char *url, int size, int connect_timeout_s, int query_timeout_ms,
                       bool *connected, hd_err_t *err)
{
    pg_pool_t *pool = xcalloc(1, sizeof(*pool));
    pool->url = xstrdup(url);
    pool->query_timeout_ms = query_timeout_ms > 0 ? query_timeout_ms : 0;
    atomic_init(&pool->retry_after_ms, 0);
    atomic_init(&pool->plan_switches, 0);
    atomic_init(&pool->replans, 0);
    pool->size = size > 0 ? size : 1;
    pool->connect_timeout_s = connect_timeout_s > 0 ? connect_timeout_s : 5;
    pool->conns = xcalloc((size_t)pool->size, sizeof(pg_conn_t));
    for (int i = 0; i < pool->size; i++)
        pool->conns[i].pool = pool;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    bool ok = connect_conn(pool, &pool->conns[0], err) == 0;
    if (connected)
        *connected = ok;
    return pool;
}

void pg_pool_free(pg_pool_t *pool)
{
    if (pool == NULL)
        return;
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].conn)
            PQfinish(pool->conns[i].conn);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->conns);
    free(pool->url);
    free(pool);
}

/* True unless the server has closed the socket of this idle connection. */
static bool still_open(pg_conn_t *c)
{
    if (PQconsumeInput(c->conn) == 0)
        return false;
    /* PQconsumeInput only reads; PQisBusy parses what arrived, which hands a
     * FATAL message to on_notice. */
    (void)PQisBusy(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK || c->server_closed)
        return false;
    char b;
    ssize_t n = recv(PQsocket(c->conn), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK));
}

pg_conn_t *pg_pool_get(pg_pool_t *pool, int timeout_ms, hd_err_t *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pg_conn_t *c = NULL;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        /* Prefer an open idle connection over opening a new one. */
        for (int i = 0; i < pool->size && c == NULL; i++)
            if (!pool->conns[i].borrowed && pool->conns[i].conn)
                c = &pool->conns[i];
        for (int i = 0; i < pool->size && c == NULL; i++)
            if (!pool->conns[i].borrowed)
                c = &pool->conns[i];
        if (c != NULL)
            break;
        if (pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&pool->mu);
            hd_err_set(err, "database: no connection free within %d ms (pool size %d)", timeout_ms,
                       pool->size);
            return NULL;
        }
    }
    c->borrowed = true;
    pthread_mutex_unlock(&pool->mu);

    /* Health check outside the lock. A backend that was terminated or a
     * server that restarted left an error and EOF on the socket:
     * PQconsumeInput reads them without blocking and marks the connection
     * bad, so it is reopened here, before any statement is sent, and no
     * statement ever runs twice. */
    if (c->conn != NULL && !still_open(c)) {
        log_info("database connection lost; reconnecting");
        PQfinish(c->conn);
        c->conn = NULL;
    }
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        if (connect_conn(pool, c, err) != 0) {
            pg_pool_put(pool, c);
            return NULL;
        }
    }
    c->sqlstate[0] = '\0';
    return c;
}

void pg_pool_put(pg_pool_t *pool, pg_conn_t *c)
{
    if (c == NULL)
        return;
    if (c->conn) {
        PGTransactionStatusType ts = PQtransactionStatus(c->conn);
        if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
            PGresult *r = PQexec(c->conn, "ROLLBACK");
            PQclear(r);
        }
        if (PQstatus(c->conn) != CONNECTION_OK || PQtransactionStatus(c->conn) != PQTRANS_IDLE ||
            c->drop_on_put) {
            PQfinish(c->conn);
            c->conn = NULL;
            forget_prepared(c);
        }
    }
    pthread_mutex_lock(&pool->mu);
    c->borrowed = false;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

void pg_pool_stats(pg_pool_t *pool, int *in_use, int *idle, int *size)
{
    int used = 0, open_idle = 0;
    pthread_mutex_lock(&pool->mu);
    for (int i = 0; i < pool->size; i++) {
        if (pool->conns[i].borrowed)
            used++;
        else if (pool->conns[i].conn)
            open_idle++;
    }
    pthread_mutex_unlock(&pool->mu);
    if (in_use)
        *in_use = used;
    if (idle)
        *idle = open_idle;
    if (size)
        *size = pool->size;
}

static int fail(pg_conn_t *c, PGresult *r, const char *what, hd_err_t *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
    const char *msg = r ? PQresultErrorMessage(r) : (c->conn ? PQerrorMessage(c->conn) : NULL);
    hd_err_set(err, "database: %s: %s", what, (msg && *msg) ? msg : "connection lost");
    if (err)
        err->msg[strcspn(err->msg, "\n")] = '\0';
    PQclear(r);
    return -1;
}

static bool ok_status(PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
}

/* Collects the results of a sent command within the pool's deadline. A
 * server that does not answer in time (frozen, partitioned) costs this
 * request an error, and the connection is dropped: its state is unknown.
 * Returns the last result of a successful command, or NULL with err (the
 * first error of a failed one). */
static PGresult *await(pg_pool_t *pool, pg_conn_t *c, const char *what, hd_err_t *err)
{
    long long deadline = pool->query_timeout_ms ? now_ms() + pool->query_timeout_ms : 0;
    PGresult *last = NULL, *error = NULL;
    for (;;) {
        while (PQisBusy(c->conn)) {
            int wait = -1;
            if (deadline) {
                long long left = deadline - now_ms();
                if (left <= 0) {
                    PQclear(last);
                    PQclear(error);
                    PQfinish(c->conn);
                    c->conn = NULL;
                    forget_prepared(c);
                    snprintf(c->sqlstate, sizeof(c->sqlstate), "57014");
                    hd_err_set(err, "database: %s: no answer within %d ms", what,
                               pool->query_timeout_ms);
                    return NULL;
                }
                wait = (int)left;
            }
            struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
            int pr = poll(&pfd, 1, wait);
            if (pr < 0 && errno != EINTR)
                break;
            if (pr > 0 && PQconsumeInput(c->conn) == 0)
                break; /* connection lost: PQgetResult reports it */
        }
        PGresult *r = PQgetResult(c->conn);
        if (r == NULL)
            break;
        if (!ok_status(r) && error == NULL) {
            error = r;
        } else if (error != NULL) {
            PQclear(r);
        } else {
            PQclear(last);
            last = r;
        }
        if (PQstatus(c->conn) == CONNECTION_BAD)
            break;
    }
    if (error != NULL || last == NULL) {
        PQclear(last);
        fail(c, error, what, err);
        return NULL;
    }
    c->sqlstate[0] = '\0';
    return last;
}

static pg_pool_t *owner(pg_conn_t *c);

/* Puts the connection in the planning mode st asks for (pg_stmt_t): with a
 * session SET outside a transaction, and with SET LOCAL inside one (undone
 * by its commit or rollback, so the session's mode stays what the pool
 * believes). So every statement runs in its own mode, in a transaction too:
 * a generic statement's plan is never made with sequential scans allowed, and
 * no other statement is planned without them. */
static int plan_mode(pg_pool_t *pool, pg_conn_t *c, const pg_stmt_t *st, hd_err_t *err)
{
    bool in_tx = PQtransactionStatus(c->conn) != PQTRANS_IDLE;
    if (!in_tx)
        c->tx_set = false;
    bool now = c->tx_set ? c->tx_generic : c->generic;
    if (st->generic == now)
        return 0;
    const char *sql;
    if (!in_tx)
        sql = st->generic ? "SET plan_cache_mode = force_generic_plan; "
                            "SET enable_seqscan = off; SET enable_hashjoin = off; "
                            "SET enable_mergejoin = off; SET jit = off"
                          : "RESET plan_cache_mode; RESET enable_seqscan; RESET enable_hashjoin; "
                            "RESET enable_mergejoin; RESET jit";
    else if (st->generic)
        sql = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; "
              "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
              "SET LOCAL jit = off";
    else
        sql = "SET LOCAL plan_cache_mode TO DEFAULT; SET LOCAL enable_seqscan TO DEFAULT; "
              "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT; "
              "SET LOCAL jit TO DEFAULT";
    if (!PQsendQuery(c->conn, sql))
        return fail(c, NULL, st->name, err);
    PGresult *r = await(pool, c, st->name, err);
    if (r == NULL)
        return -1;
    PQclear(r);
    if (in_tx) {
        c->tx_set = true;
        c->tx_generic = st->generic;
    } else {
        c->generic = st->generic;
    }
    atomic_fetch_add(&pool->plan_switches, 1);
    return 0;
}

long pg_pool_plan_switches(pg_pool_t *pool)
{
    return atomic_load(&pool->plan_switches);
}

/* Before a generic statement: the connection's plans made again when due
 * (REPLAN_FIRST_MS). DISCARD PLANS is allowed in a transaction and changes
 * nothing but plans. */
static int replan_if_due(pg_pool_t *pool, pg_conn_t *c, const pg_stmt_t *st, hd_err_t *err)
{
    long long now = now_ms();
    if (!st->generic || now < c->replan_at)
        return 0;
    if (!PQsendQuery(c->conn, "DISCARD PLANS"))
        return fail(c, NULL, st->name, err);
    PGresult *r = await(pool, c, st->name, err);
    if (r == NULL)
        return -1;
    PQclear(r);
    c->replan_gap = c->replan_gap * 2 > REPLAN_MAX_MS ? REPLAN_MAX_MS : c->replan_gap * 2;
    c->replan_at = now + c->replan_gap;
    atomic_fetch_add(&pool->replans, 1);
    return 0;
}

long pg_pool_replans(pg_pool_t *pool)
{
    return atomic_load(&pool->replans);
}

static PGresult *exec_once(pg_pool_t *pool, pg_conn_t *c, const pg_stmt_t *st,
                           const char *const *params, hd_err_t *err);

/* A statement prepared before a migration changed the type of a column it
 * returns fails with 0A000 ("cached plan must not change result type") on
 * every call: the connection's prepared statements are stale. Outside a
 * transaction the statement failed without effect, so it runs once more on a
 * new connection; inside one the caller's transaction is lost anyway, and the
 * connection is replaced when it is returned. */
PGresult *pg_exec(pg_conn_t *c, const pg_stmt_t *st, const char *const *params, hd_err_t *err)
{
    pg_pool_t *pool = owner(c);
    bool in_tx = c->conn != NULL && PQtransactionStatus(c->conn) != PQTRANS_IDLE;
    PGresult *r = exec_once(pool, c, st, params, err);
    if (r != NULL || strcmp(c->sqlstate, "0A000") != 0)
        return r;
    if (in_tx) {
        c->drop_on_put = true;
        return NULL;
    }
    log_info("database: statements prepared before a schema change; reconnecting", "statement",
             st->name);
    if (connect_conn(pool, c, err) != 0)
        return NULL;
    return exec_once(pool, c, st, params, err);
}

static PGresult *exec_once(pg_pool_t *pool, pg_conn_t *c, const pg_stmt_t *st,
                           const char *const *params, hd_err_t *err)
{
    if (c->conn == NULL)
        return fail(c, NULL, st->name, err), NULL;
    if (plan_mode(pool, c, st, err) != 0 || replan_if_due(pool, c, st, err) != 0)
        return NULL;
    int idx = -1;
    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == st)
            idx = i;
    if (idx < 0 && c->nprepared == MAX_PREPARED) {
        /* More statements than slots: run this one unprepared. */
        if (!PQsendQueryParams(c->conn, st->sql, st->nparams, NULL, params, NULL, NULL, 0))
            return fail(c, NULL, st->name, err), NULL;
        return await(pool, c, st->name, err);
    }
    if (idx < 0) {
        if (!PQsendPrepare(c->conn, st->name, st->sql, st->nparams, NULL))
            return fail(c, NULL, st->name, err), NULL;
        PGresult *r = await(pool, c, st->name, err);
        if (r == NULL)
            return NULL;
        PQclear(r);
        c->prepared[c->nprepared++] = st;
    }
    if (!PQsendQueryPrepared(c->conn, st->name, st->nparams, params, NULL, NULL, 0))
        return fail(c, NULL, st->name, err), NULL;
    return await(pool, c, st->name, err);
}

int pg_exec_script(pg_conn_t *c, const char *sql, hd_err_t *err)
{
    if (c->conn == NULL || !PQsendQuery(c->conn, sql))
        return fail(c, NULL, "query", err);
    PGresult *r = await(owner(c), c, "query", err);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int pg_commit(pg_conn_t *c, hd_err_t *err)
{
    if (c->conn == NULL || !PQsendQuery(c->conn, "COMMIT"))
        return fail(c, NULL, "commit", err);
    PGresult *r = await(owner(c), c, "commit", err);
    if (r == NULL)
        return -1;
    /* COMMIT of a transaction that already failed "succeeds" with the tag
     * ROLLBACK: that is a failure for the caller. */
    bool committed = strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    if (!committed)
        return hd_err_set(err, "database: the transaction failed earlier and was rolled back");
    return 0;
}

static pg_pool_t *owner(pg_conn_t *c)
{
    return c->pool;
}

const char *pg_last_sqlstate(const pg_conn_t *c)
{
    return c->sqlstate;
}

bool pg_is_unique_violation(const pg_conn_t *c)
{
    return strcmp(c->sqlstate, "23505") == 0;
}

PGconn *pg_raw(pg_conn_t *c)
{
    return c->conn;
}

int pg_pool_ping(pg_pool_t *pool, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(pool, 1000, err);
    if (c == NULL)
        return -1;
    int rc = pg_exec_script(c, "SELECT 1", err);
    pg_pool_put(pool, c);
    return rc;
}

int pg_tx_open(pg_conn_t *c, hd_err_t *err)
{
    c->tx_set = false; /* a SET LOCAL of an earlier transaction ended with it */
    return pg_exec_script(c, "BEGIN", err);
}

int pg_tx_open_read(pg_conn_t *c, hd_err_t *err)
{
    c->tx_set = false;
    return pg_exec_script(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
}

int pg_tx_close(pg_conn_t *c, int rc, hd_err_t *err)
{
    if (rc == 0)
        return pg_commit(c, err) == 0 ? 0 : -1;
    /* the caller's err already says why; a failed ROLLBACK leaves the
     * connection in a transaction, which pg_pool_put rolls back or drops */
    pg_exec_script(c, "ROLLBACK", NULL);
    return rc;
}

pg_conn_t *pg_tx_begin(pg_pool_t *pool, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(pool, 5000, err);
    if (c == NULL)
        return NULL;
    if (pg_tx_open(c, err) != 0) {
        pg_pool_put(pool, c);
        return NULL;
    }
    return c;
}

int pg_tx_end(pg_pool_t *pool, pg_conn_t *c, int rc, hd_err_t *err)
{
    rc = pg_tx_close(c, rc, err);
    pg_pool_put(pool, c);
    return rc;
}

int pg_exec_ok(pg_conn_t *c, const pg_stmt_t *st, const char *const *params, hd_err_t *err)
{
    PGresult *r = pg_exec(c, st, params, err);
    PQclear(r);
    return r ? 0 : -1;
}

int pg_pool_exec_ok(pg_pool_t *pool, const pg_stmt_t *st, const char *const *params, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(pool, 5000, err);
    if (c == NULL)
        return -1;
    int rc = pg_exec_ok(c, st, params, err);
    pg_pool_put(pool, c);
    return rc;
}
