/*
 * test_queue_chain.c - how repo_comms.c carries a message's chain of jobs on,
 * or ends it, without a send: comms_cancel while a resend waits, the
 * no-receipt timer (comms_arm_no_receipt, comms_fire_no_receipt) and the one
 * send job per message the database enforces, and comms_skip, which ends a
 * chain 'suppressed' only when every channel was refused. Against the real
 * PostgreSQL named by HERALD_DATABASE_URL; the batched send path is in
 * test_queue.c.
 * The tests run in a database of their own, created, migrated (from
 * $HERALD_SOURCE_DIR/migrations) and dropped by the group setup / teardown
 * of queue_fixture.h, and check what they read back with their own SELECTs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "queue_fixture.h"
#include "store/pg.h"
#include "store/repo_comms.h"
#include "store/repo_jobs.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- resends and the no-receipt timer ---- */

static const pg_stmt_t st_sent_on_email = {
    "tq_sent_on_email",
    "UPDATE crm_communications SET status = 'sent', channel = 'email' WHERE id = $1::uuid", 1,
    false};
static const pg_stmt_t st_drop_send = {
    "tq_drop_send", "DELETE FROM crm_jobs WHERE communication_id = $1::uuid AND kind = 'send'", 1,
    false};
static const pg_stmt_t st_send_jobs = {
    "tq_send_jobs",
    "SELECT count(*) FILTER (WHERE kind = 'send'), count(*) FILTER (WHERE kind = 'no_receipt'), "
    "max(channel_index) FILTER (WHERE kind = 'send'), bool_or(payload ? 'resend') "
    "FROM crm_jobs WHERE communication_id = $1::uuid",
    1, false};
static const pg_stmt_t st_second_send = {
    "tq_second_send", "INSERT INTO crm_jobs (communication_id, kind) VALUES ($1::uuid, 'send')", 1,
    false};

static const pg_stmt_t st_resend_job = {
    "tq_resend_job",
    "INSERT INTO crm_jobs (communication_id, kind, due_at, payload) VALUES ($1::uuid, 'send', "
    "now() + interval '1 hour', '{\"resend\": true}')",
    1, false};
static const pg_stmt_t st_lease_all = {
    "tq_lease_all",
    "UPDATE crm_jobs SET lease_owner = 'w', lease_expires_at = now() + interval '1 minute' "
    "WHERE communication_id = $1::uuid",
    1, false};

/* A sent message whose failure receipt queued a resend: no provider holds
 * it, so it can be cancelled (and its resend goes); once a worker holds the
 * resend, it cannot; a sent message with nothing pending never can. */
static void test_cancel_while_a_resend_waits(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[3];
    create_msgs(fx->pool, "client-resend", 3, ids);
    char st[16];
    hd_err_t err;
    for (int i = 0; i < 3; i++) {
        PQclear(query(fx->pool, &st_drop_send, ids[i]));
        PQclear(query(fx->pool, &st_sent_on_email, ids[i]));
    }
    PQclear(query(fx->pool, &st_resend_job, ids[0]));
    PQclear(query(fx->pool, &st_resend_job, ids[1]));
    PQclear(query(fx->pool, &st_lease_all, ids[1]));

    assert_int_equal(comms_cancel(fx->pool, ids[0], st, &err), 0);
    assert_string_equal(st, "cancelled");
    assert_int_equal(count_jobs(fx->pool, ids[0]), 0);
    assert_int_equal(comms_cancel(fx->pool, ids[1], st, &err), 2);
    assert_string_equal(st, "sent");
    assert_int_equal(count_jobs(fx->pool, ids[1]), 1);
    assert_int_equal(comms_cancel(fx->pool, ids[2], st, &err), 2);
    assert_string_equal(st, "sent");
}

/* Claims the one due job (a timer) of the database. */
static void claim_timer(pg_pool_t *pool, comm_job_t *out)
{
    hd_err_t err;
    comm_job_t got[MAX_JOB];
    int k = comms_claim(pool, test_keyring(), OWNER, MAX_JOB, LEASE_S, got, &err);
    if (k != 1)
        fail_msg("expected the timer alone to be due, claimed %d", k);
    assert_string_equal(got[0].kind, "no_receipt");
    *out = got[0];
}

/* A no-receipt timer becomes the resend only when the message has no send
 * job; a second send job for one message is refused by the database. */
