/*
 * cursor.h - the opaque cursor of a history page (GET
 * /api/crm/communications?cursor=): base64url("<created_at µs>,<id>") of the
 * last item shown. Pure, so tests/fuzz/fuzz_query.c reaches it.
 */
#ifndef HERALD_STORE_CURSOR_H
#define HERALD_STORE_CURSOR_H

#include "base/err.h"

/* The cursor after the row created at created_us (decimal microseconds since
 * 1970) with id. Caller frees. */
char *cursor_encode(const char *created_us, const char *id);

/* Reads a cursor: 0 with *created_us (1 to 16 decimal digits, so the
 * database is never handed a time it cannot represent) and *id (a UUID's
 * shape), both caller frees; or -1 with err "cursor: not a cursor from a
 * previous page" and both NULL. */
int cursor_decode(const char *cursor, char **created_us, char **id, hd_err_t *err);

#endif
