/* test_redact.c - script errors without personal data (core/lua/redact.c)
 * and the access log's address mask (core/base/addr.c addr_mask_path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/addr.h"
#include "lua/redact.h"

#include <stdlib.h>
#include <string.h>

static char *masked(const char *text, const char *json)
{
    cJSON *ctx = cJSON_Parse(json);
    assert_non_null(ctx);
    cJSON *args[] = {ctx};
    char *out = redact_text(text, args, 1);
    cJSON_Delete(ctx);
    assert_non_null(out);
    return out;
}

static void test_values_become_paths_and_lengths(void **state)
{
    (void)state;
    char *out = masked("x.subject:1: date: got 'Chateau Brightwater' for Ottoline Ravensworth",
                       "{\"venue\": \"Chateau Brightwater\", \"planner\": {\"name\": "
                       "\"Ottoline Ravensworth\"}}");
    assert_string_equal(out, "x.subject:1: date: got '<venue: 19 bytes>' for "
                             "<planner.name: 20 bytes>");
    free(out);
}

static void test_longest_first_and_list_paths(void **state)
{
    (void)state;
    /* "Ann" alone and inside "Annabel Lee": the longer is masked whole */
    char *out =
        masked("bad: Annabel Lee, Ann", "{\"a\": \"Ann\", \"guests\": [\"x\", \"Annabel Lee\"]}");
    assert_string_equal(out, "bad: <guests[2]: 11 bytes>, <a: 3 bytes>");
    free(out);
}

static void test_short_values_and_numbers_only_as_words(void **state)
{
    (void)state;
    /* "en" inside "content" stays; 48213 as a word goes; 12 inside 2012 stays */
    char *out = masked("content.lua:9: budget 48213 over in 2012 (en)",
                       "{\"locale\": \"en\", \"budget\": 48213, \"n\": 12}");
    assert_string_equal(out, "content.lua:9: budget <budget: a number> over in 2012 "
                             "(<locale: 2 bytes>)");
    free(out);
}

static void test_text_without_values_is_unchanged(void **state)
{
    (void)state;
    char *out = masked("attempt to index a nil value (field 'x')", "{\"v\": \"Zoe Martin\"}");
    assert_string_equal(out, "attempt to index a nil value (field 'x')");
    free(out);
}

static void test_path_addresses_are_masked(void **state)
{
    (void)state;
    char *p = addr_mask_path("/api/crm/preferences/jane%40example.com");
    assert_string_equal(p, "/api/crm/preferences/{address: 18 bytes}");
    free(p);
    p = addr_mask_path("/api/crm/preferences/+14155550100");
    assert_string_equal(p, "/api/crm/preferences/{address: 12 bytes}");
    free(p);
    p = addr_mask_path("/api/crm/communications/0f6f2c69-59b7-4d48-ad39-c659ae68935c");
    assert_string_equal(p, "/api/crm/communications/0f6f2c69-59b7-4d48-ad39-c659ae68935c");
    free(p);
    p = addr_mask_path("/");
    assert_string_equal(p, "/");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_become_paths_and_lengths),
        cmocka_unit_test(test_longest_first_and_list_paths),
        cmocka_unit_test(test_short_values_and_numbers_only_as_words),
        cmocka_unit_test(test_text_without_values_is_unchanged),
        cmocka_unit_test(test_path_addresses_are_masked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
