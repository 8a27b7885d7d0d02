/*
 * test_hash.c - unit tests for crypto/hash: SHA-256 and HMAC against their
 * RFC vectors, the CSPRNG helpers (the per-thread pool across refills and
 * across a fork, tokens, UUIDs) and the constant-time compare.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/codec.h"
#include "crypto/hash.h"

/* ---- hash ------------------------------------------------------------- */

static void test_hash_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    hash_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hash_sha256_hex(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hash_hmac_rfc4231(void **state)
{
    (void)state;
    /* RFC 4231 test case 2. */
    const char *data = "what do ya want for nothing?";
    uint8_t mac[32], mac2[32];
    char hex[65];
    hash_hmac_sha256("Jefe", 4, data, strlen(data), mac);
    hex_encode(mac, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_int_equal(hash_hmac_sha256_checked("Jefe", 4, data, strlen(data), mac2), 0);
    assert_memory_equal(mac, mac2, 32);
}

static void test_hash_random(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(hash_random(a, sizeof(a)), 0);
    assert_int_equal(hash_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));

    char *t1 = hash_random_token(32), *t2 = hash_random_token(32);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_int_equal(strlen(t1), 43);
    assert_string_not_equal(t1, t2);
    assert_int_equal(strspn(t1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     43);
    uint8_t *d = NULL;
    size_t n = 0;
    assert_int_equal(b64url_decode(t1, strlen(t1), &d, &n), 0);
    assert_int_equal(n, 32);
    free(d);
    free(t1);
    free(t2);
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Draws through the per-thread pool (hash.c) cross its refills and never
 * repeat; sizes above half the pool take the direct path. */
static void test_hash_random_pool(void **state)
{
    (void)state;
    enum { N = 2000 };
    static uint8_t draws[N][16];
    for (int i = 0; i < N; i++) {
        uint8_t odd[37];
        assert_int_equal(hash_random(odd, (size_t)(i % 37) + 1), 0); /* misalign the pool */
        assert_int_equal(hash_random(draws[i], 16), 0);
    }
    qsort(draws, N, 16, cmp16);
    for (int i = 1; i < N; i++)
        assert_memory_not_equal(draws[i - 1], draws[i], 16);
    uint8_t big[4096], zero[4096] = {0};
    assert_int_equal(hash_random(big, sizeof(big)), 0);
    assert_memory_not_equal(big, zero, sizeof(big));
    assert_int_equal(hash_random(big, 0), 0);
}

/* A fork child must not draw the bytes its parent holds in its pool: both
 * would then make the same nonce or token. */
static void test_hash_random_fork(void **state)
{
    (void)state;
    uint8_t warm[1], mine[16], theirs[16];
    assert_int_equal(hash_random(warm, sizeof(warm)), 0); /* the pool is full now */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t c[16];
        int ok = hash_random(c, sizeof(c)) == 0 && write(fd[1], c, sizeof(c)) == (ssize_t)sizeof(c);
        _exit(ok ? 0 : 1);
    }
    close(fd[1]);
    assert_int_equal(hash_random(mine, sizeof(mine)), 0);
    assert_int_equal(read(fd[0], theirs, sizeof(theirs)), (ssize_t)sizeof(theirs));
    close(fd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(mine, theirs, sizeof(mine));
}

static void test_hash_uuid4(void **state)
{
    (void)state;
    char *u = hash_uuid4(), *v = hash_uuid4();
    assert_non_null(u);
    assert_non_null(v);
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", u[i]));
    }
    assert_int_equal(u[14], '4');
    assert_non_null(strchr("89ab", u[19]));
    assert_string_not_equal(u, v);
    free(u);
    free(v);
}

static void test_hash_ct_equal(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    assert_int_equal(hash_ct_equal(a, b, 32), 1);
    b[31] ^= 0x01;
    assert_int_equal(hash_ct_equal(a, b, 32), 0);
    b[31] ^= 0x01;
    b[0] ^= 0x80;
    assert_int_equal(hash_ct_equal(a, b, 32), 0);
    assert_int_equal(hash_ct_equal(a, b + 1, 0), 1);
    /* Only the first len bytes count. */
    assert_int_equal(hash_ct_equal(a + 1, b + 1, 31), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_sha256_vectors), cmocka_unit_test(test_hash_hmac_rfc4231),
        cmocka_unit_test(test_hash_random),         cmocka_unit_test(test_hash_random_pool),
        cmocka_unit_test(test_hash_random_fork),    cmocka_unit_test(test_hash_uuid4),
        cmocka_unit_test(test_hash_ct_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
