/* repo_rekey.c - the encrypted columns, rekeyed in batches and counted by
 * key id (see repo_rekey.h). */
#include "store/repo_rekey.h"
#include "base/buf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statements of one column, written out at compile time: T its table,
 * PK its primary key (of SQL type PKT), C the encrypted column, CLR the
 * clear value as text (NULL::text when there is none) and CLRSET what
 * empties it. A value is "to do" when it is under another key than $kid
 * (the id is the second dot-separated part of "v1.<kid>.<data>") or still
 * in clear. */
#define REKEY_STMTS(id, T, PK, PKT, C, CLR, CLRSET)                                                \
    static const pg_stmt_t id##_todo = {"rekey_" #id "_todo",                                      \
                                        "SELECT count(*) FROM " T " WHERE (" C                     \
                                        " IS NOT NULL AND split_part(" C                           \
                                        ", '.', 2) <> $1) OR " CLR " IS NOT NULL",                 \
                                        1, false};                                                 \
    static const pg_stmt_t id##_batch = {                                                          \
        "rekey_" #id "_batch",                                                                     \
        "SELECT " PK "::text, " C ", " CLR " FROM " T " WHERE " PK " > $1::" PKT " AND ((" C       \
        " IS NOT NULL AND split_part(" C ", '.', 2) <> $2) OR " CLR " IS NOT NULL) ORDER BY " PK   \
        " LIMIT $3::int FOR UPDATE",                                                               \
        3, false};                                                                                 \
    static const pg_stmt_t id##_write = {                                                          \
        "rekey_" #id "_write",                                                                     \
        "UPDATE " T " SET " C " = v.enc" CLRSET " FROM jsonb_to_recordset($1::jsonb) "             \
        "AS v(pk text, enc text) WHERE " T "." PK " = v.pk::" PKT,                                 \
        1, false};                                                                                 \
    static const pg_stmt_t id##_keys = {"rekey_" #id "_keys",                                      \
                                        "SELECT split_part(" C ", '.', 2), count(*) FROM " T       \
                                        " WHERE " C " IS NOT NULL GROUP BY 1 "                     \
                                        "UNION ALL SELECT '', count(*) FROM " T " WHERE " CLR      \
                                        " IS NOT NULL HAVING count(*) > 0",                        \
                                        0, false}

REKEY_STMTS(pref_name, "crm_client_preferences", "client_id", "text", "name_enc", "name",
            ", name = NULL");
REKEY_STMTS(pref_email, "crm_client_preferences", "client_id", "text", "email_enc", "NULL::text",
            "");
REKEY_STMTS(pref_phone, "crm_client_preferences", "client_id", "text", "phone_enc", "NULL::text",
            "");
REKEY_STMTS(comm_context, "crm_communications", "id", "uuid", "context_enc", "context::text",
            ", context = NULL");
REKEY_STMTS(comm_recipient, "crm_communications", "id", "uuid", "recipient_enc", "NULL::text", "");

#define NIL_UUID "00000000-0000-0000-0000-000000000000"
#define COLUMN(id, nm, fld, clr, first)                                                            \
    {                                                                                              \
        nm, fld, clr, first, &id##_todo, &id##_batch, &id##_write, &id##_keys                      \
    }

/* Every user of fe_encrypt that stores its result: grep fe_encrypt when
 * adding one (the preferences cache in Redis holds sealed copies too, for
 * 300 s at most: one that no longer decrypts is a miss). */
static const rekey_column_t columns[] = {
    COLUMN(pref_name, "crm_client_preferences.name_enc", "name", "name", ""),
    COLUMN(pref_email, "crm_client_preferences.email_enc", "email", NULL, ""),
    COLUMN(pref_phone, "crm_client_preferences.phone_enc", "phone", NULL, ""),
    COLUMN(comm_context, "crm_communications.context_enc", "context", "context", NIL_UUID),
    COLUMN(comm_recipient, "crm_communications.recipient_enc", "recipient", NULL, NIL_UUID),
};

const rekey_column_t *rekey_columns(int *n)
{
    *n = (int)(sizeof(columns) / sizeof(columns[0]));
    return columns;
}

int rekey_count(pg_pool_t *db, const rekey_column_t *col, const char *kid, long *out, hd_err_t *err)
{
    *out = 0;
    const char *p[] = {kid};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, col->todo, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    *out = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int rekey_batch(pg_pool_t *db, const fe_keyring_t *kr, const rekey_column_t *col, int limit,
                rekey_progress_t *p, hd_err_t *err)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {p->after[0] ? p->after : col->first, fe_keyring_current_id(kr), lim};
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, col->batch, params, err);
    int rc = r ? 0 : -1;
    int n = r ? PQntuples(r) : 0;
    long resealed = 0, sealed = 0, unreadable = 0;
    cJSON *rows = cJSON_CreateArray();
    for (int i = 0; rc == 0 && i < n; i++) {
        char *enc = NULL;
        hd_err_t why;
        int erc;
        if (!PQgetisnull(r, i, 1)) {
            erc = fe_reseal(kr, col->field, PQgetvalue(r, i, 1), &enc, &why);
            resealed += erc == 0;
        } else {
            /* in clear (before migration 0008): sealed now */
            const char *v = PQgetvalue(r, i, 2);
            erc = fe_encrypt(kr, col->field, v, strlen(v), &enc, &why);
            sealed += erc == 0;
        }
        if (erc != 0) {
            unreadable++; /* a key the keyring lacks: left for herald check to name */
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "pk", PQgetvalue(r, i, 0));
        cJSON_AddStringToObject(o, "enc", enc);
        cJSON_AddItemToArray(rows, o);
        free(enc);
    }
    if (rc == 0 && cJSON_GetArraySize(rows) > 0) {
        char *json = cJSON_PrintUnformatted(rows);
        const char *wp[] = {json};
        rc = pg_exec_ok(c, col->write, wp, err);
        free(json);
    }
    cJSON_Delete(rows);
    rc = pg_tx_end(db, c, rc, err);
    if (rc == 0) {
        if (n > 0)
            snprintf(p->after, sizeof(p->after), "%s", PQgetvalue(r, n - 1, 0));
        p->resealed += resealed;
        p->sealed += sealed;
        p->unreadable += unreadable;
        p->done = n < limit;
    }
    PQclear(r);
    return rc;
}

int rekey_keys(pg_pool_t *db, const rekey_column_t *col,
               void (*fn)(const rekey_column_t *col, const char *kid, long rows, void *arg),
               void *arg, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, col->keys, NULL, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        fn(col, PQgetvalue(r, i, 0), atol(PQgetvalue(r, i, 1)), arg);
    PQclear(r);
    return 0;
}
