/*
 * repo_queue.c - what happens to a claimed job of the durable queue of
 * repo_comms.h: the sending mark, outcome records (batched), skips, drops,
 * deferrals and digests. The claim and lease upkeep are in repo_claim.c,
 * the other kinds of job in repo_jobs.c, the messages themselves (create,
 * read, list, cancel) in repo_comms.c.
 */
#include "store/repo_comms.h"
#include "store/repo_jobs.h"
#include "base/buf.h"
#include "store/pg_array.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Only while this process still holds the job, and only for a message still
 * pending: a cancel that committed after the claim wins here. */
static const pg_stmt_t st_sending_many = {
    "comms_sending_many",
    /* = ANY(array) keeps this an index lookup per message in every plan (a
     * join with unnest() drifts to a sequential scan once the plan is
     * generic); array_position finds each message's own values. */
    "UPDATE crm_communications c SET status = CASE WHEN c.status = 'sent' THEN 'sent' "
    "ELSE 'sending' END, sending_at = coalesce(c.sending_at, now()), "
    "queued_at = coalesce(c.queued_at, now()), "
    "channel = ($2::text[])[array_position($1::uuid[], c.id)], "
    "tracked_links = coalesce(($5::jsonb[])[array_position($1::uuid[], c.id)], "
    "c.tracked_links), "
    "attempt_count = c.attempt_count + 1, may_have_been_sent = true, updated_at = now() "
    "WHERE c.id = ANY($1::uuid[]) AND c.status IN ('scheduled', 'queued', 'sending', 'sent') "
    "AND EXISTS (SELECT 1 FROM crm_jobs j WHERE j.id = ($3::bigint[])[array_position($1::uuid[], "
    "c.id)] AND j.lease_owner = ($4::text[])[array_position($1::uuid[], c.id)] "
    /* a sent message goes out again only for a job a failed receipt made */
    "AND (c.status <> 'sent' OR j.payload ? 'resend') "
    "OFFSET 0) " /* a probe of the job's key per message (pg.h) */
    "RETURNING ($3::bigint[])[array_position($1::uuid[], c.id)]",
    5, true};

int comms_mark_sending_many(pg_pool_t *db, const comm_job_t *jobs, const char *const *channels,
                            int n, bool *marked, hd_err_t *err)
{
    buf_t ids, chs, js, owners, links;
    buf_init(&ids);
    buf_init(&chs);
    buf_init(&js);
    buf_init(&owners);
    buf_init(&links);
    int want = 0;
    for (int i = 0; i < n; i++) {
        marked[i] = false;
        if (channels[i] == NULL)
            continue;
        pg_arr_add(&ids, jobs[i].comm_id);
        pg_arr_add(&chs, channels[i]);
        pg_arr_addf(&js, "%lld", (long long)jobs[i].job_id);
        pg_arr_add(&owners, jobs[i].owner);
        pg_arr_add(&links, jobs[i].tracked_links);
        want++;
    }
    char *p[] = {pg_arr_end(&ids), pg_arr_end(&chs), pg_arr_end(&js), pg_arr_end(&owners),
                 pg_arr_end(&links)};
    int rc = 0;
    if (want > 0) {
        pg_conn_t *c = pg_pool_get(db, 5000, err);
        PGresult *r = c ? pg_exec(c, &st_sending_many, (const char *const *)p, err) : NULL;
        if (c)
            pg_pool_put(db, c);
        if (r == NULL)
            rc = -1;
        for (int k = 0; r && k < PQntuples(r); k++) {
            long long job = atoll(PQgetvalue(r, k, 0));
            for (int i = 0; i < n; i++)
                if (channels[i] && jobs[i].job_id == job)
                    marked[i] = true;
        }
        PQclear(r);
    }
    for (int i = 0; i < 5; i++)
        free(p[i]);
    return rc;
}

static const pg_stmt_t st_log_attempt = {
    "comms_log_attempt",
    "INSERT INTO crm_delivery_logs (communication_id, kind, channel, attempt, status, provider, "
    "provider_message_id, raw_code, message, category, may_have_been_sent, latency_ms, details) "
    "VALUES ($1::uuid, 'attempt', $2, $3::smallint, $4, $5, $6, $7, $8, $9, $10::boolean, "
    "$11::int, coalesce($12::jsonb, '{}'))",
    12, false};
