/*
 * test_queue.c - the send queue's batched calls in repo_comms.c
 * (comms_create, comms_claim, comms_mark_sending_many, comms_record_many,
 * comm_job_free, and comms_cancel racing them) against the real PostgreSQL
 * named by HERALD_DATABASE_URL. The batched calls send their values as array
 * literals into unnest() / = ANY(); awkward text (quotes, backslashes,
 * braces, commas, newlines, UTF-8, the word NULL) must come back unchanged;
 * a lost lease or a status that moved on is never overwritten. How a chain
 * goes on or ends without a send is in test_queue_chain.c.
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

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- our own reads ---- */

static const pg_stmt_t st_attempts = {
    "tq_attempts",
    "SELECT channel, attempt, status, provider, provider_message_id, raw_code, message, category, "
    "may_have_been_sent, latency_ms, details->>'note', details->>'n', details::text "
    "FROM crm_delivery_logs WHERE communication_id = $1::uuid AND kind = 'attempt' ORDER BY id",
    1, false};
static const pg_stmt_t st_steal = {
    "tq_steal",
    "UPDATE crm_jobs SET lease_owner = 'someone-else' WHERE communication_id = $1::uuid", 1, false};
/* A status that has moved on while the job is still leased to us. */
static const pg_stmt_t st_force_sent = {
    "tq_force_sent", "UPDATE crm_communications SET status = 'sent' WHERE id = $1::uuid", 1, false};

static comm_attempt_t sent_attempt(const char *channel, const char *provider_id)
{
    return (comm_attempt_t){.channel = channel,
                            .provider = "outbox",
                            .provider_id = provider_id,
                            .message = "ok",
                            .ok = true,
                            .may_have_been_sent = true,
                            .latency_ms = 5};
}

/* ---- the tests ---- */

static void test_awkward_text_round_trip(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[3];
    comm_job_t jobs[3];
    create_msgs(fx->pool, "client-roundtrip", 3, ids);
    claim_msgs(fx->pool, 3, ids, jobs);
    assert_string_equal(jobs[0].client_id, "client-roundtrip");
    assert_string_equal(jobs[0].payload_json, "{}");

    /* A different channel each: the statement must give every message its own. */
    const char *const channels[] = {"email", "sms", "whatsapp"};
    bool marked[3];
    hd_err_t err;
    if (comms_mark_sending_many(fx->pool, jobs, channels, 3, marked, &err) != 0)
        fail_msg("comms_mark_sending_many: %s", err.msg);
    for (int i = 0; i < 3; i++) {
        assert_true(marked[i]);
        PGresult *r = query(fx->pool, &st_comm, ids[i]);
        assert_text(r, 0, 0, "sending");
        assert_text(r, 0, 1, channels[i]);
        assert_text(r, 0, 5, "1"); /* attempt_count */
        assert_text(r, 0, 6, "t"); /* may_have_been_sent */
        PQclear(r);
    }

    static const char *const provider[] = {"smtp", "twilio", "whatsapp"};
    static const char *const pid[] = {"<a\"b\\c@herald.test>", NULL, "wamid.HB{g},L 1"};
    /* "" must stay an empty string, not become NULL */
    static const char *const code[] = {"250 2.0.0 Ok: queued as {X,Y}", NULL, ""};
    /* "NULL" is four letters, not SQL NULL */
    static const char *const msg[] = {"he said \"hi\" \\ back, {braces} and a,comma", "NULL",
                                      "Zoë — ünïcode\nline two\t!"};
    static const char *const details[] = {"{\"note\": \"she said \\\"ok\\\" \\\\ done\"}", NULL,
                                          "{\"n\": 1}"};
    comm_record_t recs[3];
    for (int i = 0; i < 3; i++) {
        recs[i] = (comm_record_t){.job = &jobs[i],
                                  .a = {.channel = channels[i],
                                        .provider = provider[i],
                                        .provider_id = pid[i],
                                        .raw_code = code[i],
                                        .message = msg[i],
                                        .ok = true,
                                        .may_have_been_sent = true,
                                        .latency_ms = 10 + i,
                                        .details_json = details[i]},
                                  .outcome = OUTCOME_SENT,
                                  .result = 42};
    }
    if (comms_record_many(fx->pool, recs, 3, "", &err) != 0)
        fail_msg("comms_record_many: %s", err.msg);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(recs[i].result, 0);
        PGresult *r = query(fx->pool, &st_attempts, ids[i]);
        assert_int_equal(PQntuples(r), 1);
        assert_text(r, 0, 0, channels[i]);
        assert_text(r, 0, 1, "1"); /* attempt */
        assert_text(r, 0, 2, "sent");
        assert_text(r, 0, 3, provider[i]);
        assert_text(r, 0, 4, pid[i]);
        assert_text(r, 0, 5, code[i]);
        assert_text(r, 0, 6, msg[i]);
        assert_text(r, 0, 7, NULL); /* category */
        assert_text(r, 0, 8, "t");
        char lat[8];
        snprintf(lat, sizeof(lat), "%d", 10 + i);
        assert_text(r, 0, 9, lat);
        PQclear(r);

        r = query(fx->pool, &st_comm, ids[i]);
        assert_text(r, 0, 0, "sent");
        assert_text(r, 0, 1, channels[i]);
        assert_text(r, 0, 2, pid[i]);
        PQclear(r);

        assert_int_equal(count_jobs(fx->pool, ids[i]), 0);
    }
    /* details: the JSON arrived as JSON, its escaped string decoded once */
    PGresult *r = query(fx->pool, &st_attempts, ids[0]);
    assert_text(r, 0, 10, "she said \"ok\" \\ done");
    PQclear(r);
    r = query(fx->pool, &st_attempts, ids[1]);
    assert_text(r, 0, 12, "{}"); /* NULL details: an empty object */
    PQclear(r);
    r = query(fx->pool, &st_attempts, ids[2]);
    assert_text(r, 0, 11, "1");
    PQclear(r);

    free_jobs(jobs, 3);
}

