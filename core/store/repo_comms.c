/* repo_comms.c - communications: create, read, list, cancel (see repo_comms.h; the queue is in
 * repo_queue.c). */
#include "store/repo_comms.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/codec.h"
#include "store/cursor.h"
#include "store/pg_array.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The communication, its job and the idempotency record in one statement:
 * one round trip and one commit per acceptance. No NOTIFY here: a NOTIFY
 * serialises every notifying commit in the cluster (PostgreSQL holds a
 * global lock from pre-commit until the commit is flushed), which would
 * undo group commit. The engine wakes its own workers and sends one
 * coalesced NOTIFY for the other processes (engine_kick). */
static const pg_stmt_t st_insert = {
    "comms_insert",
    "WITH c AS (INSERT INTO crm_communications (id, plan_id, client_id, message_type, urgency, "
    "context_enc, strategy, recipient_enc, primary_channel, fallback_channels, status, send_at, "
    "priority, batch, requested_by, idempotency_key, queued_at, payload) "
    "SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6, $7::jsonb, $8, $9::text, "
    "string_to_array($10, ','), "
    "CASE WHEN to_timestamp($11::float8) <= now() THEN 'queued' ELSE 'scheduled' END, "
    "to_timestamp($11::float8), $12::smallint, $13::boolean, $14, $15, "
    "CASE WHEN to_timestamp($11::float8) <= now() THEN now() END, $17::jsonb "
    /* unless_prefs: only while the client has no preferences row */
    "WHERE NOT $20::boolean "
    "OR NOT EXISTS (SELECT 1 FROM crm_client_preferences p WHERE p.client_id = $3) "
    "RETURNING id), "
    "j AS (INSERT INTO crm_jobs (communication_id, kind, priority, due_at, dedup_key) "
    "SELECT c.id, 'send', $12::smallint, greatest(to_timestamp($11::float8), now()), $16 FROM c "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING 1), "
    "i AS (UPDATE crm_idempotency_keys SET state = 'done', response_status = 202, "
    "response_body = $19, communication_id = $1::uuid "
    "WHERE principal = $18 AND idempotency_key = $15 AND EXISTS (SELECT 1 FROM c) RETURNING 1) "
    "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM j), (SELECT count(*) FROM i)",
    20, true};
/* st_insert for many messages at once: one statement, one commit (group
 * commit of acceptance, engine/acceptq.c). Every column comes as an array;
 * one row per message comes back, with what was inserted for it. */
static const pg_stmt_t st_insert_many = {
    "comms_insert_many",
    "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::float8[], "
    "$12::smallint[], $13::boolean[], $14::text[], $15::text[], $16::text[], $17::jsonb[], "
    "$18::text[], $19::text[], $20::boolean[]) AS v(id, plan_id, client_id, message_type, "
    "urgency, context_enc, strategy, recipient_enc, primary_channel, fallbacks, send_at, "
    "priority, batch, requested_by, idempotency_key, dedup_key, payload, idem_principal, "
    "idem_response, unless_prefs)), "
    "c AS (INSERT INTO crm_communications (id, plan_id, client_id, message_type, urgency, "
    "context_enc, strategy, recipient_enc, primary_channel, fallback_channels, status, send_at, "
    "priority, batch, requested_by, idempotency_key, queued_at, payload) "
    "SELECT id, plan_id, client_id, message_type, urgency, context_enc, strategy, "
    "recipient_enc, primary_channel, string_to_array(fallbacks, ','), "
    "CASE WHEN to_timestamp(send_at) <= now() THEN 'queued' ELSE 'scheduled' END, "
    "to_timestamp(send_at), priority, batch, requested_by, idempotency_key, "
    "CASE WHEN to_timestamp(send_at) <= now() THEN now() END, payload FROM v "
    "WHERE NOT v.unless_prefs "
    "OR NOT EXISTS (SELECT 1 FROM crm_client_preferences p WHERE p.client_id = v.client_id "
    "OFFSET 0) " /* a probe per row, never a hash of every client (pg.h) */
    "RETURNING id), "
    "j AS (INSERT INTO crm_jobs (communication_id, kind, priority, due_at, dedup_key) "
    "SELECT v.id, 'send', v.priority, greatest(to_timestamp(v.send_at), now()), v.dedup_key "
    "FROM v JOIN c ON c.id = v.id "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING communication_id), "
    "i AS (UPDATE crm_idempotency_keys k SET state = 'done', response_status = 202, "
    "response_body = v.idem_response, communication_id = v.id FROM v JOIN c ON c.id = v.id "
    "WHERE v.idem_principal IS NOT NULL AND k.principal = v.idem_principal "
    "AND k.idempotency_key = v.idempotency_key "
    /* the keys of the batch, as an index condition: in whichever order the
     * join runs, the table is read for these keys only (pg.h) */
    "AND k.principal = ANY($18::text[]) AND k.idempotency_key = ANY($15::text[]) "
    "RETURNING v.id) "
    "SELECT v.id, EXISTS (SELECT 1 FROM c WHERE c.id = v.id), "
    "EXISTS (SELECT 1 FROM i WHERE i.id = v.id) FROM v",
    20, true};
