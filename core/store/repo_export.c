/* repo_export.c - a client's data for a GDPR export (see repo_export.h). */
#include "store/repo_export.h"
#include "base/prefs_row.h"
#include "store/repo_prefs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_exists = {
    "export_exists",
    "SELECT EXISTS (SELECT 1 FROM crm_client_preferences WHERE client_id = $1) "
    "OR EXISTS (SELECT 1 FROM crm_communications WHERE client_id = $1)",
    1, false};
static const pg_stmt_t st_consent = {
    "export_consent",
    "SELECT coalesce(jsonb_agg(jsonb_build_object('at', at, 'actor', actor, 'action', action, "
    "'details', details) ORDER BY at, id), '[]'::jsonb)::text FROM crm_audit_log "
    "WHERE target = 'client:' || $1 AND action LIKE 'preferences.%'",
    1, false};
static const pg_stmt_t st_suppressions = {
    "export_suppressions",
    "SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.id), '[]'::jsonb)::text "
    "FROM crm_suppressions s JOIN crm_client_preferences p ON p.client_id = $1 "
    "AND ((s.channel = 'email' AND s.address_index = p.email_index) "
    "OR (s.channel IN ('sms', 'whatsapp') AND s.address_index = p.phone_index))",
    1, false};
/* when the client's number last wrote to us, per channel (no text is kept) */
static const pg_stmt_t st_inbound = {
    "export_inbound",
    "SELECT coalesce(jsonb_agg(jsonb_build_object('channel', k.channel, 'last_inbound_at', "
    "k.last_inbound_at, 'messages', k.messages) ORDER BY k.channel), '[]'::jsonb)::text "
    "FROM crm_inbound_contacts k JOIN crm_client_preferences p ON p.client_id = $1 "
    "AND k.address_index = p.phone_index",
    1, false};
#define LOGS(kind)                                                                                 \
    "(SELECT coalesce(jsonb_agg(to_jsonb(l) - 'communication_id' ORDER BY l.occurred_at, l.id), "  \
    "'[]'::jsonb) FROM crm_delivery_logs l WHERE l.communication_id = c.id AND l.kind = '" kind    \
    "')::text"
static const pg_stmt_t st_page = {
    "export_page",
    "SELECT c.id, c.created_at::text, (to_jsonb(c) - 'context_enc' - 'recipient_enc')::text, "
    "c.context_enc, c.recipient_enc, " LOGS("attempt") ", " LOGS(
        "event") " "
                 "FROM crm_communications c WHERE c.client_id = $1 AND ($2::timestamptz IS NULL "
                 "OR (c.created_at, c.id) > ($2::timestamptz, $3::uuid)) ORDER BY c.created_at, "
                 "c.id LIMIT "
                 "$4::int",
    4, false};

static cJSON *json_of(PGresult *r, int row, int col)
{
    cJSON *j = PQgetisnull(r, row, col) ? NULL : cJSON_Parse(PQgetvalue(r, row, col));
    return j ? j : cJSON_CreateNull();
}

static cJSON *one_json(pg_conn_t *c, const pg_stmt_t *st, const char *id, hd_err_t *err)
{
    const char *p[] = {id};
    PGresult *r = pg_exec(c, st, p, err);
    if (r == NULL)
        return NULL;
    cJSON *j = PQntuples(r) == 1 ? json_of(r, 0, 0) : cJSON_CreateArray();
    PQclear(r);
    return j;
}

