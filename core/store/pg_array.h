/*
 * pg_array.h - PostgreSQL array literals built element by element, for the
 * statements that take many rows at once (= ANY($1), unnest($1::text[])).
 * Every element is quoted ("" with \\ and \" escaped) so any text goes
 * through as a value; NULL stays NULL. The literal is sent as a parameter,
 * never spliced into SQL.
 */
#ifndef HERALD_STORE_PG_ARRAY_H
#define HERALD_STORE_PG_ARRAY_H

#include "base/buf.h"

/* Appends one element (s NULL: SQL NULL). */
void pg_arr_add(buf_t *b, const char *s);
/* Appends one integer element, formatted with fmt ("%lld"). */
void pg_arr_addf(buf_t *b, const char *fmt, long long v);
/* Closes the literal ("{}" when empty) and hands its text over (caller frees). */
char *pg_arr_end(buf_t *b);

#endif
