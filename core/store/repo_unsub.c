/* repo_unsub.c - the store side of unsubscribe links (see repo_unsub.h). */
#include "store/repo_unsub.h"

#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_find = {
    "unsub_find",
    "SELECT c.client_id, p.email_index IS NOT NULL, p.phone_index IS NOT NULL, "
    "coalesce('email' = ANY (p.opted_out_channels), false), "
    "coalesce('sms' = ANY (p.opted_out_channels), false), "
    "coalesce('whatsapp' = ANY (p.opted_out_channels), false) "
    "FROM crm_communications c LEFT JOIN crm_client_preferences p ON p.client_id = c.client_id "
    "WHERE c.id = $1::uuid",
    1, false};

/* One statement, so one transaction: the preferences (only when a channel is
 * new to the list, so a replay writes nothing), then the ledger row and the
 * message's event for that change alone; the client's stored addresses on
 * those channels go on the suppression list (reason unsubscribe; an entry
 * already there keeps its reason). updated_at moves forward even when
 * the clock does not (the row's version, store/repo_prefs.h). */
static const pg_stmt_t st_record = {
    "unsub_record",
    "WITH ch AS (SELECT string_to_array($2, ',')::text[] AS a), "
    "p AS (INSERT INTO crm_client_preferences AS cp (client_id, opted_out_channels) "
    "  SELECT $1, ch.a FROM ch "
    "  ON CONFLICT (client_id) DO UPDATE SET "
    "  opted_out_channels = ARRAY(SELECT DISTINCT x FROM unnest(cp.opted_out_channels || "
    "    EXCLUDED.opted_out_channels) x ORDER BY x), "
    "  updated_at = greatest(clock_timestamp(), cp.updated_at + interval '1 microsecond') "
    "  WHERE NOT cp.opted_out_channels @> EXCLUDED.opted_out_channels "
    "  RETURNING cp.client_id), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) "
    "  SELECT 'recipient', 'preferences.unsubscribe', 'client:' || p.client_id, "
    "  jsonb_build_object('channels', to_jsonb(ch.a), 'source', $3::text, "
    "  'communication_id', $4::text) FROM p, ch), "
    "e AS (INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, status, "
    "  provider, message, details) "
    "  SELECT $4::uuid, 'event', 'email', 'unsubscribe', 'unsubscribed', 'unsubscribe', "
    "  'the recipient unsubscribed from ' || array_to_string(ch.a, ', ') || ' (' || $3 || ')', "
    "  jsonb_build_object('channels', to_jsonb(ch.a), 'source', $3::text) FROM p, ch "
    "  WHERE EXISTS (SELECT 1 FROM crm_communications WHERE id = $4::uuid)), "
    "s AS (INSERT INTO crm_suppressions (channel, address_index, reason, source, "
    "  communication_id) SELECT x, CASE WHEN x = 'email' THEN cp.email_index "
    "  ELSE cp.phone_index END, 'unsubscribe', $3, $4::uuid "
    "  FROM crm_client_preferences cp, ch, unnest(ch.a) x WHERE cp.client_id = $1 "
    "  AND (CASE WHEN x = 'email' THEN cp.email_index ELSE cp.phone_index END) IS NOT NULL "
    "  ON CONFLICT (channel, address_index) DO NOTHING) "
    "SELECT count(*) FROM p",
    4, false};

static bool is_true(const PGresult *r, int col)
{
    return strcmp(PQgetvalue(r, 0, col), "t") == 0;
}

int unsub_find(pg_pool_t *db, const char *comm_id, unsub_target_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    const char *p[] = {comm_id};
    PGresult *r = pg_exec(c, &st_find, p, err);
    int rc = r == NULL ? -1 : PQntuples(r) > 0;
    if (rc == 1) {
        const char *id = PQgetvalue(r, 0, 0);
        size_t n = strlen(id);
        if (n >= sizeof(out->client_id))
            n = sizeof(out->client_id) - 1;
        memcpy(out->client_id, id, n);
        out->has_email = is_true(r, 1);
        out->has_phone = is_true(r, 2);
        out->opted_out_email = is_true(r, 3);
        out->opted_out_sms = is_true(r, 4);
        out->opted_out_whatsapp = is_true(r, 5);
    }
    PQclear(r);
    pg_pool_put(db, c);
    return rc;
}

int unsub_record(pg_pool_t *db, const char *client_id, const char *channels, const char *source,
                 const char *comm_id, bool *changed, hd_err_t *err)
{
    *changed = false;
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    const char *p[] = {client_id, channels, source, comm_id};
    PGresult *r = pg_exec(c, &st_record, p, err);
    int rc = r == NULL ? -1 : 0;
    if (rc == 0)
        *changed = strtol(PQgetvalue(r, 0, 0), NULL, 10) > 0;
    PQclear(r);
    pg_pool_put(db, c);
    return rc;
}
