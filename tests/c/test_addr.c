/* test_addr.c - the input checks of core/base/addr.c: email addresses,
 * header values (injection), E.164 numbers and channel names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/addr.h"

#include <string.h>

/* "jane@aaa...": total characters, domain labels of at most 63. */
static void make_addr(char *out, size_t total)
{
    strcpy(out, "jane@");
    size_t len = 5;
    while (total - len > 63) {
        memset(out + len, 'a', 61);
        out[len + 61] = '.';
        len += 62;
    }
    memset(out + len, 'b', total - len);
    out[total] = '\0';
    assert_int_equal(strlen(out), total);
}

static void test_email(void **state)
{
    static const char *const good[] = {
        "a@b.co",
        "jane.doe+tag@mail.example.org",
        "o'brien@example.ie",
        "x_y-z!#$%&*/=?^`{|}~@sub-domain.example",
        "root@localhost",
        "USER@EXAMPLE.COM",
    };
    static const char *const bad[] = {
        "",
        "plain",
        "@example.com",
        "jane@",
        "jane@example",
        "jane@@example.com",
        "a@b@example.com",
        "jane doe@example.com",
        "\"jane\"@example.com",
        "<jane@example.com>",
        "jane@example.com>",
        "jane,bob@example.com",
        "jane;bob@example.com",
        "jane@exa mple.com",
        "jane@example..com",
        "jane@.example.com",
        "jane@example.com.",
        "jane@-example.com",
        "jane@example-.com",
        "jane@exa_mple.com",
        "jane@[127.0.0.1]",
        ".jane@example.com",
        "jane.@example.com",
        "ja..ne@example.com",
        "ja(ne)@example.com",
        "ja\\ne@example.com",
        "jan\xc3\xa9@example.com",
        "jane@ex\xc3\xa4mple.com",
        "jane\t@example.com",
        "jane@example.com\r\n",
    };
    hd_err_t err = {{0}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (addr_check_email(good[i], &err) != 0)
            fail_msg("refused %s: %s", good[i], err.msg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (addr_check_email(bad[i], &err) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_true(strncmp(err.msg, "not an email address (", 22) == 0);
    }
    assert_int_equal(addr_check_email(NULL, &err), -1);
    assert_string_equal(err.msg, "not an email address (empty)");
    assert_int_equal(addr_check_email("jane@example", &err), -1);
    assert_string_equal(err.msg, "not an email address (domain has no dot)");
    /* lengths: 64 in the local part, 254 in all */
    char a[300];
    memset(a, 'a', 64);
    strcpy(a + 64, "@example.com");
    assert_int_equal(addr_check_email(a, &err), 0);
    memset(a, 'a', 65);
    strcpy(a + 65, "@example.com");
    assert_int_equal(addr_check_email(a, &err), -1);
    char d[300];
    make_addr(d, 254);
    assert_int_equal(addr_check_email(d, &err), 0);
    make_addr(d, 255);
    assert_int_equal(addr_check_email(d, &err), -1);
    assert_string_equal(err.msg, "not an email address (longer than 254 characters)");
}

static void test_domain_and_atext(void **state)
{
    assert_null(addr_domain_problem("example.com", 11));
    assert_null(addr_domain_problem("LOCALHOST", 9));
    /* counted: only the first n bytes are the domain */
    assert_null(addr_domain_problem("example.com>", 11));
    assert_string_equal(addr_domain_problem("", 0), "empty domain");
    assert_string_equal(addr_domain_problem("example", 7), "domain has no dot");
    assert_string_equal(addr_domain_problem("a..b", 4), "empty domain label");
    assert_string_equal(addr_domain_problem("-a.b", 4), "domain label starts or ends with '-'");
    assert_true(addr_is_atext('a') && addr_is_atext('~') && addr_is_atext('\''));
    assert_false(addr_is_atext('.') || addr_is_atext('@') || addr_is_atext(' ') ||
                 addr_is_atext('\0') || addr_is_atext(0xc3));
}

static void test_header_value(void **state)
{
    /* counted strings can carry a NUL: the check a caller runs before making
     * C strings of them */
    hd_err_t err = {{0}};
    static const char nul[] = "Hi\0Bcc: x@y";
    assert_int_equal(addr_check_header_value("subject", nul, sizeof(nul) - 1, &err), -1);
    assert_string_equal(err.msg, "subject: contains a NUL byte (header injection refused)");
    assert_int_equal(addr_check_header_value("subject", "Hi\r\nBcc: x@y", 12, &err), -1);
    assert_string_equal(err.msg, "subject: contains a line break (header injection refused)");
    assert_int_equal(addr_check_header_value("filename", "a\nb", 3, &err), -1);
    assert_string_equal(err.msg, "filename: contains a line break (header injection refused)");
    assert_int_equal(addr_check_header_value("subject", nul, 2, &err), 0);
    assert_int_equal(addr_check_header_value("subject", "", 0, &err), 0);
}

static void test_e164(void **state)
{
    static const char *const good[] = {"+14155550100", "+33612345678", "+12345678",
                                       "+123456789012345"};
    static const char *const bad[] = {"",
                                      "14155550100",
                                      "+",
                                      "+1234567",
                                      "+1234567890123456",
                                      "+0612345678",
                                      "+1 415555",
                                      "+1415555010a",
                                      "++14155550100",
                                      "+44-20-7946-0958"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!addr_is_e164(good[i]))
            fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (addr_is_e164(bad[i]))
            fail_msg("accepted %s", bad[i]);
    assert_false(addr_is_e164(NULL));
}

static void test_channel(void **state)
{
    assert_true(addr_is_channel("email"));
    assert_true(addr_is_channel("sms"));
    assert_true(addr_is_channel("whatsapp"));
    assert_false(addr_is_channel(NULL));
    assert_false(addr_is_channel(""));
    assert_false(addr_is_channel("Email"));
    assert_false(addr_is_channel("push"));
    assert_false(addr_is_channel("sms "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),        cmocka_unit_test(test_domain_and_atext),
        cmocka_unit_test(test_header_value), cmocka_unit_test(test_e164),
        cmocka_unit_test(test_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
