/*
 * conn_guard.c - the header deadline, the descriptor budget and a quiet
 * libmicrohttpd log (see conn_guard.h). Uses the log and libmicrohttpd's
 * connection notifications.
 */
#include "http/conn_guard.h"
#include "base/buf.h"
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* Descriptors kept for everything but client connections: the database
 * pool, Redis, provider connections, files. */
#define FD_RESERVE 256

typedef struct conn_entry {
    int fd;
    /* monotonic ms by which the headers must be in (or, between requests, by
     * which the next must start); 0: a request is in hand */
    atomic_llong deadline_ms;
    atomic_bool between;            /* kept alive after a request, the next not begun */
    bool cut;                       /* under the guard's mu */
    struct conn_entry *prev, *next; /* under the guard's mu */
} conn_entry_t;

struct http_guard {
    long long header_ms, idle_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn_entry_t *conns; /* under mu */
    bool stopping;       /* under mu */
    pthread_t sweeper;
    /* the last libmicrohttpd message and when it was written */
    pthread_mutex_t log_mu;
    char last_msg[256];     /* under log_mu */
    long long last_ms;      /* under log_mu */
    unsigned long repeated; /* under log_mu: the same message since */
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

unsigned http_guard_fd_budget(const cfg_t *cfg)
{
    struct rlimit rl;
    unsigned want = (unsigned)cfg->http_max_conns;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)want + FD_RESERVE)
        return want;
    unsigned can = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE)
                                                : (unsigned)(rl.rlim_cur / 2);
    char lim[32], got[32];
    snprintf(lim, sizeof(lim), "%llu", (unsigned long long)rl.rlim_cur);
    snprintf(got, sizeof(got), "%u", can);
    log_warn("http.max_connections lowered to what the descriptor limit allows", "nofile", lim,
             "max_connections", got, "hint", "raise the hard limit (ulimit -Hn, LimitNOFILE)");
    return can;
}

/* Whether a connection past its deadline d is spared, with a new deadline
 * (mu held). What waits in its socket, unread, says (MSG_PEEK takes
 * nothing): a kept-alive connection on which a request has begun gets
 * header_ms for its headers from now; whole headers that its HTTP thread has
 * not read yet (the thread is busy with another request) are not a slow
 * client. Anything else is cut: headers still incomplete at their deadline
 * (a slow or stalled client), or a connection idle since its last request
 * for idle_ms. The deadline moves only if no request was taken in hand
 * meanwhile (deadline still d). */
static bool spare(http_guard_t *g, conn_entry_t *e, long long d, long long now)
{
    char peek[8192];
    ssize_t got = recv(e->fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
    bool begun = got > 0;
    bool whole = begun && memmem(peek, (size_t)got, "\r\n\r\n", 4) != NULL;
    bool between = atomic_load(&e->between);
    if (!whole && !(between && begun))
        return false;
    if (between)
        atomic_store(&e->between, false);
    long long expected = d;
    atomic_compare_exchange_strong(&e->deadline_ms, &expected, now + g->header_ms);
    return true;
}

static void *run_sweeper(void *arg)
{
    http_guard_t *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &until);
        long long now = now_ms();
        unsigned cut = 0;
        for (conn_entry_t *e = g->conns; e; e = e->next) {
            long long d = atomic_load(&e->deadline_ms);
            /* The socket is still open: libmicrohttpd closes it only after
             * telling http_guard_notify, which waits for mu. */
            if (d != 0 && now >= d && !e->cut) {
                if (spare(g, e, d, now))
                    continue;
                shutdown(e->fd, SHUT_RDWR);
                e->cut = true;
                cut++;
            }
        }
        if (cut) {
            char n[16], s[24];
            snprintf(n, sizeof(n), "%u", cut);
            snprintf(s, sizeof(s), "%lld", g->header_ms / 1000);
            log_info("closed connections whose request headers did not arrive in time",
                     "connections", n, "header_timeout_s", s);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

http_guard_t *http_guard_start(const cfg_t *cfg)
{
    http_guard_t *g = xcalloc(1, sizeof(*g));
    g->header_ms = (long long)cfg->http_header_timeout_s * 1000;
    g->idle_ms = (long long)cfg->http_idle_timeout_s * 1000;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->log_mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->sweeper, NULL, run_sweeper, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_mutex_destroy(&g->log_mu);
        pthread_cond_destroy(&g->cv);
        free(g);
        return NULL;
    }
    return g;
}

void http_guard_stop(http_guard_t *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->sweeper, NULL);
    /* the daemon is stopped: every connection was reported closed */
    while (g->conns) {
        conn_entry_t *e = g->conns;
        g->conns = e->next;
        free(e);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->log_mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

void http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    http_guard_t *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_entry_t *e = xcalloc(1, sizeof(*e));
        e->fd = ci ? ci->connect_fd : -1;
        atomic_init(&e->deadline_ms, e->fd >= 0 ? now_ms() + g->header_ms : 0);
        atomic_init(&e->between, false);
        pthread_mutex_lock(&g->mu);
        e->next = g->conns;
        if (g->conns)
            g->conns->prev = e;
        g->conns = e;
        pthread_mutex_unlock(&g->mu);
        *socket_context = e;
        return;
    }
    conn_entry_t *e = *socket_context;
    if (e == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    if (e->prev)
        e->prev->next = e->next;
    else
        g->conns = e->next;
    if (e->next)
        e->next->prev = e->prev;
    pthread_mutex_unlock(&g->mu);
    free(e);
    *socket_context = NULL;
}

static conn_entry_t *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_guard_headers_in(struct MHD_Connection *conn)
{
    conn_entry_t *e = entry_of(conn);
    if (e) {
        atomic_store(&e->deadline_ms, 0);
        atomic_store(&e->between, false);
    }
}

void http_guard_request_done(http_guard_t *g, struct MHD_Connection *conn)
{
    conn_entry_t *e = entry_of(conn);
    if (e && e->fd >= 0) {
        /* kept alive: the next request may come up to idle_ms from now (a
         * client that reuses its connection after a pause is not slow);
         * once it begins, its headers get header_ms (spare) */
        atomic_store(&e->between, true);
        atomic_store(&e->deadline_ms, now_ms() + g->idle_ms);
    }
}

void http_guard_mhd_log(void *cls, const char *fmt, va_list ap)
{
    http_guard_t *g = cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    long long now = now_ms();
    pthread_mutex_lock(&g->log_mu);
    bool same = strcmp(msg, g->last_msg) == 0 && now - g->last_ms < 1000;
    unsigned long repeated = g->repeated;
    if (same) {
        g->repeated++;
    } else {
        snprintf(g->last_msg, sizeof(g->last_msg), "%s", msg);
        g->last_ms = now;
        g->repeated = 0;
    }
    pthread_mutex_unlock(&g->log_mu);
    if (same)
        return;
    char n[24];
    snprintf(n, sizeof(n), "%lu", repeated);
    if (repeated)
        log_warn("http server", "detail", msg, "previous_repeated", n);
    else
        log_warn("http server", "detail", msg);
}
