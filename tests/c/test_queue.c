/*
 * test_queue.c - the send queue of repo_comms.c (comms_create, comms_claim,
 * comms_mark_sending_many, comms_record_many, comms_skip, comm_job_free)
 * against the real PostgreSQL named by HERALD_DATABASE_URL. The batched calls
 * send their values as array literals into unnest() / = ANY(); awkward text
 * (quotes, backslashes, braces, commas, newlines, UTF-8, the word NULL) must
 * come back unchanged. A skip ends a chain 'suppressed' only when every
 * channel was refused.
 * The tests run in a database of their own, created, migrated (from
 * $HERALD_SOURCE_DIR/migrations) and dropped by the group setup / teardown
 * with test_db.h, and check what they read back with their own SELECTs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "crypto/hash.h"
#include "store/pg.h"
#include "store/repo_comms.h"
#include "store/repo_jobs.h"
#include "test_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OWNER   "test-queue-worker"
#define LEASE_S 30
#define MAX_JOB 16

/* Our own database, herald_cq_<random hex>; its pool is the tests'. */
typedef testdb_t fixture_t;

typedef char comm_id_t[37];

/* ---- our own reads ---- */

static const pg_stmt_t st_comm = {
    "tq_comm",
    "SELECT status, channel, provider_message_id, last_error_category, last_error_code, "
    "attempt_count, may_have_been_sent FROM crm_communications WHERE id = $1::uuid",
    1};
static const pg_stmt_t st_attempts = {
    "tq_attempts",
    "SELECT channel, attempt, status, provider, provider_message_id, raw_code, message, category, "
    "may_have_been_sent, latency_ms, details->>'note', details->>'n', details::text "
    "FROM crm_delivery_logs WHERE communication_id = $1::uuid AND kind = 'attempt' ORDER BY id",
    1};
static const pg_stmt_t st_jobs = {
    "tq_jobs",
    "SELECT attempt, lease_owner, lease_expires_at IS NULL, "
    "extract(epoch from due_at - now())::float8 FROM crm_jobs WHERE communication_id = $1::uuid",
    1};
static const pg_stmt_t st_steal = {
    "tq_steal",
    "UPDATE crm_jobs SET lease_owner = 'someone-else' WHERE communication_id = $1::uuid", 1};
/* A status that has moved on while the job is still leased to us. */
static const pg_stmt_t st_force_sent = {
    "tq_force_sent", "UPDATE crm_communications SET status = 'sent' WHERE id = $1::uuid", 1};

/* Runs st with one parameter on a pooled connection; caller PQclear()s. */
static PGresult *query(pg_pool_t *pool, const pg_stmt_t *st, const char *arg)
{
    hd_err_t err;
    pg_conn_t *c = pg_pool_get(pool, 5000, &err);
    if (c == NULL)
        fail_msg("pg_pool_get: %s", err.msg);
    const char *p[] = {arg};
    PGresult *r = pg_exec(c, st, p, &err);
    pg_pool_put(pool, c);
    if (r == NULL)
        fail_msg("%s: %s", st->name, err.msg);
    return r;
}

static void assert_text(PGresult *r, int row, int col, const char *want)
{
    if (want == NULL) {
        if (!PQgetisnull(r, row, col))
            fail_msg("column %d: want SQL NULL, got \"%s\"", col, PQgetvalue(r, row, col));
        return;
    }
    if (PQgetisnull(r, row, col))
        fail_msg("column %d: want \"%s\", got SQL NULL", col, want);
    assert_string_equal(PQgetvalue(r, row, col), want);
}

static void assert_status(pg_pool_t *pool, const char *id, const char *want)
{
    PGresult *r = query(pool, &st_comm, id);
    assert_int_equal(PQntuples(r), 1);
    assert_text(r, 0, 0, want);
    PQclear(r);
}

static int count_jobs(pg_pool_t *pool, const char *id)
{
    PGresult *r = query(pool, &st_jobs, id);
    int n = PQntuples(r);
    PQclear(r);
    return n;
}

/* ---- making and claiming messages ---- */

/* One keyring for the messages of these tests (their contexts are sealed). */
static fe_keyring_t *test_keyring(void)
{
    static fe_keyring_t *kr;
    if (kr == NULL) {
        uint8_t k[32], idx[32];
        memset(k, 0x5a, sizeof(k));
        memset(idx, 0xa5, sizeof(idx));
        kr = fe_keyring_new(k, idx);
        assert_non_null(kr);
    }
    return kr;
}

