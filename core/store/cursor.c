/* cursor.c - see cursor.h. */
#include "store/cursor.h"
#include "base/buf.h"
#include "crypto/codec.h"
#include "store/repo_comms.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *cursor_encode(const char *created_us, const char *id)
{
    buf_t raw;
    buf_init(&raw);
    buf_printf(&raw, "%s,%s", created_us, id);
    char *c = b64url_encode((const uint8_t *)raw.data, raw.len);
    buf_free(&raw);
    return c;
}

int cursor_decode(const char *cursor, char **created_us, char **id, hd_err_t *err)
{
    *created_us = *id = NULL;
    uint8_t *raw = NULL;
    size_t n = 0;
    if (b64url_decode(cursor, strlen(cursor), &raw, &n) != 0 || n > 80) {
        free(raw);
        return hd_err_set(err, "cursor: not a cursor from a previous page");
    }
    char *comma = memchr(raw, ',', n);
    /* microseconds since 1970: at most 16 digits (until the year 2286) */
    size_t digits = comma ? (size_t)(comma - (char *)raw) : 0;
    if (comma == NULL || !comms_valid_id(comma + 1) || digits == 0 || digits > 16 ||
        strspn((char *)raw, "0123456789") != digits) {
        free(raw);
        return hd_err_set(err, "cursor: not a cursor from a previous page");
    }
    *comma = '\0';
    *created_us = xstrdup((char *)raw);
    *id = xstrdup(comma + 1);
    free(raw);
    return 0;
}