static void test_lease_lost(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[1];
    comm_job_t jobs[1];
    create_msgs(fx->pool, "client-lease", 1, ids);
    claim_msgs(fx->pool, 1, ids, jobs);
    const char *const channels[] = {"email"};
    bool marked[1];
    hd_err_t err;
    assert_int_equal(comms_mark_sending_many(fx->pool, jobs, channels, 1, marked, &err), 0);
    assert_true(marked[0]);

    PGresult *r = query(fx->pool, &st_steal, ids[0]);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);

    comm_record_t rec = {
        .job = &jobs[0], .a = sent_attempt("email", "<lost@herald.test>"), .outcome = OUTCOME_SENT};
    if (comms_record_many(fx->pool, &rec, 1, "", &err) != 0)
        fail_msg("comms_record_many: %s", err.msg);
    assert_int_equal(rec.result, 1);

    /* The attempt is a fact: its row is there. */
    r = query(fx->pool, &st_attempts, ids[0]);
    assert_int_equal(PQntuples(r), 1);
    assert_text(r, 0, 2, "sent");
    assert_text(r, 0, 4, "<lost@herald.test>");
    PQclear(r);
    /* The rest belongs to the new holder. */
    r = query(fx->pool, &st_comm, ids[0]);
    assert_text(r, 0, 0, "sending");
    assert_text(r, 0, 2, NULL);
    PQclear(r);
    r = query(fx->pool, &st_jobs, ids[0]);
    assert_int_equal(PQntuples(r), 1);
    assert_text(r, 0, 1, "someone-else");
    PQclear(r);

    free_jobs(jobs, 1);
}

