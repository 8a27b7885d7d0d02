/*
 * loadgen.c - an open-loop HTTP/1.1 load generator for benchmarks: POSTs
 * JSON bodies on a fixed schedule over keep-alive connections (--threads
 * threads, 2 by default, each with its epoll, its share of the connections
 * and of the schedule), whatever the answer time, and measures each latency from the time
 * the request was scheduled, not sent: a slow answer delays the requests
 * behind it, and that wait is counted (no coordinated omission, as wrk2).
 * With --rate 0 each connection sends its next request as soon as the last
 * one is answered (maximum throughput; latency from the send).
 *
 *   build/loadgen --url http://127.0.0.1:8080/api/crm/communications
 *                 --body-file FILE [--header "Authorization: Bearer ..."]...
 *                 [--rate R] [--duration S | --requests N] [--connections C]
 *                 [--id-prefix P] [--clients N --client-prefix P] [--drain S]
 *                 [--threads T] [--ports P1,P2,...] [--timeline FILE]
 *
 * --ports spreads the connections over several servers on the URL's host
 * (connection i goes to port i mod N), for runs with several processes.
 * --timeline FILE writes one line per second of the run (lg_stats.h): the
 * latencies of the requests due in it, and how late they were sent, so a
 * stall of the server is told apart from the load generator's own backlog.
 *
 * The body file holds one request body per line; request k uses line
 * k mod lines (repeat a line to weight it), with every "$ID" replaced by
 * "<id-prefix>-<k>" (each request names a new client) and every "$CLIENT"
 * by "<client-prefix>-<k mod clients>" (a client created before, e.g. with
 * stored preferences: --clients N --client-prefix P). The results go to
 * stdout as "key value" lines (tools/bench/e2e.sh reads them); the body of
 * the first answer that is not 2xx goes to stderr.
 */
#include "lg_body.h"
#include "lg_stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define IN_MAX  16384
#define OUT_MAX 65536

enum conn_state { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

typedef struct {
    int fd;
    int port_ix; /* which of cfg.ports (--ports) it connects to */
    enum conn_state state;
    int64_t sched_ns; /* when the request in flight was due */
    int64_t sent_ns;  /* when it was handed to the connection */
    int64_t retry_ns; /* C_DOWN: reconnect from then on */
    size_t out_len, out_off;
    size_t in_len;  /* bytes of the answer kept in in[] */
    size_t hdr_len; /* 0 until the header block is complete */
    long body_left; /* body bytes still expected once hdr_len is set */
    int status;
    bool close_after; /* the server said Connection: close */
    bool want_out;    /* registered for EPOLLOUT */
    char out[OUT_MAX];
    char in[IN_MAX + 1]; /* NUL-terminated for the header scan */
} conn_t;

static struct {
    struct sockaddr_in addr;
    char host[256], path[1024];
    char headers[8192];
    lg_body_t *bodies;
    size_t nbodies;
    const char *id_prefix, *client_prefix;
    long long clients;
    double rate, duration, drain;
    long long max_requests;
    int nconn, nthreads;
    int ports[16], nports; /* --ports; none: the URL's */
    const char *timeline;  /* --timeline FILE, or NULL */
} cfg;

typedef struct {
    long long scheduled, sent, ok, non2xx, errors, late;
    long long status[600];
    int64_t max_late_ns, last_ok_ns;
    lg_sample_t *smp; /* one per answer */
    size_t nsmp, capsmp;
} results_t;

/* Each thread has its own connections, schedule and results (merged at the
 * end): one thread's requests are k = i * threads + index. */
static _Thread_local results_t res;
static _Thread_local int ep;
static atomic_bool printed_error;
static pthread_barrier_t ready;
static int64_t t0, stop; /* set by main between the two barrier waits */

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

static void usage(void)
{
    die("usage: loadgen --url http://HOST:PORT/PATH --body-file FILE [--header 'K: V']... "
        "[--rate R (0 = max)] [--duration S | --requests N] [--connections C] "
        "[--id-prefix P] [--clients N --client-prefix P] [--drain S] [--threads T] "
        "[--ports P1,P2,...] [--timeline FILE]");
}

static void parse_url(const char *url)
{
    int port = 80;
    if (strncmp(url, "http://", 7) != 0)
        die("--url must start with http://");
    const char *h = url + 7, *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hlen = (size_t)((colon ? colon : end) - h);
    if (hlen == 0 || hlen >= sizeof(cfg.host))
        die("--url: bad host");
    memcpy(cfg.host, h, hlen);
    cfg.host[hlen] = '\0';
    if (colon)
        port = atoi(colon + 1);
    snprintf(cfg.path, sizeof(cfg.path), "%s", slash ? slash : "/");
    cfg.addr.sin_family = AF_INET;
    cfg.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, strcmp(cfg.host, "localhost") == 0 ? "127.0.0.1" : cfg.host,
                  &cfg.addr.sin_addr) != 1)
        die("--url: the host must be an IPv4 address");
}

