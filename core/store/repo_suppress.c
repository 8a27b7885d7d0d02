/* repo_suppress.c - the suppression list (see repo_suppress.h). */
#include "store/repo_suppress.h"
#include "store/pg_array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_facts = {
    "supp_facts",
    "SELECT 's', channel, reason FROM crm_suppressions WHERE (channel = 'email' AND "
    "address_index = $1) OR (channel IN ('sms', 'whatsapp') AND address_index = $2) "
    "UNION ALL SELECT 'i', channel, floor(extract(epoch FROM last_inbound_at))::bigint::text "
    "FROM crm_inbound_contacts WHERE channel IN ('sms', 'whatsapp') AND address_index = $2 "
    "AND last_inbound_at IS NOT NULL "
    "UNION ALL SELECT 'w', channel, floor(extract(epoch FROM window_closed_at))::bigint::text "
    "FROM crm_inbound_contacts WHERE channel IN ('sms', 'whatsapp') AND address_index = $2 "
    "AND window_closed_at IS NOT NULL",
    2, true};
/* As st_facts over arrays (= ANY keeps the index lookups); each row names
 * the index it matched, which the caller maps back to its recipients. The
 * inbound contacts are keyed (channel, address_index): naming their two
 * channels (the table's CHECK) makes the lookups use that key instead of
 * reading the table. */
static const pg_stmt_t st_facts_many = {
    "supp_facts_many",
    "SELECT 's', channel, address_index, reason FROM crm_suppressions WHERE "
    "(channel = 'email' AND address_index = ANY($1::text[])) OR "
    "(channel IN ('sms', 'whatsapp') AND address_index = ANY($2::text[])) "
    "UNION ALL SELECT 'i', channel, address_index, "
    "floor(extract(epoch FROM last_inbound_at))::bigint::text FROM crm_inbound_contacts "
    "WHERE channel IN ('sms', 'whatsapp') AND address_index = ANY($2::text[]) "
    "AND last_inbound_at IS NOT NULL "
    "UNION ALL SELECT 'w', channel, address_index, "
    "floor(extract(epoch FROM window_closed_at))::bigint::text FROM crm_inbound_contacts "
    "WHERE channel IN ('sms', 'whatsapp') AND address_index = ANY($2::text[]) "
    "AND window_closed_at IS NOT NULL",
    2, true};
static const pg_stmt_t st_add = {
    "supp_add",
    "WITH ins AS (INSERT INTO crm_suppressions (channel, address_index, reason, source) "
    "  VALUES ($1, $2, $3, $4) ON CONFLICT (channel, address_index) DO NOTHING RETURNING id), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) "
    "  SELECT $5, 'suppression.add', 'suppression:' || id, jsonb_build_object('channel', $1::text, "
    "  'address_index', $2::text, 'reason', $3::text, 'source', $4::text) FROM ins) "
    "SELECT id, true FROM ins UNION ALL SELECT id, false FROM crm_suppressions "
    "WHERE channel = $1 AND address_index = $2 AND NOT EXISTS (SELECT 1 FROM ins)",
    5, false};
static const pg_stmt_t st_list = {
    "supp_list",
    "SELECT id, channel, address_index, reason, source, communication_id, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM crm_suppressions WHERE ($1::text IS NULL OR channel = $1) "
    "AND ($3::bigint <= 0 OR id < $3::bigint) ORDER BY id DESC LIMIT $2::int",
    3, false};
static const pg_stmt_t st_lift = {
    "supp_lift",
    "WITH d AS (DELETE FROM crm_suppressions WHERE id = $1::bigint "
    "  RETURNING id, channel, address_index, reason), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) "
    "  SELECT $2, 'suppression.lift', 'suppression:' || id, jsonb_build_object('channel', "
    "  channel, 'address_index', address_index, 'reason', reason) FROM d) "
    "SELECT count(*) FROM d",
    2, false};

static PGresult *run(pg_pool_t *db, const pg_stmt_t *st, const char *const *p, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return NULL;
    PGresult *r = pg_exec(c, st, p, err);
    pg_pool_put(db, c);
    return r;
}

