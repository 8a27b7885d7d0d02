/* repo_ops.c - the operator's desk in SQL (see repo_ops.h). */
#include "store/repo_ops.h"
#include "store/repo_comms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* timestamps as the rest of the API writes them (repo_comms.c): UTC, ms, Z */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const pg_stmt_t st_queue = {
    "ops_queue",
    "SELECT jsonb_build_object("
    "'jobs', (SELECT coalesce(jsonb_agg(x ORDER BY x.kind, x.state), '[]') FROM ("
    "  SELECT kind, CASE WHEN lease_owner IS NOT NULL AND lease_expires_at >= now() "
    "  THEN 'in_flight' WHEN due_at <= now() THEN 'due' ELSE 'scheduled' END AS state, "
    "  count(*) AS n FROM crm_jobs GROUP BY 1, 2) x), "
    "'messages', (SELECT coalesce(jsonb_agg(x ORDER BY x.status, x.channel, x.urgency), '[]') "
    "  FROM (SELECT status, coalesce(channel, primary_channel) AS channel, urgency, count(*) AS n "
    "  FROM crm_communications WHERE status IN ('scheduled', 'queued', 'sending') "
    "  GROUP BY 1, 2, 3) x), "
    "'in_flight', (SELECT coalesce(jsonb_agg(x ORDER BY x.channel), '[]') FROM ("
    "  SELECT coalesce(c.channel, c.primary_channel) AS channel, count(*) AS n FROM crm_jobs j "
    "  JOIN crm_communications c ON c.id = j.communication_id WHERE j.kind = 'send' "
    "  AND j.lease_owner IS NOT NULL AND j.lease_expires_at >= now() GROUP BY 1) x), "
    "'oldest_due', (SELECT jsonb_build_object('job_id', id, 'kind', kind, 'communication_id', "
    "  communication_id, 'due_at', " TS(
        "due_at") ", 'waiting_s', round(extract(epoch FROM now() - "
                  "  due_at)::numeric, 3)) FROM crm_jobs WHERE (lease_owner IS NULL OR "
                  "lease_expires_at < "
                  "  now()) AND due_at <= now() ORDER BY due_at LIMIT 1), "
                  "'paused', (SELECT coalesce(jsonb_agg(jsonb_build_object('channel', channel, "
                  "'by', "
                  "  paused_by, 'reason', reason, 'at', " TS(
                      "paused_at") ") ORDER BY channel), '[]') "
                                   "  FROM crm_channel_pauses))::text",
    0, false};
static const pg_stmt_t st_providers = {
    "ops_providers",
    "SELECT coalesce(jsonb_agg(x ORDER BY x.provider), '[]')::text FROM ("
    "SELECT l.provider, count(*) AS attempts, count(*) FILTER (WHERE l.status <> 'sent') AS "
    "errors, round(count(*) FILTER (WHERE l.status <> 'sent')::numeric / count(*), 4) AS "
    "error_rate, (SELECT jsonb_build_object('at', " TS(
        "e.occurred_at") ", 'code', e.raw_code, "
                         "'category', e.category, 'message', left(e.message, 300)) FROM "
                         "crm_delivery_logs e "
                         "WHERE e.kind = 'attempt' AND e.provider = l.provider AND e.status <> "
                         "'sent' "
                         "AND e.occurred_at > now() - make_interval(mins => $1::int) "
                         "ORDER BY e.id DESC LIMIT 1) AS last_error "
                         "FROM crm_delivery_logs l WHERE l.kind = 'attempt' AND l.provider IS NOT "
                         "NULL "
                         "AND l.occurred_at > now() - make_interval(mins => $1::int) GROUP BY "
                         "l.provider) x",
    1, false};
static const pg_stmt_t st_why = {
    "ops_why",
    "SELECT coalesce(jsonb_agg(to_jsonb(x) - 'ord' ORDER BY x.ord DESC), '[]')::text FROM ("
    "SELECT c.id, c.message_type, c.urgency, c.status, coalesce(c.channel, c.primary_channel) "
    "AS channel, c.created_at AS ord, " TS(
        "c.created_at") " AS created_at, c.strategy, (SELECT coalesce(jsonb_agg(jsonb_build_object("
                        "'type', coalesce(l.event_type, 'attempt'), 'channel', l.channel, "
                        "'status', l.status, "
                        "'code', l.raw_code, 'message', left(l.message, 300), 'at', " TS(
                            "l.occurred_at") ") "
                                             "ORDER BY l.occurred_at, l.id), '[]') FROM "
                                             "crm_delivery_logs l "
                                             "WHERE l.communication_id = c.id) AS events "
                                             "FROM crm_communications c WHERE c.client_id = $1 "
                                             "ORDER BY c.created_at DESC "
                                             "LIMIT $2::int) x",
    2, false};
static const pg_stmt_t st_pauses = {
    "ops_pauses",
    "SELECT coalesce(jsonb_agg(jsonb_build_object('channel', channel, 'by', paused_by, "
    "'reason', reason, 'at', " TS("paused_at") ") ORDER BY channel), '[]')::text "
                                               "FROM crm_channel_pauses",
    0, false};
static const pg_stmt_t st_pause = {
    "ops_pause",
    "WITH p AS (INSERT INTO crm_channel_pauses (channel, paused_by, reason) VALUES ($1, $2, $3) "
    "ON CONFLICT (channel) DO NOTHING RETURNING channel), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) SELECT $2, "
    "'channel.pause', 'channel:' || channel, jsonb_build_object('reason', $3::text) FROM p) "
    "SELECT count(*) FROM p",
    3, false};
