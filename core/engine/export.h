/*
 * export.h - a client's data as one JSON document, produced piece by piece
 * (GDPR Art. 15 and 20, docs/compliance.md): the head of
 * store/repo_export.h, then "communications" read EXPORT_PAGE messages at a
 * time, so memory holds one page whatever the client's history.
 */
#ifndef HERALD_ENGINE_EXPORT_H
#define HERALD_ENGINE_EXPORT_H

#include "engine/app.h"
#include "store/repo_export.h"

#include <sys/types.h>

/* Messages read from PostgreSQL at a time. */
#define EXPORT_PAGE 200

typedef struct client_export client_export_t;

/* Reads the head. EXPORT_OK with *out, EXPORT_NOT_FOUND (unknown client,
 * or an id that cannot be one), -1 with err. */
int client_export_open(app_t *app, const char *client_id, client_export_t **out, hd_err_t *err);

/* Copies up to max next bytes of the document into buf: how many, 0 at its
 * end, -1 when a page cannot be read (logged; the document is cut short and
 * is not valid JSON, so a reader cannot take it for complete). */
ssize_t client_export_read(client_export_t *ex, char *buf, size_t max);

void client_export_free(client_export_t *ex);

#endif