static const pg_stmt_t st_sent = {
    "comms_sent",
    "UPDATE crm_communications SET status = 'sent', sent_at = now(), channel = $2, "
    "provider_message_id = $3, may_have_been_sent = true, updated_at = now() "
    "WHERE id = $1::uuid AND status IN ('scheduled', 'queued', 'sending', 'sent')",
    3, false};
static const pg_stmt_t st_job_done = {
    "comms_job_done", "DELETE FROM crm_jobs WHERE id = $1::bigint AND lease_owner = $2", 2, false};
static const pg_stmt_t st_job_retry = {
    "comms_job_retry",
    "UPDATE crm_jobs SET attempt = attempt + 1, due_at = now() + make_interval(secs => "
    "$2::float8), lease_owner = NULL, lease_expires_at = NULL WHERE id = $1::bigint "
    "AND lease_owner = $3",
    3, false};
static const pg_stmt_t st_job_next = {
    "comms_job_next",
    "UPDATE crm_jobs SET attempt = 0, channel_index = channel_index + 1, due_at = now() + "
    "make_interval(secs => $2::float8), lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = $1::bigint AND lease_owner = $3",
    3, false};
static const pg_stmt_t st_last_error = {
    "comms_last_error",
    "UPDATE crm_communications SET last_error_category = $2, last_error_code = $3, "
    "may_have_been_sent = may_have_been_sent AND $4::boolean, updated_at = now() "
    "WHERE id = $1::uuid",
    4, false};
static const pg_stmt_t st_failed = {
    "comms_failed",
    "UPDATE crm_communications SET status = 'failed', failed_at = now(), updated_at = now() "
    "WHERE id = $1::uuid AND status IN ('scheduled', 'queued', 'sending', 'sent')",
    1, false};
static const pg_stmt_t st_log_event = {
    "comms_log_event",
    "INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, status, message) "
    "VALUES ($1::uuid, 'event', $2, $3, $4, $5)",
    5, false};

/* Between attempts: waiting for a retry's time (or held) reads 'scheduled',
 * due again now on the next channel 'queued'; a cancel may take either. A
 * 'sent' message with a resend job keeps its status. */
static const pg_stmt_t st_waiting = {
    "comms_waiting",
    "UPDATE crm_communications SET status = 'scheduled', updated_at = now() "
    "WHERE id = $1::uuid AND status IN ('queued', 'sending')",
    1, false};
static const pg_stmt_t st_requeued = {
    "comms_requeued",
    "UPDATE crm_communications SET status = 'queued', queued_at = coalesce(queued_at, now()), "
    "updated_at = now() WHERE id = $1::uuid AND status IN ('scheduled', 'sending')",
    1, false};

