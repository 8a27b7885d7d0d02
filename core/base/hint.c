/*
 * hint.c - the lossy set of hint.h: a direct-mapped table of 64-bit hashes
 * (FNV-1a, then a finalising mix so the low bits that pick the slot depend
 * on every byte). Zero marks an empty slot; a key hashing to zero is kept
 * as one.
 */
#include "base/hint.h"
#include "base/buf.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

struct hint {
    size_t mask;
    _Atomic uint64_t *slot;
};

static uint64_t hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    /* murmur3's 64-bit finaliser */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}

hint_t *hint_new(size_t slots)
{
    size_t n = 64;
    while (n < slots && n < ((size_t)1 << 30))
        n <<= 1;
    hint_t *h = xcalloc(1, sizeof(*h));
    h->mask = n - 1;
    h->slot = xcalloc(n, sizeof(*h->slot));
    return h;
}

void hint_free(hint_t *h)
{
    if (h == NULL)
        return;
    free((void *)h->slot);
    free(h);
}

void hint_add(hint_t *h, const char *key)
{
    uint64_t v = hash(key);
    atomic_store_explicit(&h->slot[v & h->mask], v, memory_order_relaxed);
}

void hint_drop(hint_t *h, const char *key)
{
    uint64_t v = hash(key);
    atomic_compare_exchange_strong(&h->slot[v & h->mask], &v, 0);
}

bool hint_has(const hint_t *h, const char *key)
{
    uint64_t v = hash(key);
    return atomic_load_explicit(&h->slot[v & h->mask], memory_order_relaxed) == v;
}