static const pg_stmt_t st_notify = {"comms_notify",
                                    "SELECT pg_notify('" COMMS_NOTIFY_CHANNEL "', '')", 0, false};

int comms_context_open(const fe_keyring_t *kr, const char *clear, const char *enc, char **out,
                       hd_err_t *err)
{
    *out = NULL;
    if (enc == NULL) {
        *out = xstrdup(clear ? clear : "{}");
        return 0;
    }
    size_t n;
    return fe_decrypt(kr, "context", enc, out, &n, err) == 0 ? 0 : hd_err_prefix(err, "context");
}

/* One message's values in the order of st_insert's parameters and of
 * st_insert_many's columns (COMM_NCOL of them; priority as text). The
 * context is sealed into *context_enc (caller frees); send_at, prio and
 * dedup are the caller's buffers the values point into. */
enum { COMM_NCOL = 20 };
static int comm_values(const fe_keyring_t *kr, const comm_new_t *m, char **context_enc,
                       char send_at[32], char prio[8], char dedup[300], const char *v[COMM_NCOL],
                       hd_err_t *err)
{
    /* The context holds names, budgets, vendors, dates: personal data, so
     * it is stored sealed like the addresses (docs/security.md). */
    const char *ctx = m->context_json ? m->context_json : "{}";
    *context_enc = NULL;
    if (fe_encrypt(kr, "context", ctx, strlen(ctx), context_enc, err) != 0)
        return hd_err_prefix(err, "context");
    snprintf(send_at, 32, "%lld", (long long)m->send_at);
    snprintf(prio, 8, "%d", m->priority);
    /* Low-urgency messages share one job per client and digest time: that
     * job's worker sends them all as one digest, whichever process has it. */
    snprintf(dedup, 300, "digest:%s:%s", m->client_id, send_at);
    bool idem = m->idem_principal && m->idempotency_key;
    const char *vals[COMM_NCOL] = {m->id,
                                   m->plan_id,
                                   m->client_id,
                                   m->message_type,
                                   m->urgency,
                                   *context_enc,
                                   m->strategy_json,
                                   m->recipient_enc,
                                   m->primary_channel,
                                   m->fallbacks_csv,
                                   send_at,
                                   prio,
                                   m->batch ? "t" : "f",
                                   m->requested_by,
                                   m->idempotency_key,
                                   m->batch ? dedup : NULL,
                                   m->payload_json,
                                   idem ? m->idem_principal : NULL,
                                   m->idem_response,
                                   m->unless_prefs ? "t" : "f"};
    memcpy(v, vals, sizeof(vals));
    return 0;
}

int comms_create(pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *c, hd_err_t *err)
{
    char *context_enc, send_at[32], prio[8], dedup[300];
    const char *p[COMM_NCOL];
    if (comm_values(kr, c, &context_enc, send_at, prio, dedup, p, err) != 0)
        return -1;
    bool idem = c->idem_principal && c->idempotency_key;
    pg_conn_t *conn = pg_pool_get(db, 5000, err);
    PGresult *r = conn ? pg_exec(conn, &st_insert, p, err) : NULL;
    if (conn)
        pg_pool_put(db, conn);
    free(context_enc);
    if (r == NULL)
        return -1;
    int rc = 0;
    if (atoi(PQgetvalue(r, 0, 0)) != 1 && c->unless_prefs)
        rc = COMMS_PREFS_EXIST;
    else if (atoi(PQgetvalue(r, 0, 0)) != 1)
        rc = hd_err_set(err, "database: the communication was not inserted");
    else if (idem && atoi(PQgetvalue(r, 0, 2)) != 1)
        /* the idempotency record was stored before this call; if it is gone,
         * the key expired meanwhile: the message stands, the replay will not */
        log_warn("idempotency record missing when completing it", "comm_id", c->id);
    PQclear(r);
    return rc;
}