/* Runs st and reports how many rows it changed (-1 on error). */
static int exec_rows(pg_conn_t *c, const pg_stmt_t *st, const char *const *p, hd_err_t *err)
{
    PGresult *r = pg_exec(c, st, p, err);
    if (r == NULL)
        return -1;
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

/* The job's next state, first: 1 when this process no longer holds the job
 * (its lease ran out and another process has it), so nothing else is written. */
static int move_job(pg_conn_t *c, const comm_job_t *j, comm_outcome_t outcome, double delay_s,
                    hd_err_t *err)
{
    char job[24], delay[32];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    snprintf(delay, sizeof(delay), "%.3f", delay_s < 0 ? 0 : delay_s);
    const char *done[] = {job, j->owner};
    const char *moved[] = {job, delay, j->owner};
    int n;
    switch (outcome) {
    case OUTCOME_RETRY:
    case OUTCOME_HELD:
        n = exec_rows(c, &st_job_retry, moved, err);
        break;
    case OUTCOME_NEXT:
        n = exec_rows(c, &st_job_next, moved, err);
        break;
    default:
        n = exec_rows(c, &st_job_done, done, err);
        break;
    }
    if (n < 0)
        return -1;
    if (n == 0) {
        log_warn("lost a job's lease before recording its outcome; its new holder decides",
                 "comm_id", j->comm_id);
        return 1;
    }
    return 0;
}

/* The messages a digest carried follow the digest's outcome. */
static const pg_stmt_t st_members_sent = {
    "comms_members_sent",
    "UPDATE crm_communications SET status = 'sent', sent_at = now(), channel = $2, "
    "provider_message_id = $3, updated_at = now() WHERE digest_id = $1::uuid "
    "AND id <> $1::uuid AND status IN ('scheduled', 'queued', 'sending')",
    3, false};
static const pg_stmt_t st_members_failed = {
    "comms_members_failed",
    "UPDATE crm_communications SET status = 'failed', failed_at = now(), updated_at = now() "
    "WHERE digest_id = $1::uuid AND id <> $1::uuid "
    "AND status IN ('scheduled', 'queued', 'sending')",
    1, false};
static const pg_stmt_t st_gather = {
    "comms_gather",
    "WITH m AS (SELECT c.id FROM crm_communications c WHERE c.client_id = $1 AND c.batch "
    "AND (c.digest_id IS NULL OR c.digest_id = $2::uuid) "
    "AND c.status IN ('scheduled', 'queued', 'sending') AND c.send_at <= now() + interval '1 "
    "minute' "
    "ORDER BY c.created_at FOR UPDATE SKIP LOCKED), "
    "u AS (UPDATE crm_communications c SET digest_id = $2::uuid, status = CASE WHEN c.status = "
    "'scheduled' THEN 'queued' ELSE c.status END, queued_at = coalesce(c.queued_at, now()), "
    "updated_at = now() FROM m WHERE c.id = m.id "
    "RETURNING c.id, c.message_type, c.context::text, c.created_at, c.context_enc) "
    "SELECT id, message_type, context, context_enc FROM u ORDER BY created_at",
    2, false};
static const pg_stmt_t st_digest_run = {
    "comms_digest_run",
    "INSERT INTO crm_digest_runs (client_id, digest_date, communication_id, message_count) "
    "VALUES ($1, current_date, $2::uuid, $3::int) ON CONFLICT DO NOTHING",
    3, false};

cJSON *comms_gather_digest(pg_pool_t *db, const fe_keyring_t *kr, const comm_job_t *j,
                           hd_err_t *err)
{
    const char *p[] = {j->client_id, j->comm_id};
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return NULL;
    cJSON *items = NULL;
    PGresult *r = pg_exec(c, &st_gather, p, err);
    if (r != NULL) {
        items = cJSON_CreateArray();
        for (int i = 0; items && i < PQntuples(r); i++) {
            char *text = NULL;
            if (comms_context_open(kr, PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                                   PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3), &text,
                                   err) != 0) {
                hd_err_prefix(err, "digest member %s", PQgetvalue(r, i, 0));
                cJSON_Delete(items);
                items = NULL;
                break;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", PQgetvalue(r, i, 0));
            cJSON_AddStringToObject(o, "message_type", PQgetvalue(r, i, 1));
            cJSON *ctx = cJSON_Parse(text);
            free(text);
            cJSON_AddItemToObject(o, "context", ctx ? ctx : cJSON_CreateObject());
            cJSON_AddItemToArray(items, o);
        }
        char n[16];
        snprintf(n, sizeof(n), "%d", PQntuples(r));
        const char *dp[] = {j->client_id, j->comm_id, n};
        if (items && pg_exec_ok(c, &st_digest_run, dp, err) != 0) {
            cJSON_Delete(items);
            items = NULL;
        }
    }
    PQclear(r);
    if (pg_tx_end(db, c, items ? 0 : -1, err) != 0) {
        cJSON_Delete(items);
        items = NULL;
    }
    return items;
}

/* The message's status between attempts (see st_waiting). */
static int between(pg_conn_t *c, const comm_job_t *j, comm_outcome_t outcome, hd_err_t *err)
{
    const char *idp[] = {j->comm_id};
    if (outcome == OUTCOME_RETRY || outcome == OUTCOME_HELD)
        return pg_exec_ok(c, &st_waiting, idp, err);
    if (outcome == OUTCOME_NEXT)
        return pg_exec_ok(c, &st_requeued, idp, err);
    return 0;
}

/* The message failed: its failed state and its alert jobs. *now (may be
 * NULL): false when it had already ended (nothing changed). */
static int failed(pg_conn_t *c, const comm_job_t *j, const char *alert_targets,
                  const char *category, const char *reason, bool *now, hd_err_t *err)
{
    const char *idp[] = {j->comm_id};
    PGresult *r = pg_exec(c, &st_failed, idp, err);
    if (r == NULL)
        return -1;
    bool now_failed = atoi(PQcmdTuples(r)) > 0;
    PQclear(r);
    if (now)
        *now = now_failed;
    if (j->batch && pg_exec_ok(c, &st_members_failed, idp, err) != 0)
        return -1;
    return now_failed ? jobs_alert_on(c, j->comm_id, alert_targets, category, reason, err) : 0;
}

int comms_record_on(pg_conn_t *c, const comm_job_t *j, const comm_attempt_t *a,
                    comm_outcome_t outcome, double delay_s, const char *alert_targets,
                    hd_err_t *err)
{
    char attempt[16], latency[16];
    snprintf(attempt, sizeof(attempt), "%d", j->attempt + 1);
    snprintf(latency, sizeof(latency), "%d", a->latency_ms < 0 ? 0 : a->latency_ms);
    const char *lp[] = {j->comm_id,  a->channel,
                        attempt,     a->ok ? "sent" : "failed",
                        a->provider, a->provider_id,
                        a->raw_code, a->message,
                        a->category, a->may_have_been_sent ? "t" : "f",
                        latency,     a->details_json};
    int rc = move_job(c, j, outcome, delay_s, err);
    /* The attempt is a fact even when another process now holds the job. */
    if (rc >= 0 && pg_exec_ok(c, &st_log_attempt, lp, err) != 0)
        rc = -1;
    if (rc == 0 && !a->ok) {
        const char *ep[] = {j->comm_id, a->category, a->raw_code,
                            a->may_have_been_sent ? "t" : "f"};
        rc = pg_exec_ok(c, &st_last_error, ep, err);
    }
    if (rc == 0 && outcome == OUTCOME_SENT) {
        const char *sp[] = {j->comm_id, a->channel, a->provider_id};
        rc = pg_exec_ok(c, &st_sent, sp, err);
        if (rc == 0 && j->batch)
            rc = pg_exec_ok(c, &st_members_sent, sp, err);
    } else if (rc == 0 && outcome == OUTCOME_FAILED) {
        rc = failed(c, j, alert_targets, a->category, a->message, NULL, err);
    } else if (rc == 0) {
        rc = between(c, j, outcome, err);
    }
    if (rc == 0 && outcome == OUTCOME_HELD) {
        const char *ep[] = {j->comm_id, a->channel, "policy_error", "policy_error", a->held_reason};
        rc = pg_exec_ok(c, &st_log_event, ep, err);
    }
    return rc;
}

/* The plain successes of a batch (sent, not a digest) in one statement:
 * their attempt rows, their jobs gone (only where the lease is still the
 * recorder's) and their messages sent. Returns the job ids it deleted. */
static const pg_stmt_t st_sent_many = {
    "comms_sent_many",
    "WITH j AS (DELETE FROM crm_jobs t WHERE t.id = ANY($1::bigint[]) "
    "AND t.lease_owner = ($3::text[])[array_position($1::bigint[], t.id)] "
    "RETURNING t.id, t.communication_id), "
    "l AS (INSERT INTO crm_delivery_logs (communication_id, kind, channel, attempt, status, "
    "provider, provider_message_id, raw_code, message, category, may_have_been_sent, latency_ms, "
    "details) SELECT comm, 'attempt', ch, attempt::smallint, 'sent', provider, pid, code, msg, "
    "NULL, true, latency, coalesce(details::jsonb, '{}') "
    "FROM unnest($2::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], "
    "$9::text[], $10::int[], $11::text[]) "
    "AS d(comm, ch, attempt, provider, pid, code, msg, latency, details)), "
    "u AS (UPDATE crm_communications c SET status = 'sent', sent_at = now(), "
    "channel = ($4::text[])[array_position($2::uuid[], c.id)], "
    "provider_message_id = ($7::text[])[array_position($2::uuid[], c.id)], "
    "may_have_been_sent = true, updated_at = now() "
    "WHERE c.id = ANY(ARRAY(SELECT communication_id FROM j)) "
    "AND c.status IN ('scheduled', 'queued', 'sending', 'sent')) "
    "SELECT id FROM j",
    11, true};

static bool plain_send(const comm_record_t *r)
{
    return r->outcome == OUTCOME_SENT && r->a.ok && !r->job->batch;
}

static int record_plain(pg_conn_t *c, comm_record_t *recs, int n, hd_err_t *err)
{
    buf_t a[11];
    for (int k = 0; k < 11; k++)
        buf_init(&a[k]);
    for (int i = 0; i < n; i++) {
        if (!plain_send(&recs[i]))
            continue;
        const comm_job_t *j = recs[i].job;
        const comm_attempt_t *at = &recs[i].a;
        pg_arr_addf(&a[0], "%lld", (long long)j->job_id);
        pg_arr_add(&a[1], j->comm_id);
        pg_arr_add(&a[2], j->owner);
        pg_arr_add(&a[3], at->channel);
        pg_arr_addf(&a[4], "%lld", (long long)j->attempt + 1);
        pg_arr_add(&a[5], at->provider);
        pg_arr_add(&a[6], at->provider_id);
        pg_arr_add(&a[7], at->raw_code);
        pg_arr_add(&a[8], at->message);
        pg_arr_addf(&a[9], "%lld", (long long)(at->latency_ms < 0 ? 0 : at->latency_ms));
        pg_arr_add(&a[10], at->details_json);
        recs[i].result = 1; /* until the job is seen deleted below */
    }
    char *p[11];
    for (int k = 0; k < 11; k++)
        p[k] = pg_arr_end(&a[k]);
    PGresult *r = pg_exec(c, &st_sent_many, (const char *const *)p, err);
    for (int k = 0; k < 11; k++)
        free(p[k]);
    if (r == NULL)
        return -1;
    for (int k = 0; k < PQntuples(r); k++) {
        long long job = atoll(PQgetvalue(r, k, 0));
        for (int i = 0; i < n; i++)
            if (plain_send(&recs[i]) && recs[i].job->job_id == job)
                recs[i].result = 0;
    }
    PQclear(r);
    for (int i = 0; i < n; i++)
        if (plain_send(&recs[i]) && recs[i].result == 1)
            log_warn("lost a job's lease before recording its outcome; its new holder decides",
                     "comm_id", recs[i].job->comm_id);
    return 0;
}

int comms_record_many(pg_pool_t *db, comm_record_t *recs, int n, const char *alert_targets,
                      hd_err_t *err)
{
    int plain = 0;
    for (int i = 0; i < n; i++) {
        recs[i].result = -1;
        plain += plain_send(&recs[i]);
    }
    if (n == 0)
        return 0;
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    /* Only plain sends: one statement is one transaction already. */
    bool txn = plain < n;
    int rc = txn ? pg_tx_open(c, err) : 0;
    if (rc == 0 && plain > 0)
        rc = record_plain(c, recs, n, err);
    for (int i = 0; i < n && rc == 0; i++) {
        if (plain_send(&recs[i]))
            continue;
        recs[i].result = comms_record_on(c, recs[i].job, &recs[i].a, recs[i].outcome,
                                         recs[i].delay_s, alert_targets, err);
        if (recs[i].result < 0)
            rc = -1;
    }
    if (txn)
        rc = pg_tx_close(c, rc, err);
    pg_pool_put(db, c);
    if (rc != 0)
        for (int i = 0; i < n; i++)
            recs[i].result = -1;
    return rc;
}

int comms_record(pg_pool_t *db, const comm_job_t *j, const comm_attempt_t *a,
                 comm_outcome_t outcome, double delay_s, const char *alert_targets, hd_err_t *err)
{
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = comms_record_on(c, j, a, outcome, delay_s, alert_targets, err);
    /* 1 (lease lost): the attempt row is still a fact worth committing */
    int end = pg_tx_end(db, c, rc < 0 ? -1 : 0, err);
    return end != 0 ? -1 : rc;
}

int comms_event(pg_pool_t *db, const comm_job_t *j, const char *type, const char *message,
                hd_err_t *err)
{
    const char *ep[] = {j->comm_id, NULL, type, type, message};
    return pg_pool_exec_ok(db, &st_log_event, ep, err);
}

/* Suppressed: only a message no provider was ever handed and whose every
 * skip was a refusal (this one is already logged). */
static const pg_stmt_t st_suppressed = {
    "comms_suppressed",
    "UPDATE crm_communications c SET status = 'suppressed', suppressed_at = now(), "
    "updated_at = now() WHERE c.id = $1::uuid AND c.status IN ('scheduled', 'queued', 'sending') "
    "AND c.attempt_count = 0 AND NOT EXISTS (SELECT 1 FROM crm_delivery_logs l "
    "WHERE l.communication_id = c.id AND (l.kind = 'attempt' OR (l.event_type = 'skipped' "
    "AND l.status IS DISTINCT FROM 'refused')))",
    1, false};
static const pg_stmt_t st_members_suppressed = {
    "comms_members_suppressed",
    "UPDATE crm_communications SET status = 'suppressed', suppressed_at = now(), "
    "updated_at = now() WHERE digest_id = $1::uuid AND id <> $1::uuid "
    "AND status IN ('scheduled', 'queued', 'sending')",
    1, false};

/* The end of a chain at a skip: suppressed when st_suppressed allows it,
 * else failed (unless it had already ended). */
static int chain_ended(pg_conn_t *c, const comm_job_t *j, bool refused, const char *alert_targets,
                       const char *reason, comm_skip_end_t *end, hd_err_t *err)
{
    const char *idp[] = {j->comm_id};
    int n = refused ? exec_rows(c, &st_suppressed, idp, err) : 0;
    if (n < 0)
        return -1;
    if (n > 0) {
        *end = SKIP_SUPPRESSED;
        return j->batch ? pg_exec_ok(c, &st_members_suppressed, idp, err) : 0;
    }
    bool now_failed = false;
    int rc = failed(c, j, alert_targets, "unusable", reason, &now_failed, err);
    *end = now_failed ? SKIP_FAILED : SKIP_SETTLED;
    return rc;
}

int comms_skip(pg_pool_t *db, const comm_job_t *j, const char *channel, const char *reason,
               bool refused, bool last, const char *alert_targets, comm_skip_end_t *end,
               hd_err_t *err)
{
    const char *ep[] = {j->comm_id, channel, "skipped", refused ? "refused" : "skipped", reason};
    comm_outcome_t o = last ? OUTCOME_FAILED : OUTCOME_NEXT;
    *end = SKIP_NEXT;
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = move_job(c, j, o, 0, err);
    if (rc == 0)
        rc = pg_exec_ok(c, &st_log_event, ep, err);
    if (rc == 0)
        rc = last ? chain_ended(c, j, refused, alert_targets, reason, end, err)
                  : between(c, j, o, err);
    return pg_tx_end(db, c, rc, err);
}

int comms_drop(pg_pool_t *db, const comm_job_t *j, const char *reason, hd_err_t *err)
{
    const char *ep[] = {j->comm_id, NULL, "dropped", "dropped", reason};
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = move_job(c, j, OUTCOME_SENT, 0, err); /* the job goes; the message stays */
    if (rc == 0)
        rc = pg_exec_ok(c, &st_log_event, ep, err);
    return pg_tx_end(db, c, rc, err);
}

static const pg_stmt_t st_defer = {
    "comms_defer",
    "UPDATE crm_jobs SET due_at = to_timestamp($2::float8), lease_owner = NULL, "
    "lease_expires_at = NULL WHERE id = $1::bigint AND lease_owner = $3",
    3, false};

int comms_defer(pg_pool_t *db, const comm_job_t *j, int64_t until, const char *reason,
                hd_err_t *err)
{
    char job[24], at[32];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    snprintf(at, sizeof(at), "%lld", (long long)until);
    const char *p[] = {job, at, j->owner};
    const char *ep[] = {j->comm_id, NULL, "deferred", "deferred", reason};
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int n = exec_rows(c, &st_defer, p, err);
    int rc = n < 0 ? -1 : n == 0 ? 1 : 0;
    if (rc == 0)
        rc = pg_exec_ok(c, &st_log_event, ep, err);
    if (rc == 0)
        rc = between(c, j, OUTCOME_RETRY, err);
    /* 1: no longer ours, nothing written; ending it either way is harmless */
    int end = pg_tx_end(db, c, rc < 0 ? -1 : 0, err);
    return end != 0 ? -1 : rc;
}

/* Folding a capped send into the client's digest (comms_fold_digest), one
 * client at a time (an advisory lock for the transaction). The digest found
 * is locked: no worker claims it (SKIP LOCKED) before the message it gains
 * is committed, so its gathering cannot miss it. */
static const pg_stmt_t st_fold_lock = {
    "comms_fold_lock", "SELECT pg_advisory_xact_lock(hashtextextended('fold:' || $1, 0))", 1,
    false};
static const pg_stmt_t st_fold_find = {
    "comms_fold_find",
    "SELECT extract(epoch FROM j.due_at)::bigint FROM crm_jobs j "
    "JOIN crm_communications c ON c.id = j.communication_id "
    "WHERE c.client_id = $1 AND c.batch AND j.kind = 'send' AND j.lease_owner IS NULL "
    "AND j.due_at > now() ORDER BY j.due_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
    1, false};
static const pg_stmt_t st_fold_drop_job = {
    "comms_fold_drop_job", "DELETE FROM crm_jobs WHERE id = $1::bigint AND lease_owner = $2", 2,
    false};
static const pg_stmt_t st_fold_own_digest = {
    "comms_fold_own_digest",
    "UPDATE crm_jobs SET due_at = to_timestamp($3::float8), lease_owner = NULL, "
    "lease_expires_at = NULL, dedup_key = $4 WHERE id = $1::bigint AND lease_owner = $2 "
    "AND NOT EXISTS (SELECT 1 FROM crm_jobs WHERE dedup_key = $4)",
    4, false};
static const pg_stmt_t st_fold_message = {
    "comms_fold_message",
    "UPDATE crm_communications SET batch = true, send_at = to_timestamp($2::float8), "
    "status = 'scheduled', updated_at = now() WHERE id = $1::uuid",
    2, false};

int comms_fold_digest(pg_pool_t *db, const comm_job_t *j, int64_t slot, hd_err_t *err)
{
    if (j->client_id == NULL || j->batch)
        return 2;
    char job[24], at[32], dedup[300], why[200];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int64_t when = slot;
    const char *fp[] = {j->client_id};
    /* one fold per client at a time: two workers folding the same client's
     * sends would each find no digest and both make one (a unique-key clash) */
    PGresult *r =
        pg_exec_ok(c, &st_fold_lock, fp, err) == 0 ? pg_exec(c, &st_fold_find, fp, err) : NULL;
    int rc = r == NULL ? -1 : 0;
    bool joined = r && PQntuples(r) == 1;
    if (joined)
        when = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    snprintf(at, sizeof(at), "%lld", (long long)when);
    /* the key a digest job of this client and time has (comms_create) */
    snprintf(dedup, sizeof(dedup), "digest:%s:%s", j->client_id, at);
    if (rc == 0) {
        const char *dp[] = {job, j->owner};
        const char *op[] = {job, j->owner, at, dedup};
        int n = joined ? exec_rows(c, &st_fold_drop_job, dp, err)
                       : exec_rows(c, &st_fold_own_digest, op, err);
        rc = n < 0 ? -1 : n == 1 ? 0 : joined ? 1 : 2;
    }
    if (rc == 0) {
        const char *mp[] = {j->comm_id, at};
        rc = pg_exec_ok(c, &st_fold_message, mp, err);
    }
    if (rc == 0) {
        char when_s[32];
        time_t t = (time_t)when;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when_s, sizeof(when_s), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(why, sizeof(why),
                 "the client's cap (limits.cap) is reached; folded into the client's %s digest "
                 "of %s",
                 joined ? "next" : "own", when_s);
        const char *ep[] = {j->comm_id, NULL, "deferred", "deferred", why};
        rc = pg_exec_ok(c, &st_log_event, ep, err);
    }
    /* 1 or 2: nothing written; ending it either way is harmless */
    int end = pg_tx_end(db, c, rc < 0 ? -1 : 0, err);
    return end != 0 ? -1 : rc;
}
