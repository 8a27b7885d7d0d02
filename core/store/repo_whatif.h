/*
 * repo_whatif.h - the stored requests a what-if replay runs again (issue 15
 * item 3): each message of a period as it was asked for (type, urgency,
 * client, its own recipient, the time it was accepted), read by keyset
 * pages so a long period is never held at once. Digest carriers (made by
 * the engine, not asked for) are left out. Uses store/pg.
 */
#ifndef HERALD_STORE_REPO_WHATIF_H
#define HERALD_STORE_REPO_WHATIF_H

#include "base/err.h"
#include "store/pg.h"

#include <stdint.h>

#define WHATIF_PAGE 2000

typedef struct whatif_row {
    char id[40];
    char *client_id, *message_type, *urgency;
    char *recipient_enc;   /* sealed, or NULL */
    double created_at;     /* Unix seconds: the "now" of the replayed decision */
    char created_text[48]; /* the keyset position */
} whatif_row_t;

/* The next page after (after_text, after_id) ("" for the first) of the
 * messages accepted in [from, to) (Unix seconds), oldest first: up to
 * WHATIF_PAGE rows into rows; *n of them. 0, or -1 with err. */
int whatif_page(pg_pool_t *db, int64_t from, int64_t to, const char *after_text,
                const char *after_id, whatif_row_t *rows, int *n, hd_err_t *err);
void whatif_rows_free(whatif_row_t *rows, int n);

#endif
