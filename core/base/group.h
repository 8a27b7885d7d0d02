/*
 * group.h - run the same kind of work for many threads at once (group
 * commit, group read). Leader and followers: a thread that submits an item
 * while fewer than max_inflight groups are running takes every waiting
 * item, its own among them (up to max_items), and runs them in one call of
 * run(); the others wait on a condition variable until their item is done,
 * and one of them leads the next group. No thread of its own, no timer: a
 * lone item runs at once, and a busy server runs many per call.
 */
#ifndef HERALD_BASE_GROUP_H
#define HERALD_BASE_GROUP_H

#define GROUP_MAX_ITEMS 64 /* max_items is capped at this */

typedef struct group group_t;

/* Runs items[0..n) (n >= 1), called without the group's lock held. Every
 * item must be finished (its result recorded in it) when run returns. */
typedef void (*group_run_fn)(void *ctx, void **items, int n);

/* max_items: items per call (1..GROUP_MAX_ITEMS); max_inflight: calls of
 * run at once (>= 1). */
group_t *group_new(group_run_fn run, void *ctx, int max_items, int max_inflight);
void group_free(group_t *g);

/* Adds item to the next group and returns once run() has finished it. */
void group_submit(group_t *g, void *item);

/* Calls of run and items they carried since group_new (for metrics). */
void group_counts(group_t *g, long *calls, long *items);

#endif