int comms_create_many(pg_pool_t *db, const fe_keyring_t *kr, const comm_new_t *const *c, int n,
                      int *results, hd_err_t *err)
{
    enum { NCOL = COMM_NCOL, PRIO = 11 };
    buf_t col[NCOL];
    for (int k = 0; k < NCOL; k++)
        buf_init(&col[k]);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char *context_enc, send_at[32], prio[8], dedup[300];
        const char *v[NCOL];
        if (comm_values(kr, c[i], &context_enc, send_at, prio, dedup, v, err) != 0) {
            rc = -1;
            break;
        }
        for (int k = 0; k < NCOL; k++) {
            if (k == PRIO) /* a number in the array, not a quoted text */
                pg_arr_addf(&col[k], "%lld", (long long)c[i]->priority);
            else
                pg_arr_add(&col[k], v[k]);
        }
        free(context_enc);
    }
    char *arr[NCOL];
    for (int k = 0; k < NCOL; k++)
        arr[k] = pg_arr_end(&col[k]);
    PGresult *r = NULL;
    if (rc == 0) {
        const char *p[NCOL];
        for (int k = 0; k < NCOL; k++)
            p[k] = arr[k];
        pg_conn_t *conn = pg_pool_get(db, 5000, err);
        r = conn ? pg_exec(conn, &st_insert_many, p, err) : NULL;
        if (conn)
            pg_pool_put(db, conn);
        if (r == NULL)
            rc = -1;
    }
    for (int k = 0; k < NCOL; k++)
        free(arr[k]);
    if (rc != 0)
        return -1;
    int answered = 0;
    for (int k = 0; k < PQntuples(r); k++) {
        int i = 0; /* the row's message, by its id */
        while (i < n && strcasecmp(c[i]->id, PQgetvalue(r, k, 0)) != 0)
            i++;
        bool stored = strcmp(PQgetvalue(r, k, 1), "t") == 0;
        if (i == n || (!stored && !c[i]->unless_prefs))
            continue;
        results[i] = stored ? 0 : COMMS_PREFS_EXIST;
        answered++;
        if (stored && PQgetvalue(r, k, 2)[0] != 't' && c[i]->idem_principal &&
            c[i]->idempotency_key)
            log_warn("idempotency record missing when completing it", "comm_id",
                     PQgetvalue(r, k, 0));
    }
    PQclear(r);
    if (answered != n)
        return hd_err_set(err, "database: %d of %d communications were inserted", answered, n);
    return 0;
}

int comms_notify(pg_pool_t *db, hd_err_t *err)
{
    return pg_pool_exec_ok(db, &st_notify, NULL, err);
}

/* clang-format off */
static const pg_stmt_t st_get = {
    "comms_get",
    "SELECT id, plan_id, client_id, message_type, urgency, status, channel, primary_channel, "
    "array_to_string(fallback_channels, ','), strategy::text, context::text, attempt_count, "
    "may_have_been_sent, provider_message_id, last_error_category, last_error_code, "
    "extract(epoch from send_at)::bigint, "
    TS("created_at") ", " TS("queued_at") ", " TS("sending_at") ", " TS("sent_at") ", "
    TS("delivered_at") ", " TS("opened_at") ", " TS("clicked_at") ", " TS("failed_at") ", "
    TS("cancelled_at") ", " TS("suppressed_at") ", "
    /* a message waiting between attempts: when its send job comes due */
    "(SELECT " TS("j.due_at") " "
    "FROM crm_jobs j WHERE j.communication_id = crm_communications.id AND j.kind = 'send' "
    "AND crm_communications.status = 'scheduled'), context_enc "
    "FROM crm_communications WHERE id = $1::uuid",
    1, false};
/* clang-format on */
static const pg_stmt_t st_logs = {
    "comms_logs",
    "SELECT kind, channel, attempt, event_type, status, provider, provider_message_id, raw_code, "
    "message, category, may_have_been_sent, latency_ms, " TS(
        "occurred_at") " FROM crm_delivery_logs WHERE communication_id = $1::uuid ORDER BY "
                       "occurred_at, id",
    1, false};

static char *text_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

void comm_row_free(comm_row_t *r)
{
    char **strs[] = {&r->id,
                     &r->plan_id,
                     &r->client_id,
                     &r->message_type,
                     &r->urgency,
                     &r->status,
                     &r->channel,
                     &r->strategy_json,
                     &r->context_json,
                     &r->provider_message_id,
                     &r->last_error_category,
                     &r->last_error_code,
                     &r->created_at,
                     &r->queued_at,
                     &r->sending_at,
                     &r->sent_at,
                     &r->delivered_at,
                     &r->opened_at,
                     &r->clicked_at,
                     &r->failed_at,
                     &r->cancelled_at,
                     &r->suppressed_at,
                     &r->next_attempt_at};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    for (int i = 0; i < r->nlogs; i++) {
        comm_log_row_t *l = &r->logs[i];
        char *ls[] = {l->channel, l->event_type, l->status,   l->provider, l->provider_id,
                      l->code,    l->message,    l->category, l->at};
        for (size_t k = 0; k < sizeof(ls) / sizeof(ls[0]); k++)
            free(ls[k]);
    }
    free(r->logs);
    memset(r, 0, sizeof(*r));
}