/* Request number k into c->out. */
static void build_request(conn_t *c, long long k)
{
    const lg_body_t *b = &cfg.bodies[k % (long long)cfg.nbodies];
    char id[128], client[128];
    int idlen = snprintf(id, sizeof(id), "%s-%lld", cfg.id_prefix, k);
    int clen = snprintf(client, sizeof(client), "%s-%lld", cfg.client_prefix,
                        cfg.clients > 0 ? k % cfg.clients : 0);
    size_t blen = lg_body_len(b, (size_t)idlen, (size_t)clen);
    int h = snprintf(c->out, sizeof(c->out),
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     cfg.path, cfg.host, cfg.headers, blen);
    if (h < 0 || (size_t)h + blen > sizeof(c->out))
        die("a request is larger than 64 KiB");
    char *o = lg_body_write(b, c->out + h, id, (size_t)idlen, client, (size_t)clen);
    c->out_len = (size_t)(o - c->out);
    c->out_off = 0;
}

static void watch(conn_t *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, op, c->fd, &ev);
}

static void conn_down(conn_t *c, int64_t now)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_DOWN;
    c->retry_ns = now + 100 * 1000000LL;
}

static void conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->in_len = c->hdr_len = 0;
    c->want_out = false;
    struct sockaddr_in to = cfg.addr;
    if (cfg.nports > 0)
        to.sin_port = htons((uint16_t)cfg.ports[c->port_ix % cfg.nports]);
    if (connect(c->fd, (struct sockaddr *)&to, sizeof(to)) == 0) {
        c->state = C_IDLE;
        watch(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP);
    } else if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
        watch(c, EPOLL_CTL_ADD, EPOLLOUT);
    } else {
        res.errors++;
        conn_down(c, now_ns(CLOCK_MONOTONIC));
    }
}

static void record(conn_t *c, int64_t now)
{
    if (res.nsmp == res.capsmp) {
        res.capsmp = res.capsmp ? res.capsmp * 2 : 65536;
        res.smp = realloc(res.smp, res.capsmp * sizeof(lg_sample_t));
        if (res.smp == NULL)
            die("out of memory");
    }
    int64_t lat = (now - c->sched_ns) / 1000, ans = (now - c->sent_ns) / 1000;
    res.smp[res.nsmp++] = (lg_sample_t){
        .sec = (uint32_t)((c->sched_ns - t0) / 1000000000),
        .lat_us = (uint32_t)(lat > UINT32_MAX ? UINT32_MAX : lat),
        .ans_us = (uint32_t)(ans > lat ? lat
                             : ans < 0 ? 0
                                       : ans),
    };
    if (c->status >= 200 && c->status < 300) {
        res.ok++;
        res.last_ok_ns = now;
    } else {
        res.non2xx++;
        if (!atomic_exchange(&printed_error, true)) {
            size_t blen = c->in_len > c->hdr_len ? c->in_len - c->hdr_len : 0;
            fprintf(stderr, "loadgen: first answer not 2xx: %d %.*s\n", c->status,
                    (int)(blen > 400 ? 400 : blen), c->in + c->hdr_len);
        }
    }
    if (c->status > 0 && c->status < 600)
        res.status[c->status]++;
}

