/*
 * repo_jobs.c - the queue's other jobs (see repo_jobs.h): no-receipt
 * timers, parked receipts, operations alerts, and finishing or repeating a
 * claimed job with an event on its message.
 */
#include "store/repo_jobs.h"
#include "base/buf.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt_t st_finish = {
    "jobs_finish", "DELETE FROM crm_jobs WHERE id = $1::bigint AND lease_owner = $2", 2, false};
static const pg_stmt_t st_again = {
    "jobs_again",
    "UPDATE crm_jobs SET attempt = attempt + 1, due_at = now() + make_interval(secs => "
    "$2::float8), lease_owner = NULL, lease_expires_at = NULL WHERE id = $1::bigint "
    "AND lease_owner = $3",
    3, false};
static const pg_stmt_t st_event = {
    "jobs_event",
    "INSERT INTO crm_delivery_logs (communication_id, kind, event_type, status, message) "
    "VALUES ($1::uuid, 'event', $2, $2, $3)",
    3, false};

/* st (a job change) and, when it changed the job, the event; one transaction. */
static int change(pg_pool_t *db, const pg_stmt_t *st, const char *const *p, const comm_job_t *j,
                  const char *event_type, const char *message, hd_err_t *err)
{
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, st, p, err);
    int rc = r ? 0 : -1;
    bool held = r && atoi(PQcmdTuples(r)) > 0;
    PQclear(r);
    if (rc == 0 && held && event_type) {
        const char *ep[] = {j->comm_id, event_type, message};
        rc = pg_exec_ok(c, &st_event, ep, err);
    }
    return pg_tx_end(db, c, rc, err);
}

int jobs_finish(pg_pool_t *db, const comm_job_t *j, const char *event_type, const char *message,
                hd_err_t *err)
{
    char job[24];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    const char *p[] = {job, j->owner};
    return change(db, &st_finish, p, j, event_type, message, err);
}

int jobs_again(pg_pool_t *db, const comm_job_t *j, double delay_s, const char *event_type,
               const char *message, hd_err_t *err)
{
    char job[24], delay[32];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    snprintf(delay, sizeof(delay), "%.3f", delay_s < 0 ? 0 : delay_s);
    const char *p[] = {job, delay, j->owner};
    return change(db, &st_again, p, j, event_type, message, err);
}

/* No attempt, no event: the job only waits (a provider bucket is full). */
static const pg_stmt_t st_wait = {
    "jobs_wait",
    "UPDATE crm_jobs SET due_at = now() + make_interval(secs => $2::float8), "
    "lease_owner = NULL, lease_expires_at = NULL WHERE id = $1::bigint AND lease_owner = $3",
    3, false};

int jobs_wait(pg_pool_t *db, const comm_job_t *j, double wait_s, hd_err_t *err)
{
    char job[24], w[32];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    snprintf(w, sizeof(w), "%.3f", wait_s < 0 ? 0 : wait_s);
    const char *p[] = {job, w, j->owner};
    return pg_pool_exec_ok(db, &st_wait, p, err);
}

/* ---- parked receipts ---- */

static const pg_stmt_t st_park = {
    "jobs_park_receipt",
    "INSERT INTO crm_jobs (communication_id, kind, priority, due_at, dedup_key, payload) "
    "VALUES ($1::uuid, 'receipt', 90, now(), 'receipt:' || $2, $3::jsonb) "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
    3, false};

int jobs_park_receipt(pg_pool_t *db, const char *comm_id, const char *dedup_key,
                      const char *payload_json, hd_err_t *err)
{
    const char *p[] = {comm_id, dedup_key, payload_json};
    return pg_pool_exec_ok(db, &st_park, p, err);
}

/* ---- alerts ---- */

static const pg_stmt_t st_alert = {
    "jobs_alert",
    "INSERT INTO crm_jobs (communication_id, kind, priority, due_at, dedup_key, payload) "
    "SELECT $1::uuid, 'alert', 100, now(), 'alert:' || $1 || ':' || t, "
    "jsonb_build_object('target', t, 'category', $3::text, 'reason', $4::text) "
    "FROM unnest(string_to_array($2, ',')) AS t "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
    4, false};

int jobs_alert_on(pg_conn_t *c, const char *comm_id, const char *targets, const char *category,
                  const char *reason, hd_err_t *err)
{
    if (targets == NULL || *targets == '\0')
        return 0;
    const char *p[] = {comm_id, targets, category ? category : "", reason ? reason : ""};
    return pg_exec_ok(c, &st_alert, p, err);
}

/* ---- no-receipt timers ---- */

static const pg_stmt_t st_arm = {
    "comms_arm_no_receipt",
    "INSERT INTO crm_jobs (communication_id, kind, priority, due_at, channel_index, dedup_key, "
    "payload) SELECT id, 'no_receipt', priority, now() + make_interval(secs => $3::float8), "
    "$2::smallint, 'no_receipt:' || id || ':' || $2, jsonb_build_object('after', $3::float8) "
    "FROM crm_communications WHERE id = $1::uuid "
    "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
    3, false};

int comms_arm_no_receipt(pg_pool_t *db, const comm_job_t *j, double seconds, hd_err_t *err)
{
    char idx[16], secs[32];
    snprintf(idx, sizeof(idx), "%d", j->channel_index);
    snprintf(secs, sizeof(secs), "%.3f", seconds);
    const char *p[] = {j->comm_id, idx, secs};
    return pg_pool_exec_ok(db, &st_arm, p, err);
}

/* Still no receipt: the timer job becomes the resend on the next channel
 * (only while the message is 'sent' on the timer's channel and no other send
 * job exists); otherwise the timer just goes. */
static const pg_stmt_t st_fire = {
    "comms_fire_no_receipt",
    "WITH m AS (SELECT id FROM crm_communications WHERE id = $1::uuid AND status = 'sent' "
    "AND channel = $2 AND NOT EXISTS (SELECT 1 FROM crm_jobs WHERE communication_id = $1::uuid "
    "AND kind = 'send')), "
    "u AS (UPDATE crm_jobs SET kind = 'send', channel_index = channel_index + 1, attempt = 0, "
    "payload = payload || '{\"resend\": true}', due_at = now(), dedup_key = NULL, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = $3::bigint AND lease_owner = $4 AND EXISTS (SELECT 1 FROM m) RETURNING 1), "
    "d AS (DELETE FROM crm_jobs WHERE id = $3::bigint AND lease_owner = $4 "
    "AND NOT EXISTS (SELECT 1 FROM m) RETURNING 1), "
    "e AS (INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, status, "
    "message) SELECT $1::uuid, 'event', $2, 'no_receipt', 'no_receipt', $5 FROM u) "
    "SELECT (SELECT count(*) FROM u)",
    5, false};

int comms_fire_no_receipt(pg_pool_t *db, const comm_job_t *j, const char *channel,
                          const char *message, bool *fired, hd_err_t *err)
{
    *fired = false;
    char job[24];
    snprintf(job, sizeof(job), "%lld", (long long)j->job_id);
    const char *p[] = {j->comm_id, channel, job, j->owner, message};
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_fire, p, err);
    if (r == NULL && pg_is_unique_violation(c)) {
        /* a receipt made the message's send job meanwhile: it wins, the timer goes */
        const char *dp[] = {job, j->owner};
        r = pg_exec(c, &st_finish, dp, err);
    } else if (r != NULL) {
        *fired = atoi(PQgetvalue(r, 0, 0)) > 0;
    }
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}