void comm_page_free(comm_page_t *p)
{
    for (int i = 0; i < p->n; i++)
        comm_row_free(&p->items[i]);
    free(p->items);
    free(p->next_cursor);
    memset(p, 0, sizeof(*p));
}

bool comms_valid_id(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

int comms_get(pg_pool_t *db, const fe_keyring_t *kr, const char *id, comm_row_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!comms_valid_id(id))
        return 1;
    pg_conn_t *conn = pg_pool_get(db, 5000, err);
    if (conn == NULL)
        return -1;
    const char *p[] = {id};
    /* one snapshot: a record committing between the two reads must not
     * show its attempt row beside the message's older state */
    PGresult *r = NULL, *l = NULL;
    if (pg_tx_open_read(conn, err) == 0) {
        r = pg_exec(conn, &st_get, p, err);
        l = r && PQntuples(r) == 1 ? pg_exec(conn, &st_logs, p, err) : NULL;
        pg_tx_close(conn, 0, NULL);
    }
    pg_pool_put(db, conn);
    int rc = -1;
    if (r == NULL || (PQntuples(r) == 1 && l == NULL))
        goto done;
    rc = 1;
    if (PQntuples(r) == 0)
        goto done;
    rc = 0;
    char **cols[] = {&out->id,      &out->plan_id, &out->client_id, &out->message_type,
                     &out->urgency, &out->status,  &out->channel};
    for (int i = 0; i < 7; i++)
        *cols[i] = text_or_null(r, 0, i);
    out->strategy_json = text_or_null(r, 0, 9);
    hd_err_t cerr;
    const char *clear = PQgetisnull(r, 0, 10) ? NULL : PQgetvalue(r, 0, 10);
    const char *enc = PQgetisnull(r, 0, 28) ? NULL : PQgetvalue(r, 0, 28);
    if (comms_context_open(kr, clear, enc, &out->context_json, &cerr) != 0)
        log_error("cannot decrypt a stored context; it is shown empty", "comm_id", out->id,
                  "reason", cerr.msg);
    out->attempt_count = atoi(PQgetvalue(r, 0, 11));
    out->may_have_been_sent = PQgetvalue(r, 0, 12)[0] == 't';
    out->provider_message_id = text_or_null(r, 0, 13);
    out->last_error_category = text_or_null(r, 0, 14);
    out->last_error_code = text_or_null(r, 0, 15);
    char **times[] = {&out->created_at,    &out->queued_at,      &out->sending_at,
                      &out->sent_at,       &out->delivered_at,   &out->opened_at,
                      &out->clicked_at,    &out->failed_at,      &out->cancelled_at,
                      &out->suppressed_at, &out->next_attempt_at};
    for (int i = 0; i < 11; i++)
        *times[i] = text_or_null(r, 0, 17 + i);
    out->nlogs = PQntuples(l);
    out->logs = xcalloc((size_t)out->nlogs + 1, sizeof(comm_log_row_t));
    for (int i = 0; i < out->nlogs; i++) {
        comm_log_row_t *e = &out->logs[i];
        e->attempt = strcmp(PQgetvalue(l, i, 0), "attempt") == 0;
        e->attempt_no = PQgetisnull(l, i, 2) ? 0 : atoi(PQgetvalue(l, i, 2));
        e->channel = text_or_null(l, i, 1);
        e->event_type = text_or_null(l, i, 3);
        e->status = text_or_null(l, i, 4);
        e->provider = text_or_null(l, i, 5);
        e->provider_id = text_or_null(l, i, 6);
        e->code = text_or_null(l, i, 7);
        e->message = text_or_null(l, i, 8);
        e->category = text_or_null(l, i, 9);
        e->may_have_been_sent = PQgetvalue(l, i, 10)[0] == 't';
        e->has_latency = !PQgetisnull(l, i, 11);
        e->latency_ms = e->has_latency ? atoi(PQgetvalue(l, i, 11)) : 0;
        e->at = text_or_null(l, i, 12);
    }
done:
    PQclear(r);
    PQclear(l);
    return rc;
}

