/* repo_erase.c - GDPR erasure of one client (see repo_erase.h). */
#include "store/repo_erase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_prefs = {"erase_prefs",
                                   "DELETE FROM crm_client_preferences WHERE client_id = $1 "
                                   "RETURNING email_index, phone_index",
                                   1, false};
/* The blind indexes only: the address itself cannot be read back from
 * them, and the same address under another client id is still caught. */
static const pg_stmt_t st_suppress = {
    "erase_suppress",
    "WITH i AS (INSERT INTO crm_suppressions (channel, address_index, reason, source) "
    "SELECT v.ch, v.ix, 'opt_out', 'erasure' FROM (VALUES ('email', $1::text), ('sms', $2::text), "
    "('whatsapp', $2::text)) v(ch, ix) WHERE v.ix IS NOT NULL "
    "ON CONFLICT (channel, address_index) DO NOTHING RETURNING 1), "
    /* when the number last wrote to us: not needed once the client is gone */
    "d AS (DELETE FROM crm_inbound_contacts WHERE address_index = $2::text) "
    "SELECT count(*) FROM i",
    2, false};
/* Waiting messages: nobody holds them (the same rule as comms_cancel). */
static const pg_stmt_t st_cancel = {
    "erase_cancel",
    "WITH c AS (UPDATE crm_communications SET status = 'cancelled', cancelled_at = now(), "
    "updated_at = now() WHERE client_id = $1 AND status IN ('scheduled', 'queued') "
    "RETURNING id), d AS (DELETE FROM crm_jobs WHERE communication_id IN (SELECT id FROM c)) "
    "SELECT count(*) FROM c",
    1, false};
static const pg_stmt_t st_scrub = {
    "erase_scrub",
    "WITH c AS (UPDATE crm_communications SET context = '{}'::jsonb, context_enc = NULL, "
    "recipient_enc = NULL, tracked_links = NULL, erased_at = now(), updated_at = now() "
    "WHERE client_id = $1 AND erased_at IS NULL RETURNING id), "
    "l AS (UPDATE crm_delivery_logs SET message = NULL, details = '{}'::jsonb "
    "WHERE communication_id IN (SELECT id FROM crm_communications WHERE client_id = $1) "
    "AND (message IS NOT NULL OR details <> '{}'::jsonb)), "
    "j AS (UPDATE crm_jobs SET payload = payload - 'attachments' "
    "WHERE communication_id IN (SELECT id FROM c) AND payload ? 'attachments') "
    "SELECT count(*) FROM c",
    1, false};
static const pg_stmt_t st_audit = {
    "erase_audit",
    "INSERT INTO crm_audit_log (actor, action, target, details) VALUES ($1, 'client.erase', "
    "'client:' || $2, jsonb_build_object('communications', $3::bigint, 'cancelled', $4::bigint, "
    "'suppressed', $5::bigint))",
    5, false};

/* Runs st with params; *count is the first column of its one row. */
static int count_of(pg_conn_t *c, const pg_stmt_t *st, const char *const *p, long *count,
                    hd_err_t *err)
{
    PGresult *r = pg_exec(c, st, p, err);
    if (r == NULL)
        return -1;
    *count = PQntuples(r) == 1 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

static int erase_in(pg_conn_t *c, const char *client_id, const char *actor, erase_counts_t *out,
                    hd_err_t *err)
{
    const char *id[] = {client_id};
    PGresult *r = pg_exec(c, &st_prefs, id, err);
    if (r == NULL)
        return -1;
    bool had_prefs = PQntuples(r) == 1;
    int rc = 0;
    if (had_prefs) {
        const char *ix[] = {PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0),
                            PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1)};
        rc = count_of(c, &st_suppress, ix, &out->suppressed, err);
    }
    PQclear(r);
    if (rc == 0)
        rc = count_of(c, &st_cancel, id, &out->cancelled, err);
    if (rc == 0)
        rc = count_of(c, &st_scrub, id, &out->communications, err);
    if (rc != 0)
        return -1;
    if (!had_prefs && out->communications == 0)
        return ERASE_NOT_FOUND;
    char n[3][24];
    snprintf(n[0], sizeof(n[0]), "%ld", out->communications);
    snprintf(n[1], sizeof(n[1]), "%ld", out->cancelled);
    snprintf(n[2], sizeof(n[2]), "%ld", out->suppressed);
    const char *a[] = {actor, client_id, n[0], n[1], n[2]};
    return pg_exec_ok(c, &st_audit, a, err);
}

int erase_client(pg_pool_t *db, const char *client_id, const char *actor, erase_counts_t *out,
                 hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = erase_in(c, client_id, actor, out, err);
    /* not found: nothing changed; the rollback keeps it so */
    int end = pg_tx_end(db, c, rc, err);
    return rc == ERASE_NOT_FOUND ? ERASE_NOT_FOUND : end;
}
