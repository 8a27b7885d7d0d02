/*
 * hint.h - a lossy set of strings, for hints whose mistakes another check
 * catches. Each string is kept as a 64-bit hash in one slot chosen by the
 * hash; a later string whose hash picks the same slot replaces it. So
 * hint_has may answer false for a string that was added (it was replaced)
 * and, with odds of about n / 2^64, true for one that was not. Lock-free:
 * any thread may add, drop and ask at once.
 */
#ifndef HERALD_BASE_HINT_H
#define HERALD_BASE_HINT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hint hint_t;

/* slots is rounded up to a power of two (at least 64). */
hint_t *hint_new(size_t slots);
void hint_free(hint_t *h);

void hint_add(hint_t *h, const char *key);
/* Forgets key if it is still held; another key's slot is left alone. */
void hint_drop(hint_t *h, const char *key);
bool hint_has(const hint_t *h, const char *key);

#endif
