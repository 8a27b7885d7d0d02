/*
 * repo_erase.h - GDPR erasure of one client in PostgreSQL (Art. 17,
 * docs/compliance.md). engine/erase.h adds the Redis cache.
 */
#ifndef HERALD_STORE_REPO_ERASE_H
#define HERALD_STORE_REPO_ERASE_H

#include "base/err.h"
#include "store/pg.h"

typedef struct erase_counts {
    long communications; /* messages whose personal data was erased */
    long cancelled;      /* of them, waiting ones now cancelled */
    long suppressed;     /* suppression entries written (blind indexes) */
} erase_counts_t;

enum { ERASE_OK = 0, ERASE_NOT_FOUND = 1 };

/* In one transaction: deletes the client's preferences row (name, email,
 * phone, consent), first copying the blind indexes of its email and phone
 * into crm_suppressions (reason opt_out, source erasure) so the addresses
 * are never used again; cancels the client's waiting messages and deletes
 * the jobs nobody holds; empties every message's context, recipient
 * override and tracked links and marks it erased_at; empties the text and
 * details of their delivery log rows (they may quote an address); strips
 * attachments from a job a worker holds; writes an audit row client.erase
 * by actor. Message rows, statuses and timestamps stay (analytics).
 * ERASE_OK with *out, ERASE_NOT_FOUND when there is no preferences row and
 * no message not yet erased, -1 with err. */
int erase_client(pg_pool_t *db, const char *client_id, const char *actor, erase_counts_t *out,
                 hd_err_t *err);

#endif