static const pg_stmt_t st_resume = {
    "ops_resume",
    "WITH p AS (DELETE FROM crm_channel_pauses WHERE channel = $1 RETURNING channel, paused_by, "
    "paused_at), a AS (INSERT INTO crm_audit_log (actor, action, target, details) SELECT $2, "
    "'channel.resume', 'channel:' || channel, jsonb_build_object('paused_by', paused_by, "
    "'paused_at', paused_at, 'reason', $3::text) FROM p) SELECT count(*) FROM p",
    3, false};
/* From the start of its chain, at the priority it was given. */
static const pg_stmt_t st_retry = {
    "ops_retry",
    "WITH c AS (UPDATE crm_communications SET status = 'queued', queued_at = now(), "
    "failed_at = NULL, updated_at = now() WHERE id = $1::uuid AND status = 'failed' "
    "RETURNING id, priority), "
    "j AS (INSERT INTO crm_jobs (communication_id, kind, priority, due_at, attempt, "
    "channel_index) SELECT id, 'send', priority, now(), 0, 0 FROM c), "
    "e AS (INSERT INTO crm_delivery_logs (communication_id, kind, event_type, status, message) "
    "SELECT id, 'event', 'retry_requested', 'queued', 'sent again from the start of its chain "
    "by ' || $2 FROM c), "
    "a AS (INSERT INTO crm_audit_log (actor, action, target, details) SELECT $2, "
    "'communication.retry', 'communication:' || id, '{}'::jsonb FROM c) "
    "SELECT (SELECT count(*) FROM c), (SELECT status FROM crm_communications WHERE id = $1::uuid)",
    2, false};

/* A job of a paused channel waits: no attempt, its message's status kept;
 * the first time, an event says why (the payload marks it, and resume
 * brings every marked job forward). */
static const pg_stmt_t st_hold = {
    "ops_hold",
    "WITH o AS (SELECT payload ? 'paused' AS was FROM crm_jobs WHERE id = $1::bigint "
    "AND lease_owner = $2), "
    "u AS (UPDATE crm_jobs SET due_at = now() + make_interval(secs => $3::float8), "
    "lease_owner = NULL, lease_expires_at = NULL, payload = payload || '{\"paused\": true}' "
    "WHERE id = $1::bigint AND lease_owner = $2 RETURNING communication_id), "
    "e AS (INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, status, "
    "message) SELECT communication_id, 'event', $4, 'paused', 'waiting', $5 FROM u "
    "WHERE NOT coalesce((SELECT was FROM o), false)) "
    "SELECT count(*) FROM u",
    5, false};
static const pg_stmt_t st_unhold = {
    "ops_unhold",
    "UPDATE crm_jobs SET due_at = now(), payload = payload - 'paused' "
    "WHERE kind = 'send' AND payload ? 'paused' AND lease_owner IS NULL",
    0, false};

int ops_hold(pg_pool_t *db, int64_t job_id, const char *owner, double wait_s, const char *channel,
             const char *why, hd_err_t *err)
{
    char id[24], w[32];
    snprintf(id, sizeof(id), "%lld", (long long)job_id);
    snprintf(w, sizeof(w), "%.3f", wait_s);
    const char *p[] = {id, owner, w, channel, why};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    int rc = pg_exec_ok(c, &st_hold, p, err);
    pg_pool_put(db, c);
    return rc;
}

int ops_unhold(pg_pool_t *db, hd_err_t *err)
{
    return pg_pool_exec_ok(db, &st_unhold, NULL, err);
}

/* Runs st and parses its one text column as JSON. */
static cJSON *json_of(pg_pool_t *db, const pg_stmt_t *st, const char *const *p, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return NULL;
    PGresult *r = pg_exec(c, st, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return NULL;
    cJSON *doc = PQntuples(r) == 1 ? cJSON_Parse(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    if (doc == NULL)
        hd_err_set(err, "%s: no JSON answer", st->name);
    return doc;
}

cJSON *ops_queue(pg_pool_t *db, hd_err_t *err)
{
    return json_of(db, &st_queue, NULL, err);
}

cJSON *ops_providers(pg_pool_t *db, int minutes, hd_err_t *err)
{
    char m[16];
    snprintf(m, sizeof(m), "%d", minutes);
    const char *p[] = {m};
    return json_of(db, &st_providers, p, err);
}

cJSON *ops_why(pg_pool_t *db, const char *client_id, int limit, hd_err_t *err)
{
    char l[16];
    snprintf(l, sizeof(l), "%d", limit);
    const char *p[] = {client_id, l};
    return json_of(db, &st_why, p, err);
}

cJSON *ops_pauses(pg_pool_t *db, hd_err_t *err)
{
    return json_of(db, &st_pauses, NULL, err);
}

int ops_pause(pg_pool_t *db, const char *channel, bool on, const char *actor, const char *reason,
              bool *changed, hd_err_t *err)
{
    const char *p[] = {channel, actor, reason};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, on ? &st_pause : &st_resume, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    *changed = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    return 0;
}

int ops_retry(pg_pool_t *db, const char *id, const char *actor, char status_out[16], hd_err_t *err)
{
    status_out[0] = '\0';
    if (!comms_valid_id(id))
        return 1;
    const char *p[] = {id, actor};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_retry, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    int rc;
    if (PQgetisnull(r, 0, 1)) {
        rc = 1;
    } else {
        snprintf(status_out, 16, "%s", PQgetvalue(r, 0, 1));
        rc = strcmp(PQgetvalue(r, 0, 0), "0") != 0 ? 0 : 2;
    }
    PQclear(r);
    return rc;
}
