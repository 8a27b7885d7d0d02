/* repo_inbound.c - inbound STOP / START / HELP (see repo_inbound.h). */
#include "store/repo_inbound.h"
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One statement each: the rows that change, then their ledger rows.
 * updated_at moves forward even when the clock does not (the row's version,
 * store/repo_prefs.h), so the engine's next claim reads the new row. */
static const pg_stmt_t st_out = {
    "inbound_out",
    "WITH p AS (UPDATE crm_client_preferences SET "
    "  opted_out_channels = ARRAY(SELECT DISTINCT x FROM unnest(opted_out_channels || "
    "    ARRAY[$2::text]) x ORDER BY x), "
    "  updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond') "
    "  WHERE phone_index = $1 AND NOT ($2 = ANY (opted_out_channels)) RETURNING client_id), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) "
    "  SELECT 'recipient', 'preferences.inbound', 'client:' || client_id, "
    "  jsonb_build_object('keyword', $3::text, 'channel', $2::text, 'opted_out', true, "
    "  'source', $4::text) FROM p), "
    "s AS (INSERT INTO crm_suppressions (channel, address_index, reason, source) "
    "  VALUES ($2, $1, 'opt_out', $4) ON CONFLICT (channel, address_index) DO NOTHING) "
    "SELECT client_id FROM p",
    4, false};
static const pg_stmt_t st_in = {
    "inbound_in",
    "WITH p AS (UPDATE crm_client_preferences SET "
    "  opted_out_channels = array_remove(opted_out_channels, $2::text), "
    "  updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond') "
    "  WHERE phone_index = $1 AND $2 = ANY (opted_out_channels) RETURNING client_id), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) "
    "  SELECT 'recipient', 'preferences.inbound', 'client:' || client_id, "
    "  jsonb_build_object('keyword', $3::text, 'channel', $2::text, 'opted_out', false, "
    "  'source', $4::text) FROM p), "
    "d AS (DELETE FROM crm_suppressions WHERE channel = $2 AND address_index = $1 "
    "  AND reason IN ('opt_out', 'unsubscribe') RETURNING id, reason), "
    "da AS (INSERT INTO crm_audit_log (actor, action, target, details) "
    "  SELECT 'recipient', 'suppression.lift', 'suppression:' || id, jsonb_build_object("
    "  'channel', $2::text, 'address_index', $1::text, 'reason', reason, 'keyword', $3::text) "
    "  FROM d) "
    "SELECT client_id FROM p",
    4, false};
static const pg_stmt_t st_note = {
    "inbound_note",
    "INSERT INTO crm_audit_log (actor, action, target, details) "
    "SELECT 'recipient', 'preferences.inbound', 'client:' || client_id, "
    "jsonb_build_object('keyword', $3::text, 'channel', $2::text, 'source', $4::text) "
    "FROM crm_client_preferences WHERE phone_index = $1 RETURNING NULL::text",
    4, false};

static const pg_stmt_t st_touch = {
    "inbound_touch",
    "INSERT INTO crm_inbound_contacts AS k (channel, address_index, last_inbound_at, messages) "
    "VALUES ($1, $2, to_timestamp($3::bigint), 1) ON CONFLICT (channel, address_index) DO UPDATE "
    "SET last_inbound_at = greatest(k.last_inbound_at, excluded.last_inbound_at), "
    "messages = k.messages + 1",
    3, false};
static const pg_stmt_t st_closed = {
    "inbound_closed",
    "INSERT INTO crm_inbound_contacts AS k (channel, address_index, window_closed_at) "
    "VALUES ($1, $2, now()) ON CONFLICT (channel, address_index) DO UPDATE "
    "SET window_closed_at = now()",
    2, false};

int inbound_apply(pg_pool_t *db, const char *phone_index, const char *channel, inbound_act_t act,
                  const char *keyword, const char *source, char ***clients, int *n, hd_err_t *err)
{
    *clients = NULL;
    *n = 0;
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    const char *p[] = {phone_index, channel, keyword, source};
    const pg_stmt_t *st = act == INBOUND_OPT_OUT  ? &st_out
                          : act == INBOUND_OPT_IN ? &st_in
                                                  : &st_note;
    PGresult *r = pg_exec(c, st, p, err);
    int rc = r == NULL ? -1 : 0;
    if (rc == 0 && act != INBOUND_NOTE && PQntuples(r) > 0) {
        int rows = PQntuples(r);
        *clients = xcalloc((size_t)rows, sizeof(char *));
        for (int i = 0; i < rows; i++)
            (*clients)[i] = xstrdup(PQgetvalue(r, i, 0));
        *n = rows;
    }
    PQclear(r);
    pg_pool_put(db, c);
    return rc;
}

int inbound_touch(pg_pool_t *db, const char *channel, const char *phone_index, int64_t at,
                  hd_err_t *err)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)at);
    const char *p[] = {channel, phone_index, ts};
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    int rc = pg_exec_ok(c, &st_touch, p, err);
    pg_pool_put(db, c);
    return rc;
}

int inbound_window_closed(pg_pool_t *db, const char *channel, const char *phone_index,
                          hd_err_t *err)
{
    const char *p[] = {channel, phone_index};
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    int rc = pg_exec_ok(c, &st_closed, p, err);
    pg_pool_put(db, c);
    return rc;
}
