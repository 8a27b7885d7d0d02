/*
 * acceptq.c - group commit of acceptance (see acceptq.h), on base/group:
 * a request that finds no batch in flight commits every waiting request
 * (its own among them); the others wait until theirs is done.
 */
#include "engine/acceptq.h"
#include "base/buf.h"
#include "base/group.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(ACCEPTQ_MAX <= GROUP_MAX_ITEMS, "a batch is one group");

typedef struct item {
    const comm_new_t *c;
    int rc;
    hd_err_t err;
} item_t;

struct acceptq {
    pg_pool_t *db;
    const fe_keyring_t *kr;
    group_t *group;
    atomic_long unread, refused; /* comm_new_t.unless_prefs: stored, refused */
};

/* Commits items[0..n) and records each one's result (group_run_fn). */
static void commit(void *ctx, void **items, int n)
{
    acceptq_t *q = ctx;
    item_t **batch = (item_t **)items;
    if (n == 1) {
        batch[0]->rc = comms_create(q->db, q->kr, batch[0]->c, &batch[0]->err);
        return;
    }
    const comm_new_t *c[ACCEPTQ_MAX] = {0};
    for (int i = 0; i < n; i++)
        c[i] = batch[i]->c;
    hd_err_t err;
    int results[ACCEPTQ_MAX];
    if (comms_create_many(q->db, q->kr, c, n, results, &err) == 0) {
        for (int i = 0; i < n; i++)
            batch[i]->rc = results[i];
        return;
    }
    /* refused as a whole (nothing was stored): each on its own, so a row the
     * database rejects fails only its request */
    for (int i = 0; i < n; i++)
        batch[i]->rc = comms_create(q->db, q->kr, batch[i]->c, &batch[i]->err);
}

acceptq_t *acceptq_new(pg_pool_t *db, const fe_keyring_t *kr)
{
    acceptq_t *q = xcalloc(1, sizeof(*q));
    q->db = db;
    q->kr = kr;
    q->group = group_new(commit, q, ACCEPTQ_MAX, ACCEPTQ_INFLIGHT);
    return q;
}

void acceptq_free(acceptq_t *q)
{
    if (q == NULL)
        return;
    group_free(q->group);
    free(q);
}

int acceptq_create(acceptq_t *q, pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *c,
                   hd_err_t *err)
{
    if (q == NULL)
        return comms_create(db, kr, c, err);
    item_t me = {.c = c};
    group_submit(q->group, &me);
    if (c->unless_prefs && me.rc == 0)
        atomic_fetch_add(&q->unread, 1);
    else if (me.rc == COMMS_PREFS_EXIST)
        atomic_fetch_add(&q->refused, 1);
    if (me.rc < 0 && err)
        *err = me.err;
    return me.rc;
}

void acceptq_counts(acceptq_t *q, long *batches, long *messages, long *unread, long *refused)
{
    group_counts(q->group, batches, messages);
    *unread = atomic_load(&q->unread);
    *refused = atomic_load(&q->refused);
}