int supp_facts(pg_pool_t *db, const char *email_index, const char *phone_index, cJSON *out,
               cJSON *inbound, cJSON *closed, hd_err_t *err)
{
    if (email_index == NULL && phone_index == NULL)
        return 0;
    const char *p[] = {email_index, phone_index};
    PGresult *r = run(db, &st_facts, p, err);
    if (r == NULL)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        char kind = PQgetvalue(r, i, 0)[0];
        if (kind == 's')
            cJSON_AddStringToObject(out, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        else
            cJSON_AddNumberToObject(kind == 'i' ? inbound : closed, PQgetvalue(r, i, 1),
                                    strtod(PQgetvalue(r, i, 2), NULL));
    }
    PQclear(r);
    return 0;
}

int supp_facts_many(pg_pool_t *db, int n, const char *const *email_index,
                    const char *const *phone_index, cJSON **out, cJSON **inbound, cJSON **closed,
                    hd_err_t *err)
{
    buf_t e, p;
    buf_init(&e);
    buf_init(&p);
    for (int i = 0; i < n; i++) {
        pg_arr_add(&e, email_index[i]);
        pg_arr_add(&p, phone_index[i]);
    }
    char *ea = pg_arr_end(&e), *pa = pg_arr_end(&p);
    const char *params[] = {ea, pa};
    PGresult *r = run(db, &st_facts_many, params, err);
    free(ea);
    free(pa);
    if (r == NULL)
        return -1;
    for (int k = 0; k < PQntuples(r); k++) {
        char kind = PQgetvalue(r, k, 0)[0];
        const char *ch = PQgetvalue(r, k, 1), *idx = PQgetvalue(r, k, 2), *v = PQgetvalue(r, k, 3);
        /* suppressions on email are by the email index; the rest by the phone's */
        bool email = kind == 's' && strcmp(ch, "email") == 0;
        for (int i = 0; i < n; i++) {
            const char *mine = email ? email_index[i] : phone_index[i];
            if (mine == NULL || strcmp(mine, idx) != 0)
                continue;
            cJSON *o = kind == 's' ? out[i] : kind == 'i' ? inbound[i] : closed[i];
            cJSON_DeleteItemFromObjectCaseSensitive(o, ch);
            if (kind == 's')
                cJSON_AddStringToObject(o, ch, v);
            else
                cJSON_AddNumberToObject(o, ch, strtod(v, NULL));
        }
    }
    PQclear(r);
    return 0;
}

int supp_add(pg_pool_t *db, const char *channel, const char *address_index, const char *reason,
             const char *source, const char *actor, int64_t *id, bool *created, hd_err_t *err)
{
    const char *p[] = {channel, address_index, reason, source, actor};
    PGresult *r = run(db, &st_add, p, err);
    if (r == NULL)
        return -1;
    int rc = PQntuples(r) > 0 ? 0 : hd_err_set(err, "the suppression was neither added nor found");
    if (rc == 0) {
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *created = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    }
    PQclear(r);
    return rc;
}

cJSON *supp_list(pg_pool_t *db, const char *channel, int limit, int64_t before_id, hd_err_t *err)
{
    char lim[16], before[32];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(before, sizeof(before), "%" PRId64, before_id);
    const char *p[] = {channel, lim, before};
    PGresult *r = run(db, &st_list, p, err);
    if (r == NULL)
        return NULL;
    cJSON *items = cJSON_CreateArray();
    static const char *const names[] = {"id",     "channel",          "address_index", "reason",
                                        "source", "communication_id", "created_at"};
    for (int i = 0; i < PQntuples(r); i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)strtoll(PQgetvalue(r, i, 0), NULL, 10));
        for (int k = 1; k < 7; k++) {
            if (PQgetisnull(r, i, k))
                cJSON_AddNullToObject(o, names[k]);
            else
                cJSON_AddStringToObject(o, names[k], PQgetvalue(r, i, k));
        }
        cJSON_AddItemToArray(items, o);
    }
    PQclear(r);
    return items;
}

int supp_lift(pg_pool_t *db, int64_t id, const char *actor, hd_err_t *err)
{
    char ids[32];
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    const char *p[] = {ids, actor};
    PGresult *r = run(db, &st_lift, p, err);
    if (r == NULL)
        return -1;
    int rc = strtol(PQgetvalue(r, 0, 0), NULL, 10) > 0;
    PQclear(r);
    return rc;
}
