/*
 * smtp_sink.c - a fast SMTP server for benchmarks: it accepts every message,
 * counts it and throws it away. One thread, epoll, non-blocking sockets, any
 * number of concurrent sessions. It speaks what Herald's SMTP driver
 * (libcurl: EHLO, MAIL, RCPT, DATA, RSET, QUIT) and nodemailer send, with
 * PIPELINING (commands may arrive several to a packet); no STARTTLS, no AUTH,
 * no CHUNKING. tests/fakes/smtp_sink.py is the sink that keeps messages; this
 * one exists because that one costs more CPU per message than the engine.
 *
 *   build/smtp_sink [--port N] [--host ADDR] [--ready-file FILE] [--stats-file FILE]
 *
 * --port 0 (the default) binds a free port; --ready-file gets the port and a
 * newline once listening (written atomically). The stats file is rewritten
 * (atomically) at most every 100 ms while messages arrive, on SIGUSR1, and on
 * exit; it holds one "key value" line each:
 *   messages N      messages accepted (end of DATA answered 250)
 *   sessions N      connections accepted
 *   bytes N         message bytes received (between DATA and the final dot)
 *   first_ns T      CLOCK_REALTIME of the first message's final dot (0: none)
 *   last_ns T       the same for the last message
 * SIGUSR2 zeroes the counters (and rewrites the file): one sink serves
 * several runs. SIGTERM / SIGINT write the file and exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096 /* a command line longer than this ends the session */
#define OUT_MAX      8192

typedef struct {
    int fd;
    bool data;     /* inside DATA: looking for CRLF . CRLF */
    char tail[4];  /* the last bytes of data seen, for a terminator split across reads */
    size_t in_len; /* command bytes not yet ending in LF */
    char in[LINE_MAX_LEN];
    size_t out_len, out_off;
    char out[OUT_MAX];
    bool closing;  /* close once out is flushed */
    bool want_out; /* registered for EPOLLOUT: answers wait for the socket */
} conn_t;

typedef struct {
    uint64_t messages, sessions, bytes;
    int64_t first_ns, last_ns;
} stats_t;

static stats_t st;
static const char *stats_file;
static int64_t last_write_ns;
static uint64_t written_messages = UINT64_MAX;

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_file_atomic(const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "smtp_sink: %s: %s\n", tmp, strerror(errno));
        return;
    }
    fputs(text, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "smtp_sink: %s: %s\n", path, strerror(errno));
}

static void write_stats(void)
{
    if (stats_file == NULL)
        return;
    char text[512];
    snprintf(text, sizeof(text),
             "messages %llu\nsessions %llu\nbytes %llu\nfirst_ns %lld\nlast_ns %lld\n",
             (unsigned long long)st.messages, (unsigned long long)st.sessions,
             (unsigned long long)st.bytes, (long long)st.first_ns, (long long)st.last_ns);
    write_file_atomic(stats_file, text);
    written_messages = st.messages;
    last_write_ns = now_ns(CLOCK_MONOTONIC);
}

static void reply(conn_t *c, const char *text)
{
    size_t n = strlen(text);
    if (c->out_len + n > sizeof(c->out)) { /* a client that never reads its answers */
        c->closing = true;
        return;
    }
    memcpy(c->out + c->out_len, text, n);
    c->out_len += n;
}

/* One command line, CRLF (or LF) removed. */
static void command(conn_t *c, char *line)
{
    if (strncasecmp(line, "EHLO", 4) == 0)
        reply(c, "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n"
                 "250 ENHANCEDSTATUSCODES\r\n");
    else if (strncasecmp(line, "HELO", 4) == 0)
        reply(c, "250 sink\r\n");
    else if (strncasecmp(line, "MAIL", 4) == 0)
        reply(c, "250 2.1.0 Ok\r\n");
    else if (strncasecmp(line, "RCPT", 4) == 0)
        reply(c, "250 2.1.5 Ok\r\n");
    else if (strncasecmp(line, "DATA", 4) == 0) {
        reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
        c->data = true;
        memcpy(c->tail, "\0\0\r\n", 4); /* the CRLF of DATA: "." alone ends at once */
    } else if (strncasecmp(line, "RSET", 4) == 0 || strncasecmp(line, "NOOP", 4) == 0)
        reply(c, "250 2.0.0 Ok\r\n");
    else if (strncasecmp(line, "QUIT", 4) == 0) {
        reply(c, "221 2.0.0 Bye\r\n");
        c->closing = true;
    } else
        reply(c, "502 5.5.2 Command not implemented\r\n");
}

