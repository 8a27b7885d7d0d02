/*
 * conn_guard.h - what one slow or idle client may hold of the HTTP server
 * (issue 17, item 4): the descriptor budget, the deadline for a request's
 * headers, and the libmicrohttpd options for the connection caps.
 *
 * libmicrohttpd closes a connection only when it has been silent for the
 * idle timeout; a client that dribbles a header byte a second is never
 * silent. The guard gives a new connection http.header_timeout for its
 * headers, and a kept-alive one http.idle_timeout for its next request to
 * begin, then http.header_timeout from when it began; a sweeper thread shuts
 * down the socket of one past its deadline (libmicrohttpd then reads
 * end-of-file and closes it as usual), unless whole headers wait unread in
 * its socket: then its HTTP thread is busy, and the client is not slow.
 * (Cutting a kept-alive connection at the header timeout raced with clients
 * reusing it: a request read just as its socket was shut down was accepted
 * and its answer lost; the 30-minute soak of docs/benchmarks.md saw it.)
 */
#ifndef HERALD_HTTP_CONN_GUARD_H
#define HERALD_HTTP_CONN_GUARD_H

#include "base/config.h"

#include <stdarg.h>
#include <microhttpd.h>

typedef struct http_guard http_guard_t;

/* Raises the soft descriptor limit to the hard one and returns how many
 * connections the server may hold: cfg's http.max_connections, lowered
 * (with a warning) to what the descriptors allow beside the pools. */
unsigned http_guard_fd_budget(const cfg_t *cfg);

/* Starts the sweeper (header_timeout_s from cfg); NULL when the thread
 * cannot start. */
http_guard_t *http_guard_start(const cfg_t *cfg);
void http_guard_stop(http_guard_t *g);

/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/* A request's headers are in (its first call) / its answer is done (the
 * connection waits for the next request's headers). */
void http_guard_headers_in(struct MHD_Connection *conn);
void http_guard_request_done(http_guard_t *g, struct MHD_Connection *conn);

/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's messages as log lines, the
 * same message at most once a second (a flood of refused connections must
 * not flood the log). */
void http_guard_mhd_log(void *cls, const char *fmt, va_list ap);

#endif
