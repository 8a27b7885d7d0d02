/*
 * repo_rekey.h - every encrypted column of the schema in one list, and the
 * two things done to all of them: moving each value under the current key
 * (`herald rekey`) and counting the values under each key id
 * (`herald check`). Uses store/pg and crypto/field.
 *
 * A column is rekeyed in batches, one transaction each: the next rows (in
 * primary-key order) whose value is under another key than the current one,
 * or still in the clear column that migration 0008 replaced, are locked
 * (FOR UPDATE: a writer of the same row waits for the batch, never the
 * other way round for long), resealed in C and written back in one
 * statement. What is already under the current key is never selected, so a
 * run stopped at any point is resumed by running it again, and rows written
 * meanwhile by the server are already under the current key.
 */
#ifndef HERALD_STORE_REPO_REKEY_H
#define HERALD_STORE_REPO_REKEY_H

#include "base/err.h"
#include "crypto/field.h"
#include "store/pg.h"

#include <stdbool.h>

/* One encrypted column. */
typedef struct rekey_column {
    const char *name;  /* "crm_client_preferences.email_enc" */
    const char *field; /* fe_encrypt's field (part of the authenticated data) */
    const char *clear; /* the clear column it replaces (migration 0008), or NULL */
    const char *first; /* below every primary key: where a run starts ("", the nil UUID;
                          ids are random, never nil) */
    const pg_stmt_t *todo, *batch, *write, *keys;
} rekey_column_t;

/* The encrypted columns: *n of them, static. */
const rekey_column_t *rekey_columns(int *n);

/* Rows of col that need work: under another key than kid, or in clear. */
int rekey_count(pg_pool_t *db, const rekey_column_t *col, const char *kid, long *out,
                hd_err_t *err);

/* Cursor and totals of one column's run. */
typedef struct rekey_progress {
    char after[256]; /* primary key of the last row looked at ("" = start) */
    long resealed;   /* values moved under the current key */
    long sealed;     /* clear values encrypted */
    long unreadable; /* values under a key kr lacks (left as they are) */
    bool done;
} rekey_progress_t;

/* One batch of at most limit rows after p->after: 0 (p updated; p->done
 * when no row is left), or -1 with err (nothing of this batch written; the
 * caller may try again: a deadlock with a writer is not an error of data). */
int rekey_batch(pg_pool_t *db, const fe_keyring_t *kr, const rekey_column_t *col, int limit,
                rekey_progress_t *p, hd_err_t *err);

/* Calls fn(col, kid, rows, arg) for each key id under which col holds
 * values; kid "" counts the values still in the clear column. 0, or -1. */
int rekey_keys(pg_pool_t *db, const rekey_column_t *col,
               void (*fn)(const rekey_column_t *col, const char *kid, long rows, void *arg),
               void *arg, hd_err_t *err);

#endif
