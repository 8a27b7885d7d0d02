/* repo_receipts.c - delivery receipts (see repo_receipts.h). */
#include "store/repo_receipts.h"
#include "store/repo_jobs.h"
#include "base/buf.h"
#include "store/pg_array.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_find = {
    "receipts_find",
    "WITH a AS (SELECT communication_id, channel, attempt FROM crm_delivery_logs "
    "WHERE kind = 'attempt' AND provider_message_id = $1 ORDER BY id DESC LIMIT 1) "
    "SELECT c.id, c.status, coalesce(c.channel, ''), coalesce(a.channel, $3), "
    "coalesce(a.attempt, 1), coalesce(array_position(array_prepend(c.primary_channel, "
    "c.fallback_channels), coalesce(a.channel, $3)), 0) - 1, "
    "cardinality(c.fallback_channels) + 1, c.client_id, c.plan_id, c.message_type, "
    /* is the receipt about the latest attempt? (a failure of an attempt that
     * was already replaced must not send again) */
    "(SELECT l.provider_message_id FROM crm_delivery_logs l WHERE l.communication_id = c.id "
    "AND l.kind = 'attempt' ORDER BY l.id DESC LIMIT 1) IS NOT DISTINCT FROM $1, "
    "extract(epoch FROM c.sent_at), a.communication_id IS NOT NULL, "
    "EXISTS (SELECT 1 FROM crm_jobs WHERE communication_id = c.id AND kind = 'send'), c.batch, "
    "c.recipient_enc FROM crm_communications c LEFT JOIN a ON a.communication_id = c.id "
    "WHERE c.id = coalesce((SELECT communication_id FROM a), $2::uuid)",
    3, false};

/* The target in row's columns from col on (the columns of st_find). */
static void read_target(const PGresult *res, int row, int col, receipt_target_t *t)
{
    const char *v[16];
    for (int k = 0; k < 16; k++)
        v[k] = PQgetisnull(res, row, col + k) ? NULL : PQgetvalue(res, row, col + k);
    t->found = true;
    snprintf(t->comm_id, sizeof(t->comm_id), "%s", v[0]);
    snprintf(t->status, sizeof(t->status), "%s", v[1]);
    snprintf(t->channel, sizeof(t->channel), "%s", v[2]);
    t->attempt = atoi(v[4]);
    t->channel_index = atoi(v[5]);
    t->chain_len = atoi(v[6]);
    snprintf(t->job.comm_id, sizeof(t->job.comm_id), "%s", t->comm_id);
    t->job.client_id = xstrdup(v[7]);
    t->job.plan_id = v[8] ? xstrdup(v[8]) : NULL;
    t->job.message_type = xstrdup(v[9]);
    t->current = v[10][0] == 't';
    t->sent_at = v[11] ? strtod(v[11], NULL) : 0;
    t->by_provider_id = v[12][0] == 't';
    t->send_pending = v[13][0] == 't';
    t->batch = v[14][0] == 't';
    t->job.recipient_enc = v[15] ? xstrdup(v[15]) : NULL;
}

int receipts_find(pg_pool_t *db, const receipt_t *r, receipt_target_t *t, hd_err_t *err)
{
    memset(t, 0, sizeof(*t));
    const char *hint = r->comm_hint && comms_valid_id(r->comm_hint) ? r->comm_hint : NULL;
    const char *p[] = {r->provider_id, hint, r->channel};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *res = pg_exec(c, &st_find, p, err);
    pg_pool_put(db, c);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1)
        read_target(res, 0, 0, t);
    PQclear(res);
    return 0;
}

void receipt_target_free(receipt_target_t *t)
{
    comm_job_free(&t->job);
}

static const pg_stmt_t st_event = {
    "receipts_event",
    "INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, status, "
    "provider, provider_message_id, raw_code, message, dedup_key, details, occurred_at, "
    "category) VALUES ($1::uuid, 'event', $2, $3, $4, $5, $6, $7, $8, $9, "
    "coalesce($10::jsonb, '{}'), coalesce(to_timestamp($11::float8), now()), $12) "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING id",
    12, false};