static const pg_stmt_t st_list = {
    "comms_list",
    "SELECT id, plan_id, client_id, message_type, urgency, status, channel, " TS(
        "created_at") ", (extract(epoch from created_at) * 1000000)::bigint "
                      "FROM crm_communications WHERE ($1::text IS NULL OR plan_id = $1) "
                      "AND ($2::text IS NULL OR client_id = $2) AND ($3::text IS NULL OR status = "
                      "$3) "
                      "AND ($4::text IS NULL OR channel = $4) AND ($5::text IS NULL OR "
                      "message_type = $5) "
                      "AND ($6::timestamptz IS NULL OR created_at >= $6) "
                      "AND ($7::timestamptz IS NULL OR created_at < $7) "
                      "AND ($8::bigint IS NULL OR (created_at, id) < (to_timestamp($8::bigint / "
                      "1000000.0), "
                      "$9::uuid)) "
                      "ORDER BY created_at DESC, id DESC LIMIT $10::int",
    10, false};

int comms_list(pg_pool_t *db, const comms_filter_t *f, comm_page_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    char *cur_ts = NULL, *cur_id = NULL;
    if (f->cursor && cursor_decode(f->cursor, &cur_ts, &cur_id, err) != 0)
        return -1;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", f->limit + 1);
    const char *p[] = {f->plan_id, f->client_id, f->status, f->channel, f->message_type,
                       f->from,    f->to,        cur_ts,    cur_id,     limit};
    pg_conn_t *conn = pg_pool_get(db, 5000, err);
    PGresult *r = conn ? pg_exec(conn, &st_list, p, err) : NULL;
    if (conn)
        pg_pool_put(db, conn);
    free(cur_ts);
    free(cur_id);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    int shown = n > f->limit ? f->limit : n;
    out->items = xcalloc((size_t)shown + 1, sizeof(comm_row_t));
    out->n = shown;
    for (int i = 0; i < shown; i++) {
        comm_row_t *c = &out->items[i];
        char **cols[] = {&c->id,      &c->plan_id, &c->client_id, &c->message_type,
                         &c->urgency, &c->status,  &c->channel,   &c->created_at};
        for (int k = 0; k < 8; k++)
            *cols[k] = text_or_null(r, i, k);
    }
    if (n > f->limit) {
        out->next_cursor = cursor_encode(PQgetvalue(r, shown - 1, 8), PQgetvalue(r, shown - 1, 0));
    }
    PQclear(r);
    return 0;
}

static const pg_stmt_t st_status = {
    "comms_status", "SELECT status FROM crm_communications WHERE id = $1::uuid", 1, false};

int comms_status(pg_pool_t *db, const char *id, char status[16], hd_err_t *err)
{
    const char *p[] = {id};
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_status, p, err);
    pg_pool_put(db, c);
    int rc = r && PQntuples(r) == 1 ? 0 : -1;
    if (rc == 0)
        snprintf(status, 16, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static const pg_stmt_t st_cancel = {
    "comms_cancel",
    /* no provider holds it: waiting for its time or a worker, or 'sent' but
     * failed by a receipt and waiting for its resend (a job nobody holds) */
    "WITH c AS (UPDATE crm_communications SET status = 'cancelled', cancelled_at = now(), "
    "updated_at = now() WHERE id = $1::uuid AND (status IN ('scheduled', 'queued') "
    "OR (status = 'sent' AND EXISTS (SELECT 1 FROM crm_jobs j WHERE j.communication_id = "
    "$1::uuid AND j.kind = 'send' AND j.payload ? 'resend' AND j.lease_owner IS NULL))) "
    "RETURNING id), d AS (DELETE FROM crm_jobs WHERE communication_id IN (SELECT id FROM c)) "
    "SELECT (SELECT count(*) FROM c), (SELECT status FROM crm_communications WHERE id = $1::uuid)",
    1, false};

int comms_cancel(pg_pool_t *db, const char *id, char status_out[16], hd_err_t *err)
{
    status_out[0] = '\0';
    if (!comms_valid_id(id))
        return 1;
    pg_conn_t *conn = pg_pool_get(db, 5000, err);
    if (conn == NULL)
        return -1;
    const char *p[] = {id};
    PGresult *r = pg_exec(conn, &st_cancel, p, err);
    pg_pool_put(db, conn);
    if (r == NULL)
        return -1;
    int rc;
    if (PQgetisnull(r, 0, 1))
        rc = 1;
    else if (atoi(PQgetvalue(r, 0, 0)) == 1)
        rc = 0;
    else
        rc = 2;
    snprintf(status_out, 16, "%s", rc == 0 ? "cancelled" : PQgetvalue(r, 0, 1));
    PQclear(r);
    return rc;
}