/* Parses what arrived; returns 1 when the answer is complete, 0 when more
 * is needed, -1 on a malformed answer. */
static int parse(conn_t *c)
{
    if (c->hdr_len == 0) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL)
            return c->in_len >= IN_MAX ? -1 : 0;
        c->hdr_len = (size_t)(end - c->in) + 4;
        if (c->in_len < 12 || strncmp(c->in, "HTTP/1.", 7) != 0)
            return -1;
        c->status = atoi(c->in + 9);
        c->body_left = -1;
        c->close_after = false;
        for (char *l = strstr(c->in, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
            if (strncasecmp(l, "Content-Length:", 15) == 0)
                c->body_left = atol(l + 15);
            else if (strncasecmp(l, "Transfer-Encoding:", 18) == 0)
                return -1; /* chunked answers: not needed for these servers */
            else if (strncasecmp(l, "Connection:", 11) == 0 && strcasestr(l, "close") &&
                     strcasestr(l, "close") < strstr(l, "\r\n"))
                c->close_after = true;
        }
        if (c->body_left < 0)
            return -1;
        c->body_left -= (long)(c->in_len - c->hdr_len);
    }
    return c->body_left <= 0 ? 1 : 0;
}

static void on_readable(conn_t *c, int64_t now)
{
    for (;;) {
        char scratch[16384];
        char *dst = c->in_len < IN_MAX ? c->in + c->in_len : scratch;
        size_t room = c->in_len < IN_MAX ? IN_MAX - c->in_len : sizeof(scratch);
        ssize_t r = recv(c->fd, dst, room, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) { /* closed or failed: the answer in flight is lost */
            if (c->state == C_BUSY)
                res.errors++;
            conn_down(c, now);
            return;
        }
        if (dst == scratch) { /* a long body: counted, not kept */
            c->body_left -= r;
        } else {
            c->in_len += (size_t)r;
            c->in[c->in_len] = '\0';
            if (c->hdr_len)
                c->body_left -= r;
        }
        if (c->state != C_BUSY) { /* bytes nobody asked for */
            conn_down(c, now);
            return;
        }
        int p = parse(c);
        if (p < 0) {
            res.errors++;
            fprintf(stderr, "loadgen: malformed or chunked answer; closing the connection\n");
            conn_down(c, now);
            return;
        }
        if (p == 1) {
            record(c, now_ns(CLOCK_MONOTONIC));
            c->in_len = c->hdr_len = 0;
            if (c->close_after) {
                conn_down(c, now);
                c->retry_ns = now;
                return;
            }
            c->state = C_IDLE;
            return;
        }
    }
}

static void try_send(conn_t *c, int64_t now)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out)
                watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
            c->want_out = true;
            return;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            res.errors++;
            conn_down(c, now);
            return;
        }
        c->out_off += (size_t)w;
    }
    if (c->want_out)
        watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
    c->want_out = false;
}