static void add_text(cJSON *o, const char *k, const char *v)
{
    cJSON_AddItemToObject(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

static cJSON *prefs_json(const prefs_row_t *p)
{
    cJSON *o = cJSON_CreateObject();
    add_text(o, "name", p->name);
    add_text(o, "email", p->email);
    add_text(o, "phone", p->phone);
    add_text(o, "timezone", p->timezone);
    add_text(o, "locale", p->locale);
    cJSON *ch = cJSON_AddArrayToObject(o, "channels");
    for (int i = 0; i < p->nchannels; i++)
        cJSON_AddItemToArray(ch, cJSON_CreateString(p->channels[i]));
    cJSON *out = cJSON_AddArrayToObject(o, "opted_out");
    for (int i = 0; i < p->nopted_out; i++)
        cJSON_AddItemToArray(out, cJSON_CreateString(p->opted_out[i]));
    add_text(o, "quiet_hours_start", p->quiet_start[0] ? p->quiet_start : NULL);
    add_text(o, "quiet_hours_end", p->quiet_end[0] ? p->quiet_end : NULL);
    add_text(o, "digest_time", p->digest_time);
    cJSON *c = cJSON_AddObjectToObject(o, "consent");
    cJSON_AddBoolToObject(c, "given", p->consent_given);
    add_text(c, "at", p->consent_at[0] ? p->consent_at : NULL);
    add_text(c, "source", p->consent_source);
    add_text(o, "created_at", p->created_at);
    add_text(o, "updated_at", p->updated_at);
    return o;
}

int export_head(pg_pool_t *db, const fe_keyring_t *kr, const char *client_id, cJSON **out,
                hd_err_t *err)
{
    *out = NULL;
    prefs_row_t row;
    int prc = prefs_repo_get(db, kr, client_id, &row, err);
    if (prc != PREFS_OK && prc != PREFS_NOT_FOUND)
        return -1;
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL) {
        if (prc == PREFS_OK)
            prefs_row_free(&row);
        return -1;
    }
    const char *p[] = {client_id};
    PGresult *r = pg_exec(c, &st_exists, p, err);
    int rc = r == NULL ? -1 : strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? EXPORT_OK : EXPORT_NOT_FOUND;
    PQclear(r);
    cJSON *doc = NULL;
    if (rc == EXPORT_OK) {
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "client_id", client_id);
        cJSON_AddItemToObject(doc, "preferences",
                              prc == PREFS_OK ? prefs_json(&row) : cJSON_CreateNull());
        cJSON *consent = one_json(c, &st_consent, client_id, err);
        cJSON *supp = consent ? one_json(c, &st_suppressions, client_id, err) : NULL;
        cJSON *in = supp ? one_json(c, &st_inbound, client_id, err) : NULL;
        if (in == NULL) {
            cJSON_Delete(consent);
            cJSON_Delete(supp);
            cJSON_Delete(doc);
            doc = NULL;
            rc = -1;
        } else {
            cJSON_AddItemToObject(doc, "consent_history", consent);
            cJSON_AddItemToObject(doc, "suppressions", supp);
            cJSON_AddItemToObject(doc, "inbound_contacts", in);
        }
    }
    pg_pool_put(db, c);
    if (prc == PREFS_OK)
        prefs_row_free(&row);
    *out = doc;
    return rc;
}

/* The decrypted JSON of a sealed column, or null; -1 when it does not open. */
static int open_json(const fe_keyring_t *kr, const char *field, PGresult *r, int row, int col,
                     cJSON **out, hd_err_t *err)
{
    *out = NULL;
    if (PQgetisnull(r, row, col))
        return 0;
    char *pt = NULL;
    size_t n = 0;
    if (fe_decrypt(kr, field, PQgetvalue(r, row, col), &pt, &n, err) != 0)
        return hd_err_prefix(err, field);
    *out = cJSON_ParseWithLength(pt, n);
    free(pt);
    return 0;
}

int export_page(pg_pool_t *db, const fe_keyring_t *kr, const char *client_id, export_cursor_t *cur,
                int limit, cJSON **items, hd_err_t *err)
{
    *items = NULL;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[] = {client_id, cur->created_at[0] ? cur->created_at : NULL,
                       cur->created_at[0] ? cur->id : NULL, lim};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_page, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    int n = PQntuples(r), rc = n;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n && rc >= 0; i++) {
        cJSON *m = json_of(r, i, 2);
        cJSON *ctx = NULL, *rcpt = NULL;
        if (open_json(kr, "context", r, i, 3, &ctx, err) != 0 ||
            open_json(kr, "recipient", r, i, 4, &rcpt, err) != 0) {
            cJSON_Delete(m);
            cJSON_Delete(ctx);
            rc = -1;
            break;
        }
        if (ctx) /* the stored context is null when sealed */
            cJSON_ReplaceItemInObjectCaseSensitive(m, "context", ctx);
        cJSON_AddItemToObject(m, "recipient", rcpt ? rcpt : cJSON_CreateNull());
        cJSON_AddItemToObject(m, "attempts", json_of(r, i, 5));
        cJSON_AddItemToObject(m, "events", json_of(r, i, 6));
        cJSON_AddItemToArray(arr, m);
        snprintf(cur->id, sizeof(cur->id), "%s", PQgetvalue(r, i, 0));
        snprintf(cur->created_at, sizeof(cur->created_at), "%s", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    if (rc < 0) {
        cJSON_Delete(arr);
        return -1;
    }
    *items = arr;
    return rc;
}
