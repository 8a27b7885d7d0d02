/* test_router.c - path matching, captures and 405 detection (core/http/router.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/router.h"

#include <string.h>

static int h1, h2, h3, h4;

static void setup_routes(router_t *r)
{
    router_init(r);
    assert_int_equal(router_add(r, "GET", "/api/crm/health", &h1, 0, BODY_NONE), 0);
    assert_int_equal(router_add(r, "GET", "/api/crm/communications/{id}", &h2, 1, BODY_NONE), 0);
    assert_int_equal(router_add(r, "DELETE", "/api/crm/communications/{id}", &h3, 1, BODY_NONE), 0);
    assert_int_equal(router_add(r, "POST", "/api/crm/communications", &h4, 1, BODY_JSON), 0);
    assert_int_equal(router_add(r, "GET", "/api/crm/a/{x}/b/{y}", &h1, 0, BODY_NONE), 0);
}

static void test_literal(void **state)
{
    router_t r;
    route_match_t m;
    setup_routes(&r);
    assert_int_equal(router_match(&r, "GET", "/api/crm/health", &m), ROUTE_FOUND);
    assert_ptr_equal(m.route->handler, &h1);
    assert_int_equal(m.route->index, 0);
    assert_int_equal(router_match(&r, "GET", "/api/crm/health/", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/api/crm/healthz", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/api/crm", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "", &m), ROUTE_NOT_FOUND);
}

static void test_captures(void **state)
{
    router_t r;
    route_match_t m;
    setup_routes(&r);
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/abc-123", &m), ROUTE_FOUND);
    assert_ptr_equal(m.route->handler, &h2);
    assert_string_equal(router_param(&m, "id"), "abc-123");
    assert_null(router_param(&m, "nope"));
    assert_int_equal(router_match(&r, "DELETE", "/api/crm/communications/x", &m), ROUTE_FOUND);
    assert_ptr_equal(m.route->handler, &h3);
    assert_int_equal(router_match(&r, "GET", "/api/crm/a/1/b/two", &m), ROUTE_FOUND);
    assert_string_equal(router_param(&m, "x"), "1");
    assert_string_equal(router_param(&m, "y"), "two");
    /* An empty capture or an extra segment does not match. */
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/a/b", &m), ROUTE_NOT_FOUND);
}

static void test_percent_decoding(void **state)
{
    router_t r;
    route_match_t m;
    setup_routes(&r);
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/a%20b%C3%A9", &m),
                     ROUTE_FOUND);
    assert_string_equal(router_param(&m, "id"), "a b\xc3\xa9");
    /* An encoded slash or NUL, or a broken escape, never matches. */
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/a%2Fb", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/a%00", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/a%4", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications/%zz", &m), ROUTE_NOT_FOUND);
    char longpath[400] = "/api/crm/communications/";
    memset(longpath + strlen(longpath), 'a', 300);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(router_match(&r, "GET", longpath, &m), ROUTE_NOT_FOUND);
}

static void test_method_not_allowed(void **state)
{
    router_t r;
    route_match_t m;
    setup_routes(&r);
    assert_int_equal(router_match(&r, "PUT", "/api/crm/communications/x", &m), ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, DELETE");
    assert_int_equal(router_match(&r, "DELETE", "/api/crm/health", &m), ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET");
    assert_int_equal(router_match(&r, "GET", "/api/crm/communications", &m), ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "POST");
    /* HEAD is served by GET routes. */
    assert_int_equal(router_match(&r, "HEAD", "/api/crm/health", &m), ROUTE_FOUND);
}

static void test_bad_patterns(void **state)
{
    router_t r;
    router_init(&r);
    assert_int_equal(router_add(&r, "GET", "no-slash", &h1, 0, BODY_NONE), -1);
    for (int i = 0; i < ROUTER_MAX_ROUTES; i++)
        assert_int_equal(router_add(&r, "GET", "/x", &h1, 0, BODY_NONE), 0);
    assert_int_equal(router_add(&r, "GET", "/y", &h1, 0, BODY_NONE), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),          cmocka_unit_test(test_captures),
        cmocka_unit_test(test_percent_decoding), cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_bad_patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