/* The forward moves; $2 is the provider's time (NULL: now). */
static const pg_stmt_t st_to_sent = {
    "receipts_to_sent",
    "UPDATE crm_communications SET status = 'sent', "
    "sent_at = coalesce(sent_at, to_timestamp($2::float8), now()), updated_at = now() "
    "WHERE id = $1::uuid AND status IN ('scheduled', 'queued', 'sending')",
    2, false};
static const pg_stmt_t st_to_delivered = {
    "receipts_to_delivered",
    "UPDATE crm_communications SET status = 'delivered', "
    "delivered_at = coalesce(delivered_at, to_timestamp($2::float8), now()), "
    "sent_at = coalesce(sent_at, to_timestamp($2::float8), now()), updated_at = now() "
    "WHERE id = $1::uuid AND status IN ('sending', 'sent')",
    2, false};
static const pg_stmt_t st_to_opened = {
    "receipts_to_opened",
    "UPDATE crm_communications SET status = 'opened', "
    "opened_at = coalesce(opened_at, to_timestamp($2::float8), now()), "
    "delivered_at = coalesce(delivered_at, to_timestamp($2::float8), now()), "
    "sent_at = coalesce(sent_at, to_timestamp($2::float8), now()), updated_at = now() "
    "WHERE id = $1::uuid AND status IN ('sending', 'sent', 'delivered')",
    2, false};
/* The client has it: a resend a failed receipt queued, or a no-receipt
 * timer, is no longer needed. */
static const pg_stmt_t st_drop_resend = {
    "receipts_drop_resend",
    "DELETE FROM crm_jobs WHERE communication_id = $1::uuid "
    "AND (payload ? 'resend' OR kind = 'no_receipt') AND lease_owner IS NULL",
    1, false};
static const pg_stmt_t st_busy = {
    "receipts_busy",
    "SELECT 1 FROM crm_jobs WHERE communication_id = $1::uuid AND kind = 'send' FOR UPDATE", 1,
    false};
static const pg_stmt_t st_failure = {
    "receipts_failure",
    "UPDATE crm_communications SET last_error_category = $2, last_error_code = $3, "
    "updated_at = now() WHERE id = $1::uuid AND status = 'sent' AND channel = $4 RETURNING 1",
    4, false};
/* One send job per message (migration 0005): a send job made meanwhile by a
 * no-receipt timer wins, and this receipt waits. The message's no-receipt
 * timers go: the resend, once sent, arms its own. */
static const pg_stmt_t st_resend = {
    "receipts_resend",
    "WITH t AS (DELETE FROM crm_jobs WHERE communication_id = $1::uuid AND kind = 'no_receipt' "
    "AND lease_owner IS NULL) "
    "INSERT INTO crm_jobs (communication_id, kind, priority, due_at, attempt, channel_index, "
    "payload) SELECT id, 'send', priority, now() + make_interval(secs => $2::float8), "
    "$3::smallint, $4::smallint, '{\"resend\": true}' FROM crm_communications "
    "WHERE id = $1::uuid "
    "ON CONFLICT (communication_id) WHERE kind = 'send' DO NOTHING RETURNING 1",
    4, false};
static const pg_stmt_t st_end = {
    "receipts_end",
    "UPDATE crm_communications SET status = 'failed', failed_at = now(), updated_at = now() "
    "WHERE id = $1::uuid AND status = 'sent'",
    1, false};

static const char *const EVENT_TYPE[] = {NULL, "sent", "delivered", "read", "failed"};

