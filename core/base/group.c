/* group.c - leader and followers (see group.h). */
#include "base/group.h"
#include "base/buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct waiter {
    void *item;
    bool done;
    struct waiter *next;
} waiter_t;

struct group {
    group_run_fn run;
    void *ctx;
    int max_items, max_inflight;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    waiter_t *head, *tail; /* waiting, oldest first */
    int inflight;          /* calls of run now */
    long calls, items;
};

group_t *group_new(group_run_fn run, void *ctx, int max_items, int max_inflight)
{
    group_t *g = xcalloc(1, sizeof(*g));
    g->run = run;
    g->ctx = ctx;
    g->max_items = max_items < 1 ? 1 : max_items > GROUP_MAX_ITEMS ? GROUP_MAX_ITEMS : max_items;
    g->max_inflight = max_inflight < 1 ? 1 : max_inflight;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

void group_free(group_t *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

void group_submit(group_t *g, void *item)
{
    waiter_t me = {.item = item};
    pthread_mutex_lock(&g->mu);
    if (g->tail)
        g->tail->next = &me;
    else
        g->head = &me;
    g->tail = &me;
    while (!me.done) {
        if (g->inflight >= g->max_inflight) {
            pthread_cond_wait(&g->cv, &g->mu);
            continue;
        }
        /* lead: the oldest waiting, up to one call's worth (ours among them
         * unless older ones fill it; then we wait for the next round) */
        waiter_t *batch[GROUP_MAX_ITEMS];
        void *items[GROUP_MAX_ITEMS];
        int n = 0;
        while (g->head && n < g->max_items) {
            batch[n] = g->head;
            items[n] = g->head->item;
            n++;
            g->head = g->head->next;
        }
        if (g->head == NULL)
            g->tail = NULL;
        g->inflight++;
        pthread_mutex_unlock(&g->mu);
        g->run(g->ctx, items, n);
        pthread_mutex_lock(&g->mu);
        for (int i = 0; i < n; i++)
            batch[i]->done = true;
        g->calls++;
        g->items += n;
        g->inflight--;
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}

void group_counts(group_t *g, long *calls, long *items)
{
    pthread_mutex_lock(&g->mu);
    *calls = g->calls;
    *items = g->items;
    pthread_mutex_unlock(&g->mu);
}