static void test_mixed_batch(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[2];
    comm_job_t jobs[2];
    create_msgs(fx->pool, "client-mixed", 2, ids);
    claim_msgs(fx->pool, 2, ids, jobs);
    const char *const channels[] = {"email", "email"};
    bool marked[2];
    hd_err_t err;
    assert_int_equal(comms_mark_sending_many(fx->pool, jobs, channels, 2, marked, &err), 0);
    assert_true(marked[0]);
    assert_true(marked[1]);

    comm_record_t recs[2] = {
        {.job = &jobs[0], .a = sent_attempt("email", "<ok@herald.test>"), .outcome = OUTCOME_SENT},
        {.job = &jobs[1],
         .a = {.channel = "email",
               .provider = "smtp",
               .raw_code = "421 4.7.0 try later",
               .message = "greylisted, \"come back\"",
               .category = "transient",
               .ok = false,
               .may_have_been_sent = false,
               .latency_ms = 30},
         .outcome = OUTCOME_RETRY,
         .delay_s = 120},
    };
    if (comms_record_many(fx->pool, recs, 2, "", &err) != 0)
        fail_msg("comms_record_many: %s", err.msg);
    assert_int_equal(recs[0].result, 0);
    assert_int_equal(recs[1].result, 0);

    assert_status(fx->pool, ids[0], "sent");
    assert_int_equal(count_jobs(fx->pool, ids[0]), 0);

    PGresult *r = query(fx->pool, &st_jobs, ids[1]);
    assert_int_equal(PQntuples(r), 1);
    assert_text(r, 0, 0, "1");  /* attempt */
    assert_text(r, 0, 1, NULL); /* lease_owner */
    assert_text(r, 0, 2, "t");  /* lease_expires_at IS NULL */
    double due = atof(PQgetvalue(r, 0, 3));
    if (due < 100 || due > 140)
        fail_msg("retry due in %.1f s, want about 120", due);
    PQclear(r);

    r = query(fx->pool, &st_comm, ids[1]);
    assert_string_not_equal(PQgetvalue(r, 0, 0), "sent");
    /* between attempts no provider holds it: it waits, and can be cancelled */
    assert_text(r, 0, 0, "scheduled");
    assert_text(r, 0, 2, NULL); /* provider_message_id */
    assert_text(r, 0, 3, "transient");
    assert_text(r, 0, 4, "421 4.7.0 try later");
    assert_text(r, 0, 6, "f"); /* the failed attempt says it was not sent */
    PQclear(r);

    r = query(fx->pool, &st_attempts, ids[1]);
    assert_int_equal(PQntuples(r), 1);
    assert_text(r, 0, 2, "failed");
    assert_text(r, 0, 6, "greylisted, \"come back\"");
    assert_text(r, 0, 7, "transient");
    PQclear(r);

    free_jobs(jobs, 2);
}

static void test_cancel_wins_and_null_channel_is_left_alone(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[3];
    comm_job_t jobs[3];
    create_msgs(fx->pool, "client-cancel", 3, ids);
    claim_msgs(fx->pool, 3, ids, jobs);

    char st[16];
    hd_err_t err;
    assert_int_equal(comms_cancel(fx->pool, ids[0], st, &err), 0);
    assert_string_equal(st, "cancelled");

    /* The third is marked, so the call did run; its channel must not be
     * taken from the skipped second entry. */
    const char *const channels[] = {"email", NULL, "sms"};
    bool marked[3] = {true, true, false};
    if (comms_mark_sending_many(fx->pool, jobs, channels, 3, marked, &err) != 0)
        fail_msg("comms_mark_sending_many: %s", err.msg);
    assert_false(marked[0]);
    assert_false(marked[1]);
    assert_true(marked[2]);

    PGresult *r = query(fx->pool, &st_comm, ids[0]);
    assert_text(r, 0, 0, "cancelled");
    assert_text(r, 0, 1, NULL);
    assert_text(r, 0, 5, "0");
    PQclear(r);
    r = query(fx->pool, &st_comm, ids[1]);
    assert_text(r, 0, 0, "queued");
    assert_text(r, 0, 1, NULL);
    assert_text(r, 0, 5, "0");
    assert_text(r, 0, 6, "f");
    PQclear(r);
    r = query(fx->pool, &st_comm, ids[2]);
    assert_text(r, 0, 0, "sending");
    assert_text(r, 0, 1, "sms");
    PQclear(r);

    free_jobs(jobs, 3);
}

/* The status guard on its own: comms_cancel also deletes the job, so the
 * test above would pass on the lease check alone. */
static void test_mark_never_moves_status_back(void **state)
{
    fixture_t *fx = *state;
    comm_id_t ids[1];
    comm_job_t jobs[1];
    create_msgs(fx->pool, "client-forward", 1, ids);
    claim_msgs(fx->pool, 1, ids, jobs);
    PGresult *r = query(fx->pool, &st_force_sent, ids[0]);
    PQclear(r);
    assert_int_equal(count_jobs(fx->pool, ids[0]), 1);

    const char *const channels[] = {"sms"};
    bool marked[1] = {true};
    hd_err_t err;
    assert_int_equal(comms_mark_sending_many(fx->pool, jobs, channels, 1, marked, &err), 0);
    assert_false(marked[0]);
    r = query(fx->pool, &st_comm, ids[0]);
    assert_text(r, 0, 0, "sent");
    assert_text(r, 0, 1, NULL);
    assert_text(r, 0, 5, "0");
    PQclear(r);

    free_jobs(jobs, 1);
}

/* ---- our own database ---- */

static int setup(void **state)
{
    return queue_setup(state, "test_queue");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_awkward_text_round_trip),
        cmocka_unit_test(test_lease_lost),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_cancel_wins_and_null_channel_is_left_alone),
        cmocka_unit_test(test_mark_never_moves_status_back),
    };
    return cmocka_run_group_tests(tests, setup, queue_teardown);
}