static int rows(pg_conn_t *c, const pg_stmt_t *st, const char *const *p, hd_err_t *err)
{
    PGresult *r = pg_exec(c, st, p, err);
    if (r == NULL)
        return -1;
    int n = PQntuples(r) > 0 ? PQntuples(r) : atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

/* The body of receipts_apply, inside its transaction. */
static int moved_if(int n, const char *to, char moved[16])
{
    if (n > 0)
        snprintf(moved, 16, "%s", to);
    return n < 0 ? -1 : 0;
}

static int apply_in(pg_conn_t *c, const receipt_t *r, const receipt_target_t *t,
                    receipt_action_t act, double delay_s, const char *category,
                    const char *alert_targets, receipt_result_t *result, bool *ended,
                    char moved[16], hd_err_t *err)
{
    const char *id = t->found ? t->comm_id : NULL;
    char when[32] = "";
    if (r->occurred_at > 0)
        snprintf(when, sizeof(when), "%lld", (long long)r->occurred_at);
    const char *at = when[0] ? when : NULL;
    /* A failure acts only when no send job of the message is in flight: the
     * lock also keeps a worker from taking a job while this runs. */
    bool failing = id && r->kind == RECEIPT_FAILED && act != ACT_NONE;
    if (failing) {
        const char *p[] = {id};
        int n = rows(c, &st_busy, p, err);
        if (n < 0)
            return -1;
        if (n > 0) {
            *result = RECEIPT_BUSY;
            return 0;
        }
    }
    const char *type = EVENT_TYPE[r->kind] ? EVENT_TYPE[r->kind] : r->raw_status;
    const char *ep[] = {id,
                        r->channel,
                        type,
                        r->raw_status,
                        r->provider,
                        r->provider_id,
                        r->error_code,
                        r->error_text,
                        r->dedup_key,
                        r->details_json,
                        at,
                        r->kind == RECEIPT_FAILED ? category : NULL};
    int n = rows(c, &st_event, ep, err);
    if (n < 0)
        return -1;
    if (n == 0) {
        *result = RECEIPT_DUPLICATE;
        return 0;
    }
    if (id == NULL) {
        *result = RECEIPT_ORPHAN;
        return 0;
    }
    *result = RECEIPT_APPLIED;
    const char *mp[] = {id, at};
    const char *idp[] = {id};
    switch (r->kind) {
    case RECEIPT_SENT:
        return moved_if(rows(c, &st_to_sent, mp, err), "sent", moved);
    case RECEIPT_DELIVERED:
        if (moved_if(rows(c, &st_to_delivered, mp, err), "delivered", moved) < 0)
            return -1;
        return rows(c, &st_drop_resend, idp, err) < 0 ? -1 : 0;
    case RECEIPT_READ:
        if (moved_if(rows(c, &st_to_opened, mp, err), "opened", moved) < 0)
            return -1;
        return rows(c, &st_drop_resend, idp, err) < 0 ? -1 : 0;
    case RECEIPT_FAILED:
        break;
    default:
        return 0;
    }
    if (!failing)
        return 0;
    const char *fp[] = {id, category, r->error_code, r->channel};
    n = rows(c, &st_failure, fp, err);
    if (n <= 0)
        return n; /* moved on meanwhile: the event is all there is */
    if (act == ACT_FAIL) {
        n = rows(c, &st_end, idp, err);
        *ended = n > 0;
        moved_if(n, "failed", moved);
        if (n > 0)
            return jobs_alert_on(c, id, alert_targets, category,
                                 r->error_text ? r->error_text : r->raw_status, err);
        return n < 0 ? -1 : 0;
    }
    char delay[32], attempt[16], index[16];
    snprintf(delay, sizeof(delay), "%.3f", delay_s < 0 ? 0 : delay_s);
    snprintf(attempt, sizeof(attempt), "%d", act == ACT_RETRY ? t->attempt : 0);
    snprintf(index, sizeof(index), "%d", t->channel_index + (act == ACT_NEXT ? 1 : 0));
    const char *jp[] = {id, delay, attempt, index};
    n = rows(c, &st_resend, jp, err);
    if (n == 0)
        *result = RECEIPT_BUSY; /* another path made the send job first */
    return n < 0 ? -1 : 0;
}

int receipts_apply(pg_pool_t *db, const receipt_t *r, const receipt_target_t *t,
                   receipt_action_t act, double delay_s, const char *category,
                   const char *alert_targets, receipt_result_t *result, bool *ended, char moved[16],
                   hd_err_t *err)
{
    *ended = false;
    moved[0] = '\0';
    *result = RECEIPT_APPLIED;
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = apply_in(c, r, t, act, delay_s, category, alert_targets, result, ended, moved, err);
    /* busy: nothing of it may stand (not even the event: it is applied later) */
    bool busy = rc == 0 && *result == RECEIPT_BUSY;
    rc = pg_tx_end(db, c, busy ? 1 : rc, err);
    if (busy)
        return 0;
    if (rc != 0) {
        *ended = false;
        moved[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- many at once (a webhook's batch) ---- */

/* st_find for every element of the arrays: each row a lateral look-up by
 * index (a join with unnest() would drift to a sequential scan once the
 * plan is generic). */
static const pg_stmt_t st_find_many = {
    "receipts_find_many",
    "SELECT u.ord, f.* FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "
    "AS u(pid, hint, ch, ord) "
    "LEFT JOIN LATERAL (SELECT communication_id, channel, attempt FROM crm_delivery_logs "
    "WHERE kind = 'attempt' AND provider_message_id = u.pid ORDER BY id DESC LIMIT 1) a ON true "
    "JOIN LATERAL (SELECT c.id, c.status, coalesce(c.channel, ''), coalesce(a.channel, u.ch), "
    "coalesce(a.attempt, 1), coalesce(array_position(array_prepend(c.primary_channel, "
    "c.fallback_channels), coalesce(a.channel, u.ch)), 0) - 1, "
    "cardinality(c.fallback_channels) + 1, c.client_id, c.plan_id, c.message_type, "
    "(SELECT l.provider_message_id FROM crm_delivery_logs l WHERE l.communication_id = c.id "
    "AND l.kind = 'attempt' ORDER BY l.id DESC LIMIT 1) IS NOT DISTINCT FROM u.pid, "
    "extract(epoch FROM c.sent_at), a.communication_id IS NOT NULL, "
    "EXISTS (SELECT 1 FROM crm_jobs WHERE communication_id = c.id AND kind = 'send'), c.batch, "
    "c.recipient_enc FROM crm_communications c WHERE c.id = coalesce(a.communication_id, "
    "u.hint::uuid)) f "
    "ON true",
    3, false};

int receipts_find_many(pg_pool_t *db, const receipt_t *const *rs, int n, receipt_target_t *ts,
                       hd_err_t *err)
{
    buf_t a[3];
    for (int k = 0; k < 3; k++)
        buf_init(&a[k]);
    for (int i = 0; i < n; i++) {
        const receipt_t *r = rs[i];
        memset(&ts[i], 0, sizeof(ts[i]));
        pg_arr_add(&a[0], r->provider_id);
        pg_arr_add(&a[1], r->comm_hint && comms_valid_id(r->comm_hint) ? r->comm_hint : NULL);
        pg_arr_add(&a[2], r->channel);
    }
    char *v[3];
    for (int k = 0; k < 3; k++)
        v[k] = pg_arr_end(&a[k]);
    const char *p[] = {v[0], v[1], v[2]};
    int rc = -1;
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    PGresult *res = c ? pg_exec(c, &st_find_many, p, err) : NULL;
    if (c)
        pg_pool_put(db, c);
    if (res) {
        for (int row = 0; row < PQntuples(res); row++) {
            long ord = strtol(PQgetvalue(res, row, 0), NULL, 10);
            if (ord >= 1 && ord <= n)
                read_target(res, row, 1, &ts[ord - 1]);
        }
        PQclear(res);
        rc = 0;
    }
    for (int k = 0; k < 3; k++)
        free(v[k]);
    return rc;
}

/* Every receipt's event (once per dedup key) and the forward moves of the
 * messages whose event is new, in one statement. = ANY over the ids keeps
 * the update an index look-up per message in every plan; the join with the
 * arrays ($1 holds each message at most once) gives its kind and time. */
static const pg_stmt_t st_apply_many = {
    "receipts_apply_many",
    "WITH ins AS (INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, "
    "status, provider, provider_message_id, raw_code, message, dedup_key, details, "
    "occurred_at) SELECT comm, 'event', ch, etype, raw, provider, pid, code, msg, dedup, "
    "coalesce(details::jsonb, '{}'), coalesce(to_timestamp(at), now()) "
    "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::text[], $10::text[], $11::float8[]) "
    "AS u(comm, ch, etype, raw, provider, pid, code, msg, dedup, details, at) "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING "
    "RETURNING dedup_key, communication_id), "
    "mv AS (UPDATE crm_communications c SET "
    "status = CASE m.k WHEN 'sent' THEN 'sent' WHEN 'delivered' THEN 'delivered' "
    "ELSE 'opened' END, "
    "sent_at = coalesce(c.sent_at, to_timestamp(m.at), now()), "
    "delivered_at = CASE WHEN m.k IN ('delivered', 'read') "
    "THEN coalesce(c.delivered_at, to_timestamp(m.at), now()) ELSE c.delivered_at END, "
    "opened_at = CASE WHEN m.k = 'read' "
    "THEN coalesce(c.opened_at, to_timestamp(m.at), now()) ELSE c.opened_at END, "
    "updated_at = now() FROM unnest($1::uuid[], $12::text[], $11::float8[]) AS m(id, k, at) "
    "WHERE c.id = ANY(ARRAY(SELECT communication_id FROM ins WHERE communication_id IS NOT NULL)) "
    "AND m.id = c.id "
    "AND ((m.k = 'sent' AND c.status IN ('scheduled', 'queued', 'sending')) "
    "OR (m.k = 'delivered' AND c.status IN ('sending', 'sent')) "
    "OR (m.k = 'read' AND c.status IN ('sending', 'sent', 'delivered'))) "
    "RETURNING c.id), "
    /* the client has it: a resend or a no-receipt timer is no longer needed */
    "dr AS (DELETE FROM crm_jobs j USING unnest($1::uuid[], $12::text[]) AS m(id, k) "
    "WHERE j.communication_id = ANY(ARRAY(SELECT communication_id FROM ins "
    "WHERE communication_id IS NOT NULL)) AND m.id = j.communication_id "
    "AND m.k IN ('delivered', 'read') "
    "AND (j.payload ? 'resend' OR j.kind = 'no_receipt') AND j.lease_owner IS NULL) "
    "SELECT 'i', dedup_key FROM ins UNION ALL SELECT 'm', id::text FROM mv",
    12, false};

static const char *const KIND_WORD[] = {"other", "sent", "delivered", "read", "failed"};
static const char *const MOVED_TO[] = {"", "sent", "delivered", "opened", ""};

int receipts_apply_many(pg_pool_t *db, const receipt_t *const *rs,
                        const receipt_target_t *const *ts, int n, receipt_result_t *results,
                        char (*moved)[16], hd_err_t *err)
{
    buf_t a[12];
    for (int k = 0; k < 12; k++)
        buf_init(&a[k]);
    for (int i = 0; i < n; i++) {
        const receipt_t *r = rs[i];
        char when[32] = "";
        if (r->occurred_at > 0)
            snprintf(when, sizeof(when), "%lld", (long long)r->occurred_at);
        const char *v[12] = {ts[i]->found ? ts[i]->comm_id : NULL,
                             r->channel,
                             EVENT_TYPE[r->kind] ? EVENT_TYPE[r->kind] : r->raw_status,
                             r->raw_status,
                             r->provider,
                             r->provider_id,
                             r->error_code,
                             r->error_text,
                             r->dedup_key,
                             r->details_json,
                             when[0] ? when : NULL,
                             KIND_WORD[r->kind]};
        for (int k = 0; k < 12; k++)
            pg_arr_add(&a[k], v[k]);
        results[i] = RECEIPT_DUPLICATE;
        moved[i][0] = '\0';
    }
    char *v[12];
    const char *p[12];
    for (int k = 0; k < 12; k++)
        p[k] = v[k] = pg_arr_end(&a[k]);
    int rc = -1;
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    PGresult *res = c ? pg_exec(c, &st_apply_many, p, err) : NULL;
    if (c)
        pg_pool_put(db, c);
    if (res) {
        for (int row = 0; row < PQntuples(res); row++) {
            bool ins = PQgetvalue(res, row, 0)[0] == 'i';
            const char *key = PQgetvalue(res, row, 1);
            for (int i = 0; i < n; i++) {
                if (ins && strcmp(rs[i]->dedup_key, key) == 0)
                    results[i] = ts[i]->found ? RECEIPT_APPLIED : RECEIPT_ORPHAN;
                else if (!ins && ts[i]->found && strcmp(ts[i]->comm_id, key) == 0)
                    snprintf(moved[i], 16, "%s", MOVED_TO[rs[i]->kind]);
            }
        }
        PQclear(res);
        rc = 0;
    }
    for (int k = 0; k < 12; k++)
        free(v[k]);
    return rc;
}

/* ---- tracking ---- */

static const pg_stmt_t st_track = {
    "tracking_hit",
    "WITH m AS (SELECT id, channel, status, message_type FROM crm_communications "
    "WHERE id = $1::uuid), "
    "e AS (INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, status, "
    "provider, details) SELECT id, 'event', coalesce(channel, 'email'), $2, $2, 'tracking', "
    "jsonb_strip_nulls(jsonb_build_object('link', $3::int, 'url', $4::text)) FROM m), "
    "o AS (UPDATE crm_communications c SET "
    "status = CASE WHEN c.status IN ('sent', 'delivered') AND $2 = 'open' THEN 'opened' "
    "WHEN c.status IN ('sent', 'delivered', 'opened') AND $2 = 'click' THEN 'clicked' "
    "ELSE c.status END, "
    "opened_at = coalesce(c.opened_at, now()), "
    "clicked_at = CASE WHEN $2 = 'click' THEN coalesce(c.clicked_at, now()) ELSE c.clicked_at END, "
    "delivered_at = CASE WHEN c.status IN ('sent', 'delivered', 'opened', 'clicked') "
    "THEN coalesce(c.delivered_at, now()) ELSE c.delivered_at END, "
    "updated_at = now() FROM m WHERE c.id = m.id) "
    "SELECT count(*), max(status), max(coalesce(channel, '')), max(message_type) FROM m",
    4, false};

int tracking_record(pg_pool_t *db, const char *comm_id, char kind, int index, const char *url,
                    char moved[16], char channel[16], char message_type[64], hd_err_t *err)
{
    moved[0] = channel[0] = message_type[0] = '\0';
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", index);
    const char *p[] = {comm_id, kind == 'c' ? "click" : "open", kind == 'c' ? idx : NULL,
                       kind == 'c' ? url : NULL};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_track, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    int found = atoi(PQgetvalue(r, 0, 0));
    if (found) {
        const char *was = PQgetvalue(r, 0, 1);
        bool from_sent = strcmp(was, "sent") == 0 || strcmp(was, "delivered") == 0;
        if (kind == 'o' && from_sent)
            snprintf(moved, 16, "opened");
        else if (kind == 'c' && (from_sent || strcmp(was, "opened") == 0))
            snprintf(moved, 16, "clicked");
        snprintf(channel, 16, "%s", PQgetvalue(r, 0, 2));
        snprintf(message_type, 64, "%s", PQgetvalue(r, 0, 3));
    }
    PQclear(r);
    return found ? 0 : 1;
}

static const pg_stmt_t st_link = {
    "tracking_link", "SELECT tracked_links ->> $2::int FROM crm_communications WHERE id = $1::uuid",
    2, false};

int tracking_link(pg_pool_t *db, const char *comm_id, int index, char **url, hd_err_t *err)
{
    *url = NULL;
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", index);
    const char *p[] = {comm_id, idx};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_link, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        *url = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}
