/*
 * queue_fixture.h - what test_queue.c and test_queue_chain.c share to test
 * the send queue of repo_comms.c against the real PostgreSQL: a database of
 * their own (test_db.h) made by the group setup and dropped by the teardown,
 * their own reads of a message's row and jobs, the keyring its context is
 * sealed with, and messages created and claimed the way a worker would.
 * Static helpers for those two test files; included after cmocka.h (they
 * assert).
 */
#ifndef HERALD_TESTS_QUEUE_FIXTURE_H
#define HERALD_TESTS_QUEUE_FIXTURE_H

#include "crypto/field.h"
#include "crypto/hash.h"
#include "store/pg.h"
#include "store/repo_comms.h"
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

static __attribute__((unused)) const pg_stmt_t st_comm = {
    "tq_comm",
    "SELECT status, channel, provider_message_id, last_error_category, last_error_code, "
    "attempt_count, may_have_been_sent FROM crm_communications WHERE id = $1::uuid",
    1, false};
static __attribute__((unused)) const pg_stmt_t st_jobs = {
    "tq_jobs",
    "SELECT attempt, lease_owner, lease_expires_at IS NULL, "
    "extract(epoch from due_at - now())::float8 FROM crm_jobs WHERE communication_id = $1::uuid",
    1, false};

/* Runs st with one parameter on a pooled connection; caller PQclear()s. */
static __attribute__((unused)) PGresult *query(pg_pool_t *pool, const pg_stmt_t *st,
                                               const char *arg)
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

static __attribute__((unused)) void assert_text(PGresult *r, int row, int col, const char *want)
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

static __attribute__((unused)) void assert_status(pg_pool_t *pool, const char *id, const char *want)
{
    PGresult *r = query(pool, &st_comm, id);
    assert_int_equal(PQntuples(r), 1);
    assert_text(r, 0, 0, want);
    PQclear(r);
}

static __attribute__((unused)) int count_jobs(pg_pool_t *pool, const char *id)
{
    PGresult *r = query(pool, &st_jobs, id);
    int n = PQntuples(r);
    PQclear(r);
    return n;
}

/* ---- making and claiming messages ---- */

/* One keyring for the messages of these tests (their contexts are sealed). */
static __attribute__((unused)) fe_keyring_t *test_keyring(void)
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

static __attribute__((unused)) void create_msgs(pg_pool_t *pool, const char *client, int n,
                                                comm_id_t *ids)
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
static __attribute__((unused)) void claim_msgs(pg_pool_t *pool, int n, const comm_id_t *ids,
                                               comm_job_t *jobs)
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

static __attribute__((unused)) void free_jobs(comm_job_t *jobs, int n)
{
    for (int i = 0; i < n; i++)
        comm_job_free(&jobs[i]);
}

/* ---- our own database ---- */

/* The group teardown: drops the database queue_setup made. */
static __attribute__((unused)) int queue_teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    int rc = testdb_drop(fx);
    free(fx);
    *state = NULL;
    return rc;
}

/* For the group setup: a database of its own for the test program who
 * (its name, for messages). */
static __attribute__((unused)) int queue_setup(void **state, const char *who)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    if (testdb_create(fx, "herald_cq_", who) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

#endif
