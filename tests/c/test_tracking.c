/*
 * test_tracking.c - unit tests for engine/tracking's links: the URL check
 * (track_url_ok), the HTML rewrite (track_rewrite_html) and the link
 * sanitizer (track_safe_links).
 *
 * The rewrite is checked on the exact output: which links go through /t/c/,
 * in what order and with which index, which stay as they were, where the
 * pixel goes, and the stored link list; every token it writes must verify.
 * The tokens themselves are tested in test_tracking_token.c; what both use
 * is in tracking_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/tracking.h"
#include "tracking_fixture.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

#define BASE "https://mail.example.com"

static track_check_t verify(const char *tok, int64_t now, track_claim_t *c)
{
    track_key_t k = test_key();
    return track_verify(&k, tok, now, c);
}

/* ---- track_url_ok ----------------------------------------------------- */

static void test_url_ok(void **state)
{
    (void)state;
    static const char *const good[] = {
        "http://a",
        "https://vendors.example.com/a?x=1&y=2",
        "HTTP://EXAMPLE.COM/",
        "HtTpS://example.com/path#frag",
        "https://user@example.com:8443/p?q=%20",
        "https://[::1]:8080/",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!track_url_ok(good[i]))
            fail_msg("track_url_ok(\"%s\") is false, want true", good[i]);

    static const char *const bad[] = {
        "",
        "javascript:alert(1)",
        "JAVASCRIPT://%0aalert(1)",
        "mailto:a@example.com",
        "tel:+15005550006",
        "ftp://example.com/",
        "data:text/html,hi",
        "//example.com/",
        "/relative",
        "example.com",
        "http:",
        "http:/x",
        "http://",
        "https://",
        "https:///x",
        "http://?q",
        "http://#f",
        "http://exa mple.com/",
        "https://example.com/a b",
        "https://example.com/\r\nSet-Cookie: x=1",
        "https://example.com/\nx",
        "https://example.com/\rx",
        "https://example.com/\tx",
        "https://example.com/\x7f",
        "https://example.com/\x01",
        " https://example.com/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (track_url_ok(bad[i]))
            fail_msg("track_url_ok(\"%s\") is true, want false", bad[i]);
    assert_false(track_url_ok(NULL));

    /* length: 2,000 bytes pass, 2,001 do not */
    char *u = malloc(2100);
    assert_non_null(u);
    memcpy(u, "https://example.com/", 20);
    memset(u + 20, 'a', 2000 - 20);
    u[2000] = '\0';
    assert_true(track_url_ok(u));
    u[2000] = 'a';
    u[2001] = '\0';
    assert_false(track_url_ok(u));
    memset(u + 20, 'a', 2099 - 20);
    u[2099] = '\0';
    assert_false(track_url_ok(u));
    free(u);
}

/* ---- track_rewrite_html ----------------------------------------------- */

/* The pixel tag output[at..] must be: an <img> whose src is
 * BASE/t/o/<open token for COMM>.gif. Returns its length. */
static size_t check_pixel(const char *s, int64_t expires)
{
    assert_memory_equal(s, "<img ", 5);
    const char *end = strchr(s, '>');
    assert_non_null(end);
    const char *src = strstr(s, "src=\"" BASE "/t/o/");
    assert_non_null(src);
    assert_true(src < end);
    src += strlen("src=\"" BASE "/t/o/");
    char tok[TOK_CHARS + 1];
    memcpy(tok, src, TOK_CHARS);
    tok[TOK_CHARS] = '\0';
    assert_memory_equal(src + TOK_CHARS, ".gif\"", 5);
    track_claim_t c;
    assert_int_equal(verify(tok, NOW, &c), TRACK_OK);
    assert_int_equal(c.kind, 'o');
    assert_string_equal(c.comm_id, COMM);
    assert_int_equal(c.expires, expires);
    return (size_t)(end + 1 - s);
}

/* Rewrites html and checks the result is exactly want_before + pixel +
 * want_after (pixel as check_pixel wants it), where "{N}" in the wants
 * stands for BASE/t/c/<token of link N>; the links list must be want_links.
 * Every token must verify and match its URL. */
static void expect_rewrite(const char *html, const char *skip, const char *want_before,
                           const char *want_after, const char *const *want_links, int nlinks)
{
    track_key_t k = test_key();
    char *links = NULL;
    char *out = track_rewrite_html(&k, html, BASE, COMM, LATER, skip, &links);
    assert_non_null(out);
    assert_non_null(links);

    cJSON *arr = cJSON_Parse(links);
    if (arr == NULL || !cJSON_IsArray(arr))
        fail_msg("links_json %s is not a JSON array", links);
    if (cJSON_GetArraySize(arr) != nlinks)
        fail_msg("links_json %s has %d entries, want %d", links, cJSON_GetArraySize(arr), nlinks);
    for (int i = 0; i < nlinks; i++) {
        cJSON *e = cJSON_GetArrayItem(arr, i);
        assert_true(cJSON_IsString(e));
        assert_string_equal(e->valuestring, want_links[i]);
    }
    cJSON_Delete(arr);

    /* expand "{N}" with the tokens the product must have made */
    char want[8192];
    size_t w = 0;
    for (int part = 0; part < 2; part++) {
        const char *s = part == 0 ? want_before : want_after;
        while (*s) {
            if (s[0] == '{' && s[1] >= '0' && s[1] <= '9' && s[2] == '}') {
                int n = s[1] - '0';
                assert_true(n < nlinks);
                char *t = track_token(&k, 'c', COMM, n, LATER, want_links[n]);
                w += (size_t)snprintf(want + w, sizeof(want) - w, "%s/t/c/%s", BASE, t);
                free(t);
                s += 3;
            } else {
                want[w++] = *s++;
            }
            assert_true(w < sizeof(want) - 100);
        }
        if (part == 0)
            want[w++] = '\x01'; /* where the pixel goes */
    }
    want[w] = '\0';

    const char *mark = strchr(want, '\x01');
    size_t before = (size_t)(mark - want);
    if (strncmp(out, want, before) != 0)
        fail_msg("rewrite of\n  %s\ngave\n  %s\nwant (before the pixel)\n  %.*s", html, out,
                 (int)before, want);
    size_t px = check_pixel(out + before, LATER);
    if (strcmp(out + before + px, mark + 1) != 0)
        fail_msg("rewrite of\n  %s\ngave\n  %s\nwant (after the pixel)\n  %s", html, out, mark + 1);

    /* every click token in the output verifies and names its URL */
    int seen = 0;
    for (const char *p = strstr(out, BASE "/t/c/"); p; p = strstr(p + 1, BASE "/t/c/")) {
        char tok[TOK_CHARS + 1];
        memcpy(tok, p + strlen(BASE "/t/c/"), TOK_CHARS);
        tok[TOK_CHARS] = '\0';
        track_claim_t c;
        assert_int_equal(verify(tok, NOW, &c), TRACK_OK);
        assert_int_equal(c.kind, 'c');
        assert_string_equal(c.comm_id, COMM);
        assert_int_equal(c.index, seen);
        assert_int_equal(c.expires, LATER);
        assert_true(track_url_matches(&c, want_links[seen]));
        seen++;
    }
    assert_int_equal(seen, nlinks);
    free(out);
    free(links);
}

static void test_rewrite_quotes_order_and_entities(void **state)
{
    (void)state;
    static const char *const links[] = {
        "https://vendors.example.com/a?x=1&y=2",
        "http://vendors.example.com/c",
        "HTTPS://Caps.Example.com/Q?a='b'",
    };
    expect_rewrite("<html><body><p><a href=\"https://vendors.example.com/a?x=1&amp;y=2\" "
                   "style=\"c\">A &amp; B</a>"
                   "<a class='v' href='http://vendors.example.com/c'>C</a>"
                   "<A\n  HREF = \"HTTPS://Caps.Example.com/Q?a=&#39;b&#39;\">D</A></p></body>"
                   "</html>",
                   NULL,
                   "<html><body><p><a href=\"{0}\" style=\"c\">A &amp; B</a>"
                   "<a class='v' href='{1}'>C</a>"
                   "<A\n  HREF = \"{2}\">D</A></p>",
                   "</body></html>", links, 3);
    /* numeric character references, decimal and hex, and a non-ASCII one;
     * a malformed one stays as written */
    static const char *const more[] = {
        "https://v.example/?a=1&b=2&c=3",
        "https://v.example/caf\xc3\xa9",
        "https://v.example/?q=&#xZZ;",
    };
    expect_rewrite("<a href=\"https://v.example/?a=1&#38;b=2&#x26;c=3\">1</a>"
                   "<a href=\"https://v.example/caf&#233;\">2</a>"
                   "<a href=\"https://v.example/?q=&#xZZ;\">3</a>",
                   NULL, "<a href=\"{0}\">1</a><a href=\"{1}\">2</a><a href=\"{2}\">3</a>", "",
                   more, 3);
}

static void test_rewrite_leaves_other_links_alone(void **state)
{
    (void)state;
    static const char *const links[] = {"https://vendors.example.com/c"};
    const char *html = "<body>"
                       "<a href=\"mailto:hi@example.com\">m</a>"
                       "<a href=\"tel:+15005550006\">t</a>"
                       "<a href=\"/relative/path\">r</a>"
                       "<a href=\"#top\">h</a>"
                       "<a href=\"javascript:alert(1)\">j</a>"
                       "<a href=\"ftp://files.example.com/\">f</a>"
                       "<a href=\"" BASE "/u/abc123\">Unsubscribe</a>"
                       "<a name=\"anchor\">no href</a>"
                       "<a id='x' data-href=\"https://not.a.link/\">data-href</a>"
                       "<abbr title=\"x\">abbr</abbr>"
                       "<area href=\"https://map.example.com/\" alt=\"\">"
                       "<address>a</address>"
                       "<a href=\"https://vendors.example.com/c\">c</a>"
                       "</body>";
    const char *before = "<body>"
                         "<a href=\"mailto:hi@example.com\">m</a>"
                         "<a href=\"tel:+15005550006\">t</a>"
                         "<a href=\"/relative/path\">r</a>"
                         "<a href=\"#top\">h</a>"
                         "<a href=\"javascript:alert(1)\">j</a>"
                         "<a href=\"ftp://files.example.com/\">f</a>"
                         "<a href=\"" BASE "/u/abc123\">Unsubscribe</a>"
                         "<a name=\"anchor\">no href</a>"
                         "<a id='x' data-href=\"https://not.a.link/\">data-href</a>"
                         "<abbr title=\"x\">abbr</abbr>"
                         "<area href=\"https://map.example.com/\" alt=\"\">"
                         "<address>a</address>"
                         "<a href=\"{0}\">c</a>";
    expect_rewrite(html, BASE "/u/", before, "</body>", links, 1);
}

static void test_rewrite_skip_prefix_is_a_prefix_not_a_substring(void **state)
{
    (void)state;
    /* a link that merely contains /u/, or is under another host's /u/, is
     * tracked; only links starting with the prefix stay direct */
    static const char *const links[] = {"https://other.example.com/u/x",
                                        "https://vendors.example.com/?next=" BASE "/u/x"};
    expect_rewrite("<a href=\"https://other.example.com/u/x\">1</a>"
                   "<a href=\"https://vendors.example.com/?next=" BASE "/u/x\">2</a>"
                   "<a href=\"" BASE "/u/x\">3</a>",
                   BASE "/u/",
                   "<a href=\"{0}\">1</a><a href=\"{1}\">2</a><a href=\"" BASE "/u/x\">3</a>", "",
                   links, 2);
}

static void test_rewrite_pixel_goes_before_the_last_body_end(void **state)
{
    (void)state;
    static const char *const links[] = {"https://a.example/"};
    /* two closing tags (one in the text), mixed case: the last one */
    expect_rewrite("<body><a href=\"https://a.example/\">a</a><p>&lt;/body&gt; </body> x</p>"
                   "</BODY>\n</html>",
                   NULL, "<body><a href=\"{0}\">a</a><p>&lt;/body&gt; </body> x</p>",
                   "</BODY>\n</html>", links, 1);
    /* no </body>: appended */
    expect_rewrite("<p><a href='https://a.example/'>a</a></p>", NULL, "<p><a href='{0}'>a</a></p>",
                   "", links, 1);
    /* no links at all: still a pixel, and an empty list */
    expect_rewrite("<html><Body>hi</Body></html>", NULL, "<html><Body>hi", "</Body></html>", NULL,
                   0);
    expect_rewrite("", NULL, "", "", NULL, 0);
}

static void test_rewrite_survives_broken_markup(void **state)
{
    (void)state;
    static const char *const links[] = {"https://b.example/"};
    /* An unterminated quote swallows what follows up to the next quote, as
     * a browser reads it: that "URL" holds spaces and markup, so nothing is
     * rewritten and everything is copied as it is. */
    expect_rewrite("<a href=\"https://a.example/>x</a><a href=\"https://b.example/\">b</a>"
                   "<a href=\"https://c.example/",
                   NULL,
                   "<a href=\"https://a.example/>x</a><a href=\"https://b.example/\">b</a>"
                   "<a href=\"https://c.example/",
                   "", NULL, 0);
    /* a quoted value holding "href=" and ">" is skipped over whole; the real
     * href after it is the link */
    expect_rewrite("<a title=\"see href='https://evil.example/' > here\" "
                   "href=\"https://b.example/\">b</a>",
                   NULL, "<a title=\"see href='https://evil.example/' > here\" href=\"{0}\">b</a>",
                   "", links, 1);
}

static void test_rewrite_url_with_a_space_stays_direct(void **state)
{
    (void)state;
    /* not fit for a Location header: never tracked, never stored */
    expect_rewrite(
        "<a href=\"https://a.example/x y\">1</a><a href=\"https://a.example/\r\n\">2</a>", NULL,
        "<a href=\"https://a.example/x y\">1</a><a href=\"https://a.example/\r\n\">2</a>", "", NULL,
        0);
}

/* issue 17 item 11: a context's javascript:/data:/vbscript: URL never becomes a
 * link, however it is spelled; http, https, mailto, tel and relative stay. */
static void test_safe_links_drop_other_schemes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", " \njavascript:x",
        "&#106;avascript:x",   "&#x6A;avascript:x",   "data:text/html,<b>x",   "vbscript:msgbox",
        "file:///etc/passwd",  "jav&#x09;ascript:x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char html[256];
        snprintf(html, sizeof(html), "<p><a class=\"v\" href=\"%s\">Vendor</a></p>", bad[i]);
        int dropped = -1;
        char *out = track_safe_links(html, &dropped);
        assert_int_equal(dropped, 1);
        assert_string_equal(out, "<p><a class=\"v\" href=\"#\">Vendor</a></p>");
        free(out);
    }
    const char *good = "<a href=\"https://x.example/a?b=c:d\">1</a><a href='http://y'>2</a>"
                       "<a href=\"mailto:ana@example.com\">3</a><a href=\"tel:+33612345678\">4</a>"
                       "<a href=\"/relative/path:x\">5</a><a href=\"#top\">6</a>"
                       "<a href=\"a-rather-long-relative-name/file\">7</a><a name=\"x\">8</a>";
    int dropped = -1;
    char *out = track_safe_links(good, &dropped);
    assert_int_equal(dropped, 0);
    assert_string_equal(out, good);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_ok),
        cmocka_unit_test(test_rewrite_quotes_order_and_entities),
        cmocka_unit_test(test_rewrite_leaves_other_links_alone),
        cmocka_unit_test(test_rewrite_skip_prefix_is_a_prefix_not_a_substring),
        cmocka_unit_test(test_rewrite_pixel_goes_before_the_last_body_end),
        cmocka_unit_test(test_rewrite_survives_broken_markup),
        cmocka_unit_test(test_rewrite_url_with_a_space_stays_direct),
        cmocka_unit_test(test_safe_links_drop_other_schemes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
