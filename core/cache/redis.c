/* redis.c - pooled hiredis connections (see redis.h). */
#include "cache/redis.h"
#include "base/buf.h"
#include "base/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RD_MAX_CONNS 32

struct rd_client {
    char host[256];
    int port;
    int db;
    char password[256];
    struct timeval timeout;
    pthread_mutex_t mu;
    redisContext *idle[RD_MAX_CONNS];
    int nidle;
    int size;
    atomic_bool up;
    atomic_llong retry_after_ms; /* monotonic ms before which no reconnect is tried */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_url(rd_client_t *rd, const char *url, hd_err_t *err)
{
    if (strncmp(url, "redis://", 8) != 0)
        return hd_err_set(err, "redis url: expected redis://host:port/db");
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(rd->password, sizeof(rd->password), "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen >= sizeof(rd->host))
        return hd_err_set(err, "redis url: missing host");
    memcpy(rd->host, p, hlen);
    rd->host[hlen] = '\0';
    p += hlen;
    rd->port = 6379;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return hd_err_set(err, "redis url: bad port");
        rd->port = (int)port;
        p = end;
    }
    rd->db = 0;
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (*end || db < 0 || db > 1000)
            return hd_err_set(err, "redis url: bad database number");
        rd->db = (int)db;
    }
    return 0;
}

rd_client_t *rd_new(const char *url, int timeout_ms, int size, hd_err_t *err)
{
    rd_client_t *rd = xcalloc(1, sizeof(*rd));
    if (parse_url(rd, url, err) != 0) {
        free(rd);
        return NULL;
    }
    rd->timeout.tv_sec = timeout_ms / 1000;
    rd->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    rd->size = size < 1 ? 1 : (size > RD_MAX_CONNS ? RD_MAX_CONNS : size);
    pthread_mutex_init(&rd->mu, NULL);
    atomic_init(&rd->up, false);
    atomic_init(&rd->retry_after_ms, 0);
    return rd;
}

void rd_free(rd_client_t *rd)
{
    if (rd == NULL)
        return;
    for (int i = 0; i < rd->nidle; i++)
        redisFree(rd->idle[i]);
    pthread_mutex_destroy(&rd->mu);
    memset(rd->password, 0, sizeof(rd->password));
    free(rd);
}

static void mark_down(rd_client_t *rd, const char *why)
{
    if (atomic_exchange(&rd->up, false))
        log_error("redis is unreachable; serving without it", "reason", why);
    atomic_store(&rd->retry_after_ms, now_ms() + 1000);
}

static redisContext *open_conn(rd_client_t *rd, hd_err_t *err)
{
    if (now_ms() < atomic_load(&rd->retry_after_ms)) {
        hd_err_set(err, "redis: down (next reconnect attempt within 1 s)");
        return NULL;
    }
    redisContext *c = redisConnectWithTimeout(rd->host, rd->port, rd->timeout);
    if (c == NULL || c->err) {
        hd_err_set(err, "redis: %s", c ? c->errstr : "out of memory");
        mark_down(rd, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, rd->timeout);
    redisReply *r = NULL;
    if (rd->password[0]) {
        r = redisCommand(c, "AUTH %s", rd->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            hd_err_set(err, "redis: authentication failed");
            goto bad;
        }
        freeReplyObject(r);
    }
    if (rd->db) {
        r = redisCommand(c, "SELECT %d", rd->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            hd_err_set(err, "redis: cannot select database %d", rd->db);
            goto bad;
        }
        freeReplyObject(r);
    }
    return c;
bad:
    if (r)
        freeReplyObject(r);
    mark_down(rd, err ? err->msg : "setup failed");
    redisFree(c);
    return NULL;
}

static void flush_idle(rd_client_t *rd)
{
    pthread_mutex_lock(&rd->mu);
    while (rd->nidle > 0)
        redisFree(rd->idle[--rd->nidle]);
    pthread_mutex_unlock(&rd->mu);
}

redisReply *rd_command_argv(rd_client_t *rd, int argc, const char **argv, hd_err_t *err)
{
    redisContext *c = NULL;
    pthread_mutex_lock(&rd->mu);
    if (rd->nidle > 0)
        c = rd->idle[--rd->nidle];
    pthread_mutex_unlock(&rd->mu);
    bool pooled = c != NULL;
    if (c == NULL && (c = open_conn(rd, err)) == NULL)
        return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL && pooled) {
        /* A pooled connection that fails is most likely stale (Redis
         * restarted): its siblings are too. Drop them all and try once on
         * a fresh connection before declaring Redis down. */
        redisFree(c);
        flush_idle(rd);
        if ((c = open_conn(rd, err)) == NULL)
            return NULL;
        r = redisCommandArgv(c, argc, argv, NULL);
    }
    if (r == NULL) {
        hd_err_set(err, "redis: %s", c->errstr[0] ? c->errstr : "connection lost");
        mark_down(rd, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (!atomic_exchange(&rd->up, true))
        log_info("redis is reachable");
    pthread_mutex_lock(&rd->mu);
    if (rd->nidle < rd->size) {
        rd->idle[rd->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&rd->mu);
    redisFree(c);
    return r;
}

int rd_ping(rd_client_t *rd, hd_err_t *err)
{
    const char *argv[] = {"PING"};
    redisReply *r = rd_command_argv(rd, 1, argv, err);
    if (r == NULL)
        return -1;
    int ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    return ok ? 0 : hd_err_set(err, "redis: unexpected PING reply");
}

bool rd_is_up(const rd_client_t *rd)
{
    return atomic_load(&((rd_client_t *)rd)->up);
}
