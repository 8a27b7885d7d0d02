/*
 * redis.h - hiredis connections with timeouts and reconnect.
 *
 * A small pool of synchronous connections. When Redis is down, callers get
 * an error quickly: after a failed connect, new attempts wait one second so
 * a dead server does not add a connect timeout to every request. rd_is_up()
 * is the last known state, for health and metrics.
 */
#ifndef HERALD_CACHE_REDIS_H
#define HERALD_CACHE_REDIS_H

#include "base/err.h"

#include <hiredis.h>
#include <stdbool.h>

typedef struct rd_client rd_client_t;

/* Parses url (redis://[:password@]host[:port][/db]) and prepares a pool of
 * size connections, opened lazily. NULL with err on a malformed URL. */
rd_client_t *rd_new(const char *url, int timeout_ms, int size, hd_err_t *err);
void rd_free(rd_client_t *rd);

/* Runs one command (hiredis argv form). Returns the reply (caller
 * freeReplyObject()s; REDIS_REPLY_ERROR replies are returned too) or NULL
 * with err when Redis cannot be reached. */
redisReply *rd_command_argv(rd_client_t *rd, int argc, const char **argv, hd_err_t *err);

/* PING: 0 when Redis answers; updates the up/down state. */
int rd_ping(rd_client_t *rd, hd_err_t *err);

/* Last known state: true after a successful command, false after a failure. */
bool rd_is_up(const rd_client_t *rd);

#endif
