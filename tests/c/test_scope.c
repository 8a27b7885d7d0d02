/* test_scope.c - scope names, parsing and formatting (core/base/scope.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/scope.h"

#include <string.h>

static void test_parse(void **state)
{
    hd_err_t err = {{0}};
    unsigned m = 0;
    assert_int_equal(scope_parse("send", &m, &err), 0);
    assert_int_equal(m, SCOPE_SEND);
    assert_int_equal(scope_parse("send,read", &m, &err), 0);
    assert_int_equal(m, SCOPE_SEND | SCOPE_READ);
    assert_int_equal(scope_parse(" admin  read, send ", &m, &err), 0);
    assert_int_equal(m, SCOPE_ALL);

    m = 99;
    assert_int_equal(scope_parse("send,write", &m, &err), -1);
    assert_string_equal(err.msg, "unknown scope \"write\" (expected send, read, admin)");
    assert_int_equal(m, 99); /* untouched on failure */
    assert_int_equal(scope_parse("", &m, &err), -1);
    assert_string_equal(err.msg, "no scope given (expected send, read, admin)");
    assert_int_equal(scope_parse(" , ", &m, &err), -1);
    assert_int_equal(scope_parse("Send", &m, &err), -1); /* names are lower-case */
    assert_int_equal(scope_parse("sendread", &m, NULL), -1);
}

static void test_format(void **state)
{
    char out[64];
    scope_format(SCOPE_ALL, out, sizeof(out));
    assert_string_equal(out, "send read admin");
    scope_format(SCOPE_READ | SCOPE_ADMIN, out, sizeof(out));
    assert_string_equal(out, "read admin");
    scope_format(0, out, sizeof(out));
    assert_string_equal(out, "");
    /* round trip through the parser */
    unsigned m = 0;
    scope_format(SCOPE_SEND | SCOPE_ADMIN, out, sizeof(out));
    assert_int_equal(scope_parse(out, &m, NULL), 0);
    assert_int_equal(m, SCOPE_SEND | SCOPE_ADMIN);
    /* too small: cut short, never overflowing, always terminated */
    char small[8];
    memset(small, 'x', sizeof(small));
    scope_format(SCOPE_ALL, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_memory_equal(small, "send", 4);
}

static void test_name(void **state)
{
    assert_string_equal(scope_name(SCOPE_SEND), "send");
    assert_string_equal(scope_name(SCOPE_READ), "read");
    assert_string_equal(scope_name(SCOPE_ADMIN), "admin");
    assert_string_equal(scope_name(SCOPE_SEND | SCOPE_READ), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
