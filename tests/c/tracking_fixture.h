/*
 * tracking_fixture.h - what test_tracking_token.c and test_tracking.c share
 * about engine/tracking: the message and clock of the tests, the encryption
 * key of the integration tests (bytes 0..31) with the tracking key derived
 * from it, and the length of today's tokens. Static helpers for those two
 * test files; needs no cmocka.
 */
#ifndef HERALD_TESTS_TRACKING_FIXTURE_H
#define HERALD_TESTS_TRACKING_FIXTURE_H

#include "engine/tracking.h"

#include <stdint.h>

#define COMM  "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define NOW   ((int64_t)1750000000)
#define LATER (NOW + 365 * 86400)

/* A token of today's layout (version 2): 70 characters, 52 bytes. */
#define TOK_CHARS 70
#define TOK_BYTES 52

/* The encryption key of the integration tests: bytes 0..31. */
static __attribute__((unused)) void enc_key(uint8_t k[32])
{
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)i;
}

static __attribute__((unused)) track_key_t test_key(void)
{
    uint8_t e[32];
    enc_key(e);
    track_key_t k;
    track_key_derive(e, &k);
    return k;
}

#endif