typedef struct {
    int index, nconn;
    results_t res;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    const long long T = cfg.nthreads, J = w->index;
    ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    conn_t *conns = calloc((size_t)w->nconn, sizeof(conn_t));
    if (conns == NULL)
        die("out of memory");
    for (int i = 0; i < w->nconn; i++) {
        conns[i].fd = -1;
        conns[i].port_ix = (int)J + i * (int)T; /* spread across threads too */
        conn_open(&conns[i]);
    }
    /* Connections first, then the clock starts. */
    for (int64_t until = now_ns(CLOCK_MONOTONIC) + 5000000000LL;;) {
        int up = 0;
        struct epoll_event evs[64];
        for (int i = 0; i < w->nconn; i++)
            up += conns[i].state == C_IDLE;
        if (up == w->nconn || now_ns(CLOCK_MONOTONIC) > until)
            break;
        int n = epoll_wait(ep, evs, 64, 50);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL || c->state != C_CONNECTING)
                continue;
            int e = 0;
            socklen_t el = sizeof(e);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (e != 0) {
                fprintf(stderr, "loadgen: connect: %s\n", strerror(e));
                exit(1);
            }
            c->state = C_IDLE;
            watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
        }
    }

    pthread_barrier_wait(&ready); /* connected */
    pthread_barrier_wait(&ready); /* t0 is set */
    const double interval = cfg.rate > 0 ? 1e9 / cfg.rate : 0;
    int64_t *queue = NULL; /* scheduled times not yet sent (open loop) */
    size_t qhead = 0, qlen = 0, qcap = 0;
    int64_t drain_until = 0;
    int busy = 0;
    for (;;) {
        int64_t now = now_ns(CLOCK_MONOTONIC);
        bool schedule_open =
            now < stop && (cfg.max_requests < 0 || res.scheduled * T + J < cfg.max_requests);
        /* open loop: every request due by now joins the queue */
        while (interval > 0 && schedule_open) {
            int64_t due = t0 + (int64_t)((double)(res.scheduled * T + J) * interval);
            if (due > now || due >= stop ||
                (cfg.max_requests >= 0 && res.scheduled * T + J >= cfg.max_requests))
                break;
            if (qlen == qcap) {
                size_t ncap = qcap ? qcap * 2 : 4096;
                int64_t *nq = malloc(ncap * sizeof(int64_t));
                if (nq == NULL)
                    die("out of memory");
                for (size_t i = 0; i < qlen; i++)
                    nq[i] = queue[(qhead + i) % qcap];
                free(queue);
                queue = nq;
                qcap = ncap;
                qhead = 0;
            }
            queue[(qhead + qlen++) % qcap] = due;
            res.scheduled++;
        }
        /* hand requests to idle connections; bring dead ones back */
        busy = 0;
        for (int i = 0; i < w->nconn; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_DOWN && now >= c->retry_ns && (schedule_open || qlen > 0))
                conn_open(c);
            if (c->state == C_IDLE) {
                int64_t sched;
                if (interval > 0 && qlen > 0) {
                    sched = queue[qhead];
                    qhead = (qhead + 1) % qcap;
                    qlen--;
                    if (now - sched > 1000000) {
                        res.late++;
                        if (now - sched > res.max_late_ns)
                            res.max_late_ns = now - sched;
                    }
                } else if (interval == 0 && now < stop &&
                           (cfg.max_requests < 0 || res.scheduled * T + J < cfg.max_requests)) {
                    sched = now;
                    res.scheduled++;
                } else {
                    continue;
                }
                build_request(c, res.sent++ * T + J);
                c->sched_ns = sched;
                c->sent_ns = now;
                c->state = C_BUSY;
                try_send(c, now);
            }
            busy += c->state == C_BUSY;
        }
        if (!schedule_open && qlen == 0) {
            if (busy == 0)
                break;
            if (drain_until == 0)
                drain_until = now + (int64_t)(cfg.drain * 1e9);
            if (now > drain_until) {
                res.errors += busy; /* never answered */
                fprintf(stderr, "loadgen: %d answers still missing after --drain %.0f s\n", busy,
                        cfg.drain);
                break;
            }
        }
        /* sleep until the next scheduled request, an answer, or 100 ms */
        int64_t wake = now + 100000000LL;
        if (interval > 0 && schedule_open) {
            int64_t due = t0 + (int64_t)((double)(res.scheduled * T + J) * interval);
            if (due < wake)
                wake = due;
        }
        struct itimerspec its = {
            .it_value = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000}};
        if (wake <= now)
            its.it_value = (struct timespec){.tv_sec = 0, .tv_nsec = 1};
        timerfd_settime(tfd, wake <= now ? 0 : TFD_TIMER_ABSTIME, &its, NULL);
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, -1);
        now = now_ns(CLOCK_MONOTONIC);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                uint64_t x;
                if (read(tfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
                    die("timerfd read failed");
                continue;
            }
            if (c->state == C_CONNECTING) {
                int e = 0;
                socklen_t el = sizeof(e);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e != 0) {
                    res.errors++;
                    conn_down(c, now);
                } else {
                    c->state = C_IDLE;
                    watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
                }
                continue;
            }
            if (c->state == C_BUSY && (evs[i].events & EPOLLOUT) && c->out_off < c->out_len)
                try_send(c, now);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                on_readable(c, now);
        }
    }
    free(queue);
    for (int i = 0; i < w->nconn; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(conns);
    close(tfd);
    close(ep);
    w->res = res;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *body_file = NULL;
    cfg.nconn = 64;
    cfg.nthreads = 2;
    cfg.rate = 1000;
    cfg.drain = 30;
    cfg.max_requests = -1;
    static char prefix[64];
    snprintf(prefix, sizeof(prefix), "lg%d", (int)getpid());
    cfg.id_prefix = prefix;
    cfg.client_prefix = "client";
    size_t hoff = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *k = argv[i], *v = argv[++i];
        if (strcmp(k, "--url") == 0)
            url = v;
        else if (strcmp(k, "--body-file") == 0)
            body_file = v;
        else if (strcmp(k, "--header") == 0) {
            int n = snprintf(cfg.headers + hoff, sizeof(cfg.headers) - hoff, "%s\r\n", v);
            if (n < 0 || (size_t)n >= sizeof(cfg.headers) - hoff)
                die("--header: too long");
            hoff += (size_t)n;
        } else if (strcmp(k, "--rate") == 0)
            cfg.rate = atof(v);
        else if (strcmp(k, "--duration") == 0)
            cfg.duration = atof(v);
        else if (strcmp(k, "--requests") == 0)
            cfg.max_requests = atoll(v);
        else if (strcmp(k, "--connections") == 0)
            cfg.nconn = atoi(v);
        else if (strcmp(k, "--id-prefix") == 0)
            cfg.id_prefix = v;
        else if (strcmp(k, "--clients") == 0)
            cfg.clients = atoll(v);
        else if (strcmp(k, "--client-prefix") == 0)
            cfg.client_prefix = v;
        else if (strcmp(k, "--threads") == 0)
            cfg.nthreads = atoi(v);
        else if (strcmp(k, "--timeline") == 0)
            cfg.timeline = v;
        else if (strcmp(k, "--drain") == 0)
            cfg.drain = atof(v);
        else if (strcmp(k, "--ports") == 0) {
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int port = atoi(t);
                if (port < 1 || port > 65535 || cfg.nports == 16)
                    die("--ports: up to 16 ports from 1 to 65535, comma-separated");
                cfg.ports[cfg.nports++] = port;
            }
            free(copy);
        } else
            usage();
    }
    if (url == NULL || body_file == NULL || cfg.nthreads < 1 || cfg.nconn < cfg.nthreads ||
        cfg.rate < 0 || (cfg.duration <= 0 && cfg.max_requests < 0))
        usage();
    parse_url(url);
    cfg.bodies = lg_bodies_load(body_file, cfg.clients, &cfg.nbodies);

    worker_t *ws = calloc((size_t)cfg.nthreads, sizeof(worker_t));
    pthread_t *tids = calloc((size_t)cfg.nthreads, sizeof(pthread_t));
    if (ws == NULL || tids == NULL)
        die("out of memory");
    pthread_barrier_init(&ready, NULL, (unsigned)cfg.nthreads + 1);
    for (int j = 0; j < cfg.nthreads; j++) {
        ws[j].index = j;
        ws[j].nconn = cfg.nconn / cfg.nthreads + (j < cfg.nconn % cfg.nthreads);
        pthread_create(&tids[j], NULL, worker, &ws[j]);
    }
    pthread_barrier_wait(&ready); /* every connection is up: the clock starts */
    t0 = now_ns(CLOCK_MONOTONIC);
    const int64_t t0_real = now_ns(CLOCK_REALTIME);
    stop = cfg.duration > 0 ? t0 + (int64_t)(cfg.duration * 1e9) : INT64_MAX;
    pthread_barrier_wait(&ready);
    results_t all = {0};
    for (int j = 0; j < cfg.nthreads; j++) {
        pthread_join(tids[j], NULL);
        results_t *r = &ws[j].res;
        all.scheduled += r->scheduled;
        all.sent += r->sent;
        all.ok += r->ok;
        all.non2xx += r->non2xx;
        all.errors += r->errors;
        all.late += r->late;
        for (int s = 0; s < 600; s++)
            all.status[s] += r->status[s];
        if (r->max_late_ns > all.max_late_ns)
            all.max_late_ns = r->max_late_ns;
        if (r->last_ok_ns > all.last_ok_ns)
            all.last_ok_ns = r->last_ok_ns;
        all.smp = realloc(all.smp, (all.nsmp + r->nsmp + 1) * sizeof(lg_sample_t));
        if (all.smp == NULL)
            die("out of memory");
        if (r->nsmp)
            memcpy(all.smp + all.nsmp, r->smp, r->nsmp * sizeof(lg_sample_t));
        all.nsmp += r->nsmp;
        free(r->smp);
    }
    int64_t t_end = now_ns(CLOCK_MONOTONIC);

    size_t n = all.nsmp;
    uint32_t *lat = malloc((n + 1) * sizeof(uint32_t)), *ans = malloc((n + 1) * sizeof(uint32_t));
    if (lat == NULL || ans == NULL)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        lat[i] = all.smp[i].lat_us;
        ans[i] = all.smp[i].ans_us;
    }
    lg_sort_u32(lat, n);
    lg_sort_u32(ans, n);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_ms = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 +
                    ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
    double ok_window = all.last_ok_ns > 0 ? (double)(all.last_ok_ns - t0) / 1e9 : 0;
    printf("mode %s\n", cfg.rate > 0 ? "open-loop" : "max");
    printf("rate_target %.1f\n", cfg.rate);
    printf("connections %d\nthreads %d\n", cfg.nconn, cfg.nthreads);
    printf("start_unix_ns %lld\n", (long long)t0_real);
    printf("end_unix_ns %lld\n", (long long)(t0_real + (t_end - t0)));
    printf("last_ok_unix_ns %lld\n",
           (long long)(all.last_ok_ns > 0 ? t0_real + (all.last_ok_ns - t0) : 0));
    printf("scheduled %lld\nsent %lld\nok %lld\nnon2xx %lld\nerrors %lld\n", all.scheduled,
           all.sent, all.ok, all.non2xx, all.errors);
    for (int s = 100; s < 600; s++)
        if (all.status[s])
            printf("status_%d %lld\n", s, all.status[s]);
    printf("elapsed_s %.3f\n", (double)(t_end - t0) / 1e9);
    printf("accepted_per_s %.1f\n", ok_window > 0 ? (double)all.ok / ok_window : 0);
    printf("latency_ms_p50 %.2f\nlatency_ms_p90 %.2f\nlatency_ms_p99 %.2f\n", lg_pct_ms(lat, n, 50),
           lg_pct_ms(lat, n, 90), lg_pct_ms(lat, n, 99));
    printf("latency_ms_p999 %.2f\nlatency_ms_max %.2f\n", lg_pct_ms(lat, n, 99.9),
           lg_pct_ms(lat, n, 100));
    /* from the send: the server's part, without the load generator's lag */
    printf("answer_ms_p50 %.2f\nanswer_ms_p99 %.2f\nanswer_ms_max %.2f\n", lg_pct_ms(ans, n, 50),
           lg_pct_ms(ans, n, 99), lg_pct_ms(ans, n, 100));
    printf("late_sends %lld\nmax_late_ms %.2f\n", all.late, (double)all.max_late_ns / 1e6);
    printf("cpu_ms %.1f\n", cpu_ms);
    if (cfg.timeline && lg_timeline_write(cfg.timeline, all.smp, n) != 0)
        fprintf(stderr, "loadgen: --timeline %s: %s\n", cfg.timeline, strerror(errno));
    pthread_barrier_destroy(&ready);
    free(lat);
    free(ans);
    free(all.smp);
    free(tids);
    free(ws);
    return 0;
}
