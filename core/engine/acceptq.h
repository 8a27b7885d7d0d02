/*
 * acceptq.h - group commit of acceptance. Concurrent requests that reach
 * the store while another batch is being committed wait for it, then go
 * together: one statement and one commit for all of them
 * (comms_create_many), each request still answered only once its own row
 * is durable. No timer: a batch is whatever arrived during the previous
 * commit, so a lone request goes at once (comms_create) and a busy server
 * commits many per round trip. A batch the database refuses as a whole is
 * retried message by message, so one bad row fails only its own request.
 */
#ifndef HERALD_ENGINE_ACCEPTQ_H
#define HERALD_ENGINE_ACCEPTQ_H

#include "base/err.h"
#include "crypto/field.h"
#include "store/pg.h"
#include "store/repo_comms.h"

#define ACCEPTQ_MAX 64 /* messages per statement at most */
/* Batches committed at once. One: measured on the e2e bench (2 cores, 16
 * HTTP threads), one batch at a time stored 2.0 statements, 2.1 commits and
 * 0.6 WAL flushes per email against 2.7 / 2.9 / 1.05 without group commit;
 * two at a time halved the batches and lost the gain. Group commit needs
 * requests to wait together: with 4 HTTP threads it made things worse
 * (docs/benchmarks.md), hence http.threads = 16. */
#define ACCEPTQ_INFLIGHT 1

typedef struct acceptq acceptq_t;

acceptq_t *acceptq_new(pg_pool_t *db, const fe_keyring_t *kr);
void acceptq_free(acceptq_t *q);

/* Stores c (as comms_create does) in the next batch, and returns when it is
 * committed: 0, COMMS_PREFS_EXIST (nothing stored: see comm_new_t), or -1
 * with err. With q NULL: comms_create alone. */
int acceptq_create(acceptq_t *q, pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *c,
                   hd_err_t *err);

/* Batches committed and messages in them since the start, and of those
 * messages the ones stored unless_prefs, and the ones refused so (for
 * metrics and the benchmark). */
void acceptq_counts(acceptq_t *q, long *batches, long *messages, long *unread, long *refused);

#endif