static void create_msgs(pg_pool_t *pool, const char *client, int n, comm_id_t *ids)
{
    for (int i = 0; i < n; i++) {
        char *u = hash_uuid4();
        assert_non_null(u);
        snprintf(ids[i], sizeof(ids[i]), "%s", u);
        free(u);
        comm_new_t c = {.id = ids[i],
                        .client_id = client,
                        .message_type = "welcome",
                        .urgency = "critical",
                        .context_json = "{}",
                        .strategy_json = "{}",
                        .primary_channel = "email",
                        .fallbacks_csv = "",
                        .send_at = time(NULL),
                        .priority = 50,
                        .batch = false,
                        .requested_by = "test"};
        hd_err_t err;
        if (comms_create(pool, test_keyring(), &c, &err) != 0)
            fail_msg("comms_create: %s", err.msg);
        assert_status(pool, ids[i], "queued");
    }
}

/* Claims every due job (the database is ours: exactly the n just created)
 * and puts them in jobs[] in the order of ids. Caller comm_job_free()s. */
static void claim_msgs(pg_pool_t *pool, int n, const comm_id_t *ids, comm_job_t *jobs)
{
    comm_job_t got[MAX_JOB];
    hd_err_t err;
    int k = comms_claim(pool, test_keyring(), OWNER, MAX_JOB, LEASE_S, got, &err);
    if (k < 0)
        fail_msg("comms_claim: %s", err.msg);
    assert_int_equal(k, n);
    for (int i = 0; i < n; i++) {
        int at = -1;
        for (int g = 0; g < k; g++)
            if (strcmp(got[g].comm_id, ids[i]) == 0)
                at = g;
        if (at < 0)
            fail_msg("message %s was not claimed", ids[i]);
        jobs[i] = got[at]; /* takes ownership of its strings */
    }
    for (int i = 0; i < n; i++) {
        assert_string_equal(jobs[i].owner, OWNER);
        assert_string_equal(jobs[i].status, "queued");
        assert_int_equal(jobs[i].attempt, 0);
        assert_int_equal(jobs[i].channel_index, 0);
        assert_false(jobs[i].recovered);
        assert_false(jobs[i].batch);
        assert_string_equal(jobs[i].channels_csv, "email");
        assert_string_equal(jobs[i].message_type, "welcome");
        assert_string_equal(jobs[i].urgency, "critical");
        assert_null(jobs[i].plan_id);
        assert_null(jobs[i].recipient_enc);
    }
}

static void free_jobs(comm_job_t *jobs, int n)
{
    for (int i = 0; i < n; i++)
        comm_job_free(&jobs[i]);
}

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

static const pg_stmt_t st_sent_on_email = {
    "tq_sent_on_email",
    "UPDATE crm_communications SET status = 'sent', channel = 'email' WHERE id = $1::uuid", 1};
static const pg_stmt_t st_drop_send = {
    "tq_drop_send", "DELETE FROM crm_jobs WHERE communication_id = $1::uuid AND kind = 'send'", 1};
static const pg_stmt_t st_send_jobs = {
    "tq_send_jobs",
    "SELECT count(*) FILTER (WHERE kind = 'send'), count(*) FILTER (WHERE kind = 'no_receipt'), "
    "max(channel_index) FILTER (WHERE kind = 'send'), bool_or(payload ? 'resend') "
    "FROM crm_jobs WHERE communication_id = $1::uuid",
    1};
static const pg_stmt_t st_second_send = {
    "tq_second_send", "INSERT INTO crm_jobs (communication_id, kind) VALUES ($1::uuid, 'send')", 1};

static const pg_stmt_t st_resend_job = {
    "tq_resend_job",
    "INSERT INTO crm_jobs (communication_id, kind, due_at, payload) VALUES ($1::uuid, 'send', "
    "now() + interval '1 hour', '{\"resend\": true}')",
    1};
static const pg_stmt_t st_lease_all = {
    "tq_lease_all",
    "UPDATE crm_jobs SET lease_owner = 'w', lease_expires_at = now() + interval '1 minute' "
    "WHERE communication_id = $1::uuid",
    1};

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
    1};
static const pg_stmt_t st_drop_jobs = {"tq_drop_jobs",
                                       "DELETE FROM crm_jobs WHERE communication_id = $1::uuid", 1};
static const pg_stmt_t st_force_delivered = {
    "tq_force_delivered", "UPDATE crm_communications SET status = 'delivered' WHERE id = $1::uuid",
    1};

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

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    int rc = testdb_drop(fx);
    free(fx);
    *state = NULL;
    return rc;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    if (testdb_create(fx, "herald_cq_", "test_queue") != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_awkward_text_round_trip),
        cmocka_unit_test(test_lease_lost),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_cancel_wins_and_null_channel_is_left_alone),
        cmocka_unit_test(test_cancel_while_a_resend_waits),
        cmocka_unit_test(test_mark_never_moves_status_back),
        cmocka_unit_test(test_no_receipt_timer_and_one_send_job),
        cmocka_unit_test(test_skip_ends_suppressed_only_when_every_channel_was_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