static void test_no_receipt_timer_and_one_send_job(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[1];
    comm_job_t jobs[1];
    hd_err_t err;
    create_msgs(fx->pool, "client-timer", 1, ids);
    claim_msgs(fx->pool, 1, ids, jobs); /* its send job: leased, so not claimable */
    PQclear(query(fx->pool, &st_sent_on_email, ids[0]));

    /* the invariant itself */
    pg_conn_t *c = pg_pool_get(fx->pool, 1000, &err);
    assert_non_null(c);
    const char *p[] = {ids[0]};
    assert_null(pg_exec(c, &st_second_send, p, &err));
    assert_true(pg_is_unique_violation(c));
    pg_pool_put(fx->pool, c);

    /* a send job exists: the timer goes, nothing else changes */
    assert_int_equal(comms_arm_no_receipt(fx->pool, &jobs[0], 0, &err), 0);
    comm_job_t timer;
    claim_timer(fx->pool, &timer);
    bool fired = true;
    assert_int_equal(comms_fire_no_receipt(fx->pool, &timer, "email", "test", &fired, &err), 0);
    assert_false(fired);
    comm_job_free(&timer);
    PGresult *r = query(fx->pool, &st_send_jobs, ids[0]);
    assert_text(r, 0, 0, "1");
    assert_text(r, 0, 1, "0");
    PQclear(r);

    /* no send job left: the timer becomes the resend on the next channel */
    PQclear(query(fx->pool, &st_drop_send, ids[0]));
    assert_int_equal(comms_arm_no_receipt(fx->pool, &jobs[0], 0, &err), 0);
    claim_timer(fx->pool, &timer);
    assert_int_equal(comms_fire_no_receipt(fx->pool, &timer, "email", "test", &fired, &err), 0);
    assert_true(fired);
    comm_job_free(&timer);
    r = query(fx->pool, &st_send_jobs, ids[0]);
    assert_text(r, 0, 0, "1");
    assert_text(r, 0, 1, "0");
    assert_text(r, 0, 2, "1");
    assert_text(r, 0, 3, "t");
    PQclear(r);
    PQclear(query(fx->pool, &st_drop_send, ids[0]));

    /* the timer of another channel: the message moved on, the timer goes */
    assert_int_equal(comms_arm_no_receipt(fx->pool, &jobs[0], 0, &err), 0);
    claim_timer(fx->pool, &timer);
    assert_int_equal(comms_fire_no_receipt(fx->pool, &timer, "sms", "test", &fired, &err), 0);
    assert_false(fired);
    comm_job_free(&timer);
    assert_int_equal(count_jobs(fx->pool, ids[0]), 0);
    free_jobs(jobs, 1);
}

/* ---- skips: the next channel, failed, or suppressed ---- */

static const pg_stmt_t st_ended = {
    "tq_ended",
    "SELECT status, suppressed_at IS NOT NULL, failed_at IS NOT NULL, "
    "(SELECT count(*) FROM crm_jobs j WHERE j.communication_id = c.id AND j.kind = 'alert'), "
    "(SELECT string_agg(l.status, ',' ORDER BY l.id) FROM crm_delivery_logs l "
    "WHERE l.communication_id = c.id AND l.event_type = 'skipped') "
    "FROM crm_communications c WHERE c.id = $1::uuid",
    1, false};
static const pg_stmt_t st_drop_jobs = {
    "tq_drop_jobs", "DELETE FROM crm_jobs WHERE communication_id = $1::uuid", 1, false};
static const pg_stmt_t st_force_delivered = {
    "tq_force_delivered", "UPDATE crm_communications SET status = 'delivered' WHERE id = $1::uuid",
    1, false};

/* Claims the one due job (message id's) into *out. */
static void claim_only(pg_pool_t *pool, const char *id, comm_job_t *out)
{
    comm_job_t got[MAX_JOB];
    hd_err_t err;
    int k = comms_claim(pool, test_keyring(), OWNER, MAX_JOB, LEASE_S, got, &err);
    if (k != 1)
        fail_msg("expected one due job, claimed %d", k);
    assert_string_equal(got[0].comm_id, id);
    *out = got[0];
}

/* Skips the channel in hand of the claimed job j, as the worker would
 * (skip_next: of the due job of message id). */
static comm_skip_end_t skip_on(pg_pool_t *pool, comm_job_t *j, bool refused, bool last)
{
    comm_skip_end_t end = SKIP_NEXT;
    hd_err_t err;
    if (comms_skip(pool, j, "email", refused ? "email: client opted out" : "render failed: x",
                   refused, last, "webhook", &end, &err) != 0)
        fail_msg("comms_skip: %s", err.msg);
    comm_job_free(j);
    return end;
}

