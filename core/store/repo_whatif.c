/* repo_whatif.c - stored requests for a what-if replay (see repo_whatif.h). */
#include "store/repo_whatif.h"
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_page = {
    "whatif_page",
    "SELECT id, client_id, message_type, urgency, extract(epoch FROM created_at)::float8, "
    "recipient_enc, created_at::text FROM crm_communications "
    "WHERE created_at >= to_timestamp($1::float8) AND created_at < to_timestamp($2::float8) "
    "AND message_type <> 'digest' "
    "AND ($3::text = '' OR (created_at, id) > ($3::timestamptz, $4::uuid)) "
    "ORDER BY created_at, id LIMIT $5::int",
    5, false};

int whatif_page(pg_pool_t *db, int64_t from, int64_t to, const char *after_text,
                const char *after_id, whatif_row_t *rows, int *n, hd_err_t *err)
{
    *n = 0;
    char f[32], t[32], lim[16];
    snprintf(f, sizeof(f), "%lld", (long long)from);
    snprintf(t, sizeof(t), "%lld", (long long)to);
    snprintf(lim, sizeof(lim), "%d", WHATIF_PAGE);
    const char *p[] = {f, t, after_text, after_text[0] ? after_id : NULL, lim};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_page, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        whatif_row_t *w = &rows[i];
        memset(w, 0, sizeof(*w));
        snprintf(w->id, sizeof(w->id), "%s", PQgetvalue(r, i, 0));
        w->client_id = xstrdup(PQgetvalue(r, i, 1));
        w->message_type = xstrdup(PQgetvalue(r, i, 2));
        w->urgency = xstrdup(PQgetvalue(r, i, 3));
        w->created_at = strtod(PQgetvalue(r, i, 4), NULL);
        w->recipient_enc = PQgetisnull(r, i, 5) ? NULL : xstrdup(PQgetvalue(r, i, 5));
        snprintf(w->created_text, sizeof(w->created_text), "%s", PQgetvalue(r, i, 6));
    }
    *n = PQntuples(r);
    PQclear(r);
    return 0;
}

void whatif_rows_free(whatif_row_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].client_id);
        free(rows[i].message_type);
        free(rows[i].urgency);
        free(rows[i].recipient_enc);
    }
}