static void message_done(conn_t *c)
{
    c->data = false;
    st.messages++;
    int64_t t = now_ns(CLOCK_REALTIME);
    if (st.first_ns == 0)
        st.first_ns = t;
    st.last_ns = t;
    reply(c, "250 2.0.0 Ok: queued\r\n");
}

/* Message bytes: returns how many of n were consumed (up to and including
 * the terminating CRLF.CRLF, after which command mode resumes). The last
 * four bytes seen are kept in tail, so a terminator split across reads is
 * found too. */
static size_t data_bytes(conn_t *c, const char *p, size_t n)
{
    static const char end[] = "\r\n.\r\n";
    /* a terminator that starts in tail: its last k bytes come first in p */
    for (size_t k = 1; k <= 4 && k <= n; k++)
        if (memcmp(c->tail + k - 1, end, 5 - k) == 0 && memcmp(p, end + 5 - k, k) == 0) {
            st.bytes += k;
            message_done(c);
            return k;
        }
    const char *hit = memmem(p, n, end, 5);
    if (hit) {
        size_t used = (size_t)(hit - p) + 5;
        st.bytes += used;
        message_done(c);
        return used;
    }
    st.bytes += n;
    if (n >= 4) {
        memcpy(c->tail, p + n - 4, 4);
    } else {
        memmove(c->tail, c->tail + n, 4 - n);
        memcpy(c->tail + 4 - n, p, n);
    }
    return n;
}

static void input(conn_t *c, const char *p, size_t n)
{
    while (n > 0 && !c->closing) {
        if (c->data) {
            size_t used = data_bytes(c, p, n);
            p += used;
            n -= used;
            continue;
        }
        const char *lf = memchr(p, '\n', n);
        size_t take = lf ? (size_t)(lf - p) + 1 : n;
        if (c->in_len + take >= sizeof(c->in)) {
            reply(c, "500 5.5.6 Line too long\r\n");
            c->closing = true;
            return;
        }
        memcpy(c->in + c->in_len, p, take);
        c->in_len += take;
        p += take;
        n -= take;
        if (lf == NULL)
            return;
        c->in[c->in_len] = '\0';
        c->in[strcspn(c->in, "\r\n")] = '\0';
        c->in_len = 0;
        command(c, c->in);
    }
}

/* Returns -1 when the connection is done (closed or failed). */
static int flush(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_len = c->out_off = 0;
    return c->closing ? -1 : 0;
}

static int listen_on(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "smtp_sink: --host wants an IPv4 address, got %s\n", host);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4096) != 0) {
        fprintf(stderr, "smtp_sink: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: smtp_sink [--port N] [--host ADDR] [--ready-file FILE] "
                    "[--stats-file FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *ready = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (strcmp(argv[i], "--ready-file") == 0)
            ready = argv[++i];
        else if (strcmp(argv[i], "--stats-file") == 0)
            stats_file = argv[++i];
        else
            usage();
    }

    int lfd = listen_on(host, port);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static int sig_tag;
    ev.data.ptr = &sig_tag;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    write_stats();
    if (ready) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        getsockname(lfd, (struct sockaddr *)&a, &len);
        char text[32];
        snprintf(text, sizeof(text), "%d\n", ntohs(a.sin_port));
        write_file_atomic(ready, text);
    }

    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) {
            perror("smtp_sink: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == NULL) { /* the listening socket: take every waiting connection */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    conn_t *c = calloc(1, sizeof(*c));
                    if (c == NULL) {
                        close(fd);
                        continue;
                    }
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    c->fd = fd;
                    st.sessions++;
                    reply(c, "220 sink ESMTP\r\n");
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                    if (flush(c) != 0) {
                        close(fd);
                        free(c);
                    }
                }
                continue;
            }
            if (tag == &sig_tag) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGUSR2)
                        memset(&st, 0, sizeof(st));
                    write_stats();
                    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        return 0;
                }
                continue;
            }
            conn_t *c = tag;
            bool done = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0;
            if (!done && (evs[i].events & (EPOLLIN | EPOLLRDHUP))) {
                for (;;) {
                    ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                    if (r > 0) {
                        input(c, buf, (size_t)r);
                        if (c->closing)
                            break;
                        continue;
                    }
                    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                        done = true;
                    break;
                }
            }
            if (!done && flush(c) != 0)
                done = true;
            if (done) {
                close(c->fd); /* also leaves the epoll set */
                free(c);
                continue;
            }
            if (c->want_out != (c->out_len > 0)) {
                c->want_out = c->out_len > 0;
                struct epoll_event cev = {
                    .events = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0), .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
        }
        if (st.messages != written_messages &&
            now_ns(CLOCK_MONOTONIC) - last_write_ns >= 100 * 1000000LL)
            write_stats();
    }
}