static comm_skip_end_t skip_next(pg_pool_t *pool, const char *id, bool refused, bool last)
{
    comm_job_t j;
    claim_only(pool, id, &j);
    return skip_on(pool, &j, refused, last);
}

/* status, suppressed_at set, failed_at set, alert jobs, the skips' statuses */
static void assert_ended(pg_pool_t *pool, const char *id, const char *status, const char *supp,
                         const char *failed, const char *alerts, const char *skips)
{
    PGresult *r = query(pool, &st_ended, id);
    assert_text(r, 0, 0, status);
    assert_text(r, 0, 1, supp);
    assert_text(r, 0, 2, failed);
    assert_text(r, 0, 3, alerts);
    assert_text(r, 0, 4, skips);
    PQclear(r);
    PQclear(query(pool, &st_drop_jobs, id)); /* the alert jobs: not for the next claim */
}

/* Suppressed only when every channel was refused and no provider was ever
 * handed the message; any other end of the chain is a failure with its
 * alert. */
static void test_skip_ends_suppressed_only_when_every_channel_was_refused(void **state)
{
    fixture_t *fx = *state;
    comm_id_t id[6];
    create_msgs(fx->pool, "client-skip", 6, id);
    for (int i = 0; i < 6; i++)
        PQclear(query(fx->pool, &st_drop_jobs, id[i]));
    PQclear(query(fx->pool, &st_second_send, id[0]));

    /* the one channel refused */
    assert_int_equal(skip_next(fx->pool, id[0], true, true), SKIP_SUPPRESSED);
    assert_ended(fx->pool, id[0], "suppressed", "t", "f", "0", "refused");

    /* refused, then the last refused too */
    PQclear(query(fx->pool, &st_second_send, id[1]));
    assert_int_equal(skip_next(fx->pool, id[1], true, false), SKIP_NEXT);
    assert_status(fx->pool, id[1], "queued");
    assert_int_equal(skip_next(fx->pool, id[1], true, true), SKIP_SUPPRESSED);
    assert_ended(fx->pool, id[1], "suppressed", "t", "f", "0", "refused,refused");

    /* a channel that could not render, then a refusal: not the client's
     * wish alone, the operator must hear of it */
    PQclear(query(fx->pool, &st_second_send, id[2]));
    assert_int_equal(skip_next(fx->pool, id[2], false, false), SKIP_NEXT);
    assert_int_equal(skip_next(fx->pool, id[2], true, true), SKIP_FAILED);
    assert_ended(fx->pool, id[2], "failed", "f", "t", "1", "skipped,refused");

    /* the last channel unusable */
    PQclear(query(fx->pool, &st_second_send, id[3]));
    assert_int_equal(skip_next(fx->pool, id[3], false, true), SKIP_FAILED);
    assert_ended(fx->pool, id[3], "failed", "f", "t", "1", "skipped");

    /* an attempt failed on the first channel, the next one refused */
    PQclear(query(fx->pool, &st_second_send, id[4]));
    comm_job_t j;
    claim_only(fx->pool, id[4], &j);
    const char *const channels[] = {"email"};
    bool marked[1];
    hd_err_t err;
    assert_int_equal(comms_mark_sending_many(fx->pool, &j, channels, 1, marked, &err), 0);
    assert_true(marked[0]);
    comm_attempt_t a = {.channel = "email",
                        .provider = "smtp",
                        .message = "mailbox unavailable",
                        .category = "permanent"};
    assert_int_equal(comms_record(fx->pool, &j, &a, OUTCOME_NEXT, 0, "", &err), 0);
    comm_job_free(&j);
    assert_int_equal(skip_next(fx->pool, id[4], true, true), SKIP_FAILED);
    assert_ended(fx->pool, id[4], "failed", "f", "t", "1", "refused");

    /* status only moves forward: a delivered message stays delivered */
    PQclear(query(fx->pool, &st_second_send, id[5]));
    claim_only(fx->pool, id[5], &j);
    PQclear(query(fx->pool, &st_force_delivered, id[5]));
    assert_int_equal(skip_on(fx->pool, &j, true, true), SKIP_SETTLED);
    assert_ended(fx->pool, id[5], "delivered", "f", "f", "0", "refused");
}

/* ---- our own database ---- */

static int setup(void **state)
{
    return queue_setup(state, "test_queue_chain");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_while_a_resend_waits),
        cmocka_unit_test(test_no_receipt_timer_and_one_send_job),
        cmocka_unit_test(test_skip_ends_suppressed_only_when_every_channel_was_refused),
    };
    return cmocka_run_group_tests(tests, setup, queue_teardown);
}
