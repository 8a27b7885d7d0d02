/*
 * addr.c - address, header-value, phone and channel checks (see addr.h).
 * Uses base/err only, so every layer (http acceptance, the MIME builder,
 * the transports) applies the same rules.
 */
#include "base/addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool addr_is_atext(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

int addr_check_header_value(const char *field, const char *value, size_t len, hd_err_t *err)
{
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '\r' || value[i] == '\n')
            return hd_err_set(err, "%s: contains a line break (header injection refused)", field);
        if (value[i] == '\0')
            return hd_err_set(err, "%s: contains a NUL byte (header injection refused)", field);
    }
    return 0;
}

const char *addr_domain_problem(const char *d, size_t n)
{
    if (n == 0)
        return "empty domain";
    if (n > 253)
        return "domain longer than 253 characters";
    size_t label = 0;
    int dots = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || d[i] == '.') {
            if (label == 0)
                return "empty domain label";
            if (label > 63)
                return "domain label longer than 63 characters";
            if (d[i - 1] == '-' || d[i - label] == '-')
                return "domain label starts or ends with '-'";
            label = 0;
            dots += i < n;
            continue;
        }
        if (!is_alnum((unsigned char)d[i]) && d[i] != '-')
            return "domain holds a character other than letters, digits, '-' and '.'";
        label++;
    }
    if (dots == 0 && !(n == 9 && strncasecmp(d, "localhost", 9) == 0))
        return "domain has no dot";
    return NULL;
}

int addr_check_email(const char *addr, hd_err_t *err)
{
    const char *why = NULL;
    if (addr == NULL || *addr == '\0')
        return hd_err_set(err, "not an email address (empty)");
    size_t n = strlen(addr);
    if (n > 254)
        return hd_err_set(err, "not an email address (longer than 254 characters)");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c <= 0x20 || c >= 0x7f)
            return hd_err_set(err, "not an email address (space, control or non-ASCII byte)");
    }
    const char *at = strchr(addr, '@');
    if (at == NULL)
        return hd_err_set(err, "not an email address (no '@')");
    if (strchr(at + 1, '@') != NULL)
        return hd_err_set(err, "not an email address (more than one '@')");
    size_t local = (size_t)(at - addr);
    if (local == 0)
        return hd_err_set(err, "not an email address (empty local part)");
    if (local > 64)
        return hd_err_set(err, "not an email address (local part longer than 64 characters)");
    /* dot-atom: usable unquoted in both "MAIL FROM:<...>" and headers */
    for (size_t i = 0; i < local; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c == '.') {
            if (i == 0 || i == local - 1 || addr[i + 1] == '.')
                return hd_err_set(err, "not an email address (misplaced '.' in the local part)");
        } else if (!addr_is_atext(c)) {
            return hd_err_set(err, "not an email address ('%c' in the local part)", c);
        }
    }
    why = addr_domain_problem(at + 1, n - local - 1);
    if (why != NULL)
        return hd_err_set(err, "not an email address (%s)", why);
    return 0;
}

bool addr_is_e164(const char *p)
{
    /* no country code starts with 0 */
    if (p == NULL || p[0] != '+' || p[1] < '1' || p[1] > '9')
        return false;
    size_t n = strlen(p + 1);
    return n >= 8 && n <= 15 && strspn(p + 1, "0123456789") == n;
}

bool addr_is_channel(const char *s)
{
    return s != NULL &&
           (strcmp(s, "email") == 0 || strcmp(s, "sms") == 0 || strcmp(s, "whatsapp") == 0);
}

/* Whether the n bytes at s look like an address: an email's '@' (maybe
 * percent-encoded) or a phone number's digits. */
static bool looks_like_address(const char *s, size_t n)
{
    size_t digits = 0;
    bool phone_chars = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@' || (i + 2 < n && s[i] == '%' && s[i + 1] == '4' && s[i + 2] == '0'))
            return true;
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (!strchr("+-.() %2Bb", s[i])) /* %2B is '+', %20 a space */
            phone_chars = false;
    }
    return phone_chars && digits >= 7;
}

char *addr_mask_path(const char *path)
{
    size_t n = strlen(path), cap = n + 1, len = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (size_t at = 0; at <= n;) {
        size_t seg = strcspn(path + at, "/");
        char masked[48];
        const char *piece = path + at;
        size_t plen = seg;
        if (seg > 0 && looks_like_address(path + at, seg)) {
            plen = (size_t)snprintf(masked, sizeof(masked), "{address: %zu bytes}", seg);
            piece = masked;
        }
        if (len + plen + 2 > cap) {
            cap = (len + plen + 2) * 2;
            char *grown = realloc(out, cap);
            if (grown == NULL) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, piece, plen);
        len += plen;
        at += seg;
        if (at < n)
            out[len++] = '/';
        at++;
    }
    out[len] = '\0';
    return out;
}
