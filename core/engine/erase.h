/*
 * erase.h - GDPR erasure of one client (Art. 17, docs/compliance.md):
 * PostgreSQL (store/repo_erase.h), then the Redis copy of the preferences.
 */
#ifndef HERALD_ENGINE_ERASE_H
#define HERALD_ENGINE_ERASE_H

#include "engine/app.h"
#include "store/repo_erase.h"

/* Erases client_id for actor (the token's subject, written to the audit
 * log) and drops its cached preferences. ERASE_OK with *out;
 * ERASE_NOT_FOUND for an unknown client, one already erased, or an id that
 * cannot be a client's (1 to 200 bytes); -1 with err when the database
 * cannot answer (nothing changed). */
int client_erase(app_t *app, const char *client_id, const char *actor, erase_counts_t *out,
                 hd_err_t *err);

#endif
