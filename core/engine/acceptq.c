/*
 * acceptq.c - group commit of acceptance (see acceptq.h). Leader and
 * followers: a request that finds no batch in flight takes every waiting
 * request (its own among them) and commits them; the others wait on the
 * condition variable until theirs is done, and one of them leads the next
 * batch. No thread of its own, no sleep.
 */
#include "engine/acceptq.h"
#include "base/buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    const comm_new_t *c;
    int rc;
    hd_err_t err;
    bool done;
    struct item *next;
} item_t;

struct acceptq {
    pg_pool_t *db;
    const fe_keyring_t *kr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item_t *head, *tail; /* waiting, oldest first */
    int inflight;        /* batches being committed now */
    int max_inflight;    /* at most this many at once */
    long batches, messages;
};

acceptq_t *acceptq_new(pg_pool_t *db, const fe_keyring_t *kr)
{
    acceptq_t *q = xcalloc(1, sizeof(*q));
    q->db = db;
    q->kr = kr;
    q->max_inflight = ACCEPTQ_INFLIGHT;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return q;
}

void acceptq_free(acceptq_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* Commits batch[0..n) (the lock not held) and records each one's result. */
static void commit(acceptq_t *q, item_t **batch, int n)
{
    if (n == 1) {
        batch[0]->rc = comms_create(q->db, q->kr, batch[0]->c, &batch[0]->err);
        return;
    }
    const comm_new_t *c[ACCEPTQ_MAX];
    for (int i = 0; i < n; i++)
        c[i] = batch[i]->c;
    hd_err_t err;
    if (comms_create_many(q->db, q->kr, c, n, &err) == 0) {
        for (int i = 0; i < n; i++)
            batch[i]->rc = 0;
        return;
    }
    /* refused as a whole (nothing was stored): each on its own, so a row the
     * database rejects fails only its request */
    for (int i = 0; i < n; i++)
        batch[i]->rc = comms_create(q->db, q->kr, batch[i]->c, &batch[i]->err);
}

int acceptq_create(acceptq_t *q, pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *c,
                   hd_err_t *err)
{
    if (q == NULL)
        return comms_create(db, kr, c, err);
    item_t me = {.c = c};
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = &me;
    else
        q->head = &me;
    q->tail = &me;
    while (!me.done) {
        if (q->inflight >= q->max_inflight) {
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        /* lead: take the oldest waiting, up to a statement's worth */
        item_t *batch[ACCEPTQ_MAX];
        int n = 0;
        while (q->head && n < ACCEPTQ_MAX) {
            batch[n++] = q->head;
            q->head = q->head->next;
        }
        if (q->head == NULL)
            q->tail = NULL;
        q->inflight++;
        pthread_mutex_unlock(&q->mu);
        commit(q, batch, n);
        pthread_mutex_lock(&q->mu);
        for (int i = 0; i < n; i++)
            batch[i]->done = true;
        q->batches++;
        q->messages += n;
        q->inflight--;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (me.rc != 0 && err)
        *err = me.err;
    return me.rc;
}

void acceptq_counts(acceptq_t *q, long *batches, long *messages)
{
    pthread_mutex_lock(&q->mu);
    *batches = q->batches;
    *messages = q->messages;
    pthread_mutex_unlock(&q->mu);
}
