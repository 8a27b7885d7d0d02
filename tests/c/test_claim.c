/*
 * test_claim.c - the claim of repo_claim.c (comms_claim, comms_release)
 * against the real PostgreSQL named by HERALD_DATABASE_URL: each claimed
 * job carries the version of its client's preferences as they are at the
 * claim, the very number the preferences repository gives the row
 * (prefs_row_t.version, which the preferences cache is compared with), and
 * says so when the client has no row; comms_extend renews only the jobs it
 * is given; and comms_queue_depth, the queue's
 * depth and the age of its longest-waiting due job. The tests run in a database of their
 * own, created, migrated (from $HERALD_SOURCE_DIR/migrations) and dropped by
 * the group setup / teardown with test_db.h.
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
#include "store/repo_prefs.h"
#include "test_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OWNER   "test-claim-worker"
#define LEASE_S 30
#define MAX_JOB 16

typedef struct fixture {
    testdb_t db; /* herald_cl_<random hex>, ours alone; db.pool on it */
    fe_keyring_t *kr;
} fixture_t;

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

/* A welcome email due now for client_id, with a new id written into id
 * (37 bytes). */
static comm_new_t new_msg(const char *client_id, char *id)
{
    char *u = hash_uuid4();
    assert_non_null(u);
    snprintf(id, 37, "%s", u);
    free(u);
    return (comm_new_t){.id = id,
                        .client_id = client_id,
                        .message_type = "welcome",
                        .urgency = "critical",
                        .context_json = "{}",
                        .strategy_json = "{}",
                        .primary_channel = "email",
                        .fallbacks_csv = "",
                        .send_at = time(NULL),
                        .priority = 50,
                        .requested_by = "test"};
}

/* A queued message for client_id; its id into id (37 bytes). */
static void create_msg(pg_pool_t *pool, const char *client_id, char *id)
{
    comm_new_t c = new_msg(client_id, id);
    hd_err_t err;
    if (comms_create(pool, test_keyring(), &c, &err) != 0)
        fail_msg("comms_create: %s", err.msg);
}

/* Saves the client's opt-outs (a consent change would do as well: any
 * change is a new version); *version gets the row's version as saved. */
static void save_prefs(fixture_t *fx, const char *client_id, const char *opted_out,
                       int64_t *version)
{
    prefs_patch_t p = {.client_id = client_id,
                       .email_op = PREFS_SET,
                       .email = "zoe@example.com",
                       .set_opted_out = true,
                       .nopted_out = opted_out ? 1 : 0,
                       .opted_out = {opted_out}};
    prefs_row_t row;
    bool created;
    hd_err_t err;
    int rc = prefs_repo_save(fx->db.pool, fx->kr, &p, "test", &created, &row, &err);
    if (rc != PREFS_OK)
        fail_msg("prefs_repo_save: %d %s", rc, err.msg);
    *version = row.version;
    prefs_row_free(&row);
}

/* Claims every due job and finds the one of message id among them. */
static void claim_one(pg_pool_t *pool, int want, const char *id, comm_job_t *out)
{
    comm_job_t got[MAX_JOB];
    hd_err_t err;
    int k = comms_claim(pool, test_keyring(), OWNER, MAX_JOB, LEASE_S, got, &err);
    if (k < 0)
        fail_msg("comms_claim: %s", err.msg);
    assert_int_equal(k, want);
    int at = -1;
    for (int g = 0; g < k; g++) {
        if (strcmp(got[g].comm_id, id) == 0)
            at = g;
        else
            comm_job_free(&got[g]);
    }
    if (at < 0)
        fail_msg("message %s was not claimed", id);
    *out = got[at]; /* takes ownership of its strings */
}

static void release(pg_pool_t *pool)
{
    hd_err_t err;
    if (comms_release(pool, OWNER, &err) != 0)
        fail_msg("comms_release: %s", err.msg);
}

static void test_claim_carries_the_current_preferences_version(void **state)
{
    fixture_t *fx = *state;
    char with[37], without[37];
    int64_t v1, v2;
    save_prefs(fx, "client-with-row", NULL, &v1);
    create_msg(fx->db.pool, "client-with-row", with);
    create_msg(fx->db.pool, "client-without-row", without);

    comm_job_t j;
    claim_one(fx->db.pool, 2, with, &j);
    assert_true(j.has_prefs);
    assert_true(j.prefs_version == v1);
    comm_job_free(&j);
    release(fx->db.pool);

    /* A client without preferences: no version, never 0 taken for one. */
    claim_one(fx->db.pool, 2, without, &j);
    assert_false(j.has_prefs);
    assert_true(j.prefs_version == 0);
    comm_job_free(&j);
    release(fx->db.pool);

    /* The client opts out after acceptance: the next claim sees the new
     * version, not the one of the row when the message was accepted. */
    save_prefs(fx, "client-with-row", "email", &v2);
    assert_true(v2 > v1);
    claim_one(fx->db.pool, 2, with, &j);
    assert_true(j.has_prefs);
    assert_true(j.prefs_version == v2);
    comm_job_free(&j);
    release(fx->db.pool);

    /* ... and a row created after acceptance is seen too. */
    int64_t v3;
    save_prefs(fx, "client-without-row", NULL, &v3);
    claim_one(fx->db.pool, 2, without, &j);
    assert_true(j.has_prefs);
    assert_true(j.prefs_version == v3);
    comm_job_free(&j);
    release(fx->db.pool);
}

/* Runs one statement on the test's database (its own connection). */
static void exec_sql(fixture_t *fx, const char *sql)
{
    if (testdb_admin_exec("test_claim", fx->db.url, sql) != 0)
        fail_msg("%s failed", sql);
}

/* comms_extend renews only the jobs it is given: a job the worker still
 * leases but no longer holds (its `sending` mark failed) must come back
 * when its lease ends. */
static void test_extend_renews_only_the_jobs_in_flight(void **state)
{
    fixture_t *fx = *state;
    exec_sql(fx, "DELETE FROM crm_jobs");
    char a[37], b[37];
    create_msg(fx->db.pool, "client-extend-a", a);
    create_msg(fx->db.pool, "client-extend-b", b);
    comm_job_t got[MAX_JOB];
    hd_err_t err;
    int k = comms_claim(fx->db.pool, test_keyring(), OWNER, MAX_JOB, LEASE_S, got, &err);
    if (k < 0)
        fail_msg("comms_claim: %s", err.msg);
    assert_int_equal(k, 2);
    long long in_flight = strcmp(got[0].comm_id, a) == 0 ? got[0].job_id : got[1].job_id;
    exec_sql(fx, "UPDATE crm_jobs SET lease_expires_at = now() + interval '5 seconds'");

    assert_int_equal(comms_extend(fx->db.pool, OWNER, &in_flight, 0, 3600, &err), 0);
    assert_int_equal(comms_extend(fx->db.pool, OWNER, &in_flight, 1, 3600, &err), 0);
    /* another owner's id list renews nothing of ours */
    assert_int_equal(comms_extend(fx->db.pool, "someone-else", &in_flight, 1, 7200, &err), 0);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "DO $$ BEGIN "
             "IF (SELECT lease_expires_at FROM crm_jobs j JOIN crm_communications m "
             "ON m.id = j.communication_id WHERE m.id = '%s') < now() + interval '3000 s' "
             "OR (SELECT lease_expires_at FROM crm_jobs j JOIN crm_communications m "
             "ON m.id = j.communication_id WHERE m.id = '%s') > now() + interval '60 s' "
             "OR (SELECT max(lease_expires_at) FROM crm_jobs) > now() + interval '3601 s' "
             "THEN RAISE EXCEPTION 'leases: the job in flight renewed, the other not'; "
             "END IF; END $$",
             a, b);
    exec_sql(fx, sql);
    for (int g = 0; g < k; g++)
        comm_job_free(&got[g]);
    release(fx->db.pool);
}

/* The claim commits without waiting for the WAL flush, and only the claim:
 * a deferred trigger on the jobs notes the synchronous_commit each
 * transaction that updates one commits with. */
static void test_claim_commits_without_waiting_for_the_flush(void **state)
{
    fixture_t *fx = *state;
    exec_sql(fx, "DELETE FROM crm_jobs");
    exec_sql(fx, "CREATE TABLE test_commit_modes (mode text); "
                 "CREATE FUNCTION test_note_mode() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 "BEGIN INSERT INTO test_commit_modes "
                 "VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$; "
                 "CREATE CONSTRAINT TRIGGER test_note_mode AFTER UPDATE ON crm_jobs "
                 "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_note_mode()");
    hd_err_t err;
    bool up;
    pg_pool_t *one = pg_pool_new(fx->db.url, 1, 5, 30000, &up, &err);
    assert_true(up);
    char a[37];
    create_msg(one, "client-async-claim", a);
    comm_job_t got[MAX_JOB];
    int k = comms_claim(one, test_keyring(), OWNER, MAX_JOB, LEASE_S, got, &err);
    if (k < 0)
        fail_msg("comms_claim: %s", err.msg);
    assert_int_equal(k, 1);
    exec_sql(fx, "DO $$ BEGIN IF (SELECT array_agg(mode) FROM test_commit_modes) "
                 "IS DISTINCT FROM ARRAY['off'] THEN RAISE EXCEPTION "
                 "'the claim committed with synchronous_commit %', "
                 "(SELECT array_agg(mode) FROM test_commit_modes); END IF; END $$");
    /* the next statement on the same connection waits for its flush again */
    long long job = got[0].job_id;
    assert_int_equal(comms_extend(one, OWNER, &job, 1, 3600, &err), 0);
    exec_sql(fx, "DO $$ BEGIN IF (SELECT array_agg(mode ORDER BY mode) FROM test_commit_modes) "
                 "IS DISTINCT FROM ARRAY['off', 'on'] THEN RAISE EXCEPTION "
                 "'after the claim: %', (SELECT array_agg(mode) FROM test_commit_modes); "
                 "END IF; END $$");
    comm_job_free(&got[0]);
    pg_pool_free(one);
    exec_sql(fx, "DROP TRIGGER test_note_mode ON crm_jobs; DROP FUNCTION test_note_mode(); "
                 "DROP TABLE test_commit_modes");
    release(fx->db.pool);
}

static void test_queue_depth_and_oldest_due_age(void **state)
{
    fixture_t *fx = *state;
    exec_sql(fx, "DELETE FROM crm_jobs");
    long due = -1, scheduled = -1, leased = -1;
    double age = -1;
    hd_err_t err;
    if (comms_queue_depth(fx->db.pool, &due, &scheduled, &leased, &age, &err) != 0)
        fail_msg("comms_queue_depth: %s", err.msg);
    assert_true(due == 0 && scheduled == 0 && leased == 0);
    assert_true(age == 0); /* nothing waits */

    char waiting[37], later[37], sql[256];
    create_msg(fx->db.pool, "client-q1", waiting);
    create_msg(fx->db.pool, "client-q2", later);
    snprintf(sql, sizeof(sql),
             "UPDATE crm_jobs SET due_at = now() - interval '120 seconds' "
             "WHERE communication_id = '%s'",
             waiting);
    exec_sql(fx, sql);
    snprintf(sql, sizeof(sql),
             "UPDATE crm_jobs SET due_at = now() + interval '1 hour' WHERE communication_id = '%s'",
             later);
    exec_sql(fx, sql);
    if (comms_queue_depth(fx->db.pool, &due, &scheduled, &leased, &age, &err) != 0)
        fail_msg("comms_queue_depth: %s", err.msg);
    assert_true(due == 1 && scheduled == 1 && leased == 0);
    /* due two minutes ago; a loaded machine may take a while to get here */
    if (age < 119.5 || age > 180)
        fail_msg("oldest due age %.3f s, expected about 120", age);

    /* claimed: in a worker's hands, no longer waiting */
    comm_job_t j;
    claim_one(fx->db.pool, 1, waiting, &j);
    comm_job_free(&j);
    if (comms_queue_depth(fx->db.pool, &due, &scheduled, &leased, NULL, &err) != 0)
        fail_msg("comms_queue_depth: %s", err.msg);
    assert_true(due == 0 && scheduled == 1 && leased == 1);
    if (comms_queue_depth(fx->db.pool, &due, &scheduled, &leased, &age, &err) != 0)
        fail_msg("comms_queue_depth: %s", err.msg);
    assert_true(age == 0);
    release(fx->db.pool);
}

/* ---- reads that do not grow with the queue or the clients ---- */

#define BULK 10000

/* Rows of table the backend of c has read so far (sequential reads, and
 * index entries read by any of its indexes), its own pending counts flushed
 * first so they are in the view. */
static long rows_read(PGconn *c, const char *table)
{
    PQclear(PQexec(c, "SELECT pg_stat_force_next_flush()"));
    const char *p[] = {table};
    PGresult *r = PQexecParams(c,
                               "SELECT coalesce((SELECT seq_tup_read FROM pg_stat_user_tables "
                               "WHERE relname = $1), 0) + coalesce((SELECT sum(idx_tup_read) "
                               "FROM pg_stat_user_indexes WHERE relname = $1), 0)",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("rows_read: %s", PQerrorMessage(c));
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* BULK messages copied from message id, for clients bulk-1..BULK, each
 * with a due send job (and, when prefs, a preferences row). */
static void bulk_queue(fixture_t *fx, const char *id, bool prefs)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO crm_communications SELECT (jsonb_populate_record(t, "
             "jsonb_build_object('id', gen_random_uuid(), 'client_id', 'bulk-' || g))).* "
             "FROM crm_communications t, generate_series(1, %d) g WHERE t.id = '%s'",
             BULK, id);
    exec_sql(fx, sql);
    exec_sql(fx, "INSERT INTO crm_jobs (communication_id, kind, priority, due_at) "
                 "SELECT id, 'send', 50, now() - interval '1 minute' FROM crm_communications "
                 "WHERE client_id LIKE 'bulk-%'");
    if (prefs) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO crm_client_preferences (client_id) SELECT 'bulk-' || g "
                 "FROM generate_series(1, %d) g",
                 BULK);
        exec_sql(fx, sql);
    }
}

static void bulk_drop(fixture_t *fx)
{
    exec_sql(fx, "DELETE FROM crm_communications WHERE client_id LIKE 'bulk-%'");
    exec_sql(fx, "DELETE FROM crm_client_preferences WHERE client_id LIKE 'bulk-%'");
    exec_sql(fx, "DELETE FROM crm_jobs");
}

/* Claims 8 of the due jobs on c and fails when that read more than a few
 * rows of any table it touches. */
static void claim_8_reads_little(PGconn *c, const char *when)
{
    static const char *const tables[] = {"crm_jobs", "crm_communications",
                                         "crm_client_preferences"};
    long before[3];
    for (int t = 0; t < 3; t++)
        before[t] = rows_read(c, tables[t]);
    PGresult *r = PQexec(c, "SELECT count(*) FROM crm_claim_jobs(8, 'probe', 30)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("claim: %s", PQerrorMessage(c));
    assert_string_equal(PQgetvalue(r, 0, 0), "8");
    PQclear(r);
    for (int t = 0; t < 3; t++) {
        long n = rows_read(c, tables[t]) - before[t];
        if (n > 100)
            fail_msg("claiming 8 jobs (planned %s) read %ld rows of %s (%d queued)", when, n,
                     tables[t], BULK);
    }
}

static PGconn *connect_to(fixture_t *fx)
{
    PGconn *c = PQconnectdb(fx->db.url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    return c;
}

/* A claim of 8 jobs from a queue of 10,000 due ones, for 10,000 clients
 * with preferences, reads a few rows of each table per job claimed, however
 * its plan was made: it is made once per connection (generic), on the
 * tables as they are then. Planned on an empty queue (every table counts one
 * row), the claim read the whole job and message tables as the outer side
 * of nested loops; planned on a backlog (LIMIT n counted as a tenth of it),
 * it hashed the whole job and preferences tables (migration 0021). Either
 * way its cost grew with the backlog, and a queue that fell behind fell
 * further behind. */
static void test_claim_reads_what_it_claims(void **state)
{
    fixture_t *fx = *state;
    bulk_drop(fx);
    exec_sql(fx, "ALTER TABLE crm_jobs SET (autovacuum_enabled = false); "
                 "ALTER TABLE crm_communications SET (autovacuum_enabled = false); "
                 "ALTER TABLE crm_client_preferences SET (autovacuum_enabled = false)");
    exec_sql(fx, "ANALYZE crm_jobs, crm_communications, crm_client_preferences");

    /* planned on the empty queue, then a backlog comes */
    PGconn *early = connect_to(fx);
    PGresult *r = PQexec(early, "SELECT count(*) FROM crm_claim_jobs(8, 'probe', 30)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("claim: %s", PQerrorMessage(early));
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    char id[37];
    create_msg(fx->db.pool, "client-template", id);
    bulk_queue(fx, id, true);
    claim_8_reads_little(early, "on an empty queue");
    PQfinish(early);

    /* planned on the backlog, analyzed */
    exec_sql(fx, "ANALYZE crm_jobs, crm_communications, crm_client_preferences");
    PGconn *late = connect_to(fx);
    claim_8_reads_little(late, "on the backlog");
    PQfinish(late);
    exec_sql(fx, "ALTER TABLE crm_jobs RESET (autovacuum_enabled); "
                 "ALTER TABLE crm_communications RESET (autovacuum_enabled); "
                 "ALTER TABLE crm_client_preferences RESET (autovacuum_enabled)");
    bulk_drop(fx);
}

/* The acceptance's batch insert reads, for each message, whether its
 * client has preferences (a request that guessed none) and the request's
 * idempotency key: by key, a few rows, even with the plan made when both
 * tables were empty and kept while they grew to 10,000 rows (a generic plan
 * is kept until the statistics change). Made that way, the preferences'
 * check hashed every client's row on each call. */
static void test_acceptance_probes_by_key(void **state)
{
    fixture_t *fx = *state;
    hd_err_t err;
    bool up;
    bulk_drop(fx);
    exec_sql(fx, "DELETE FROM crm_idempotency_keys");
    exec_sql(fx, "ALTER TABLE crm_client_preferences SET (autovacuum_enabled = false); "
                 "ALTER TABLE crm_idempotency_keys SET (autovacuum_enabled = false)");
    exec_sql(fx, "ANALYZE crm_client_preferences, crm_idempotency_keys");
    pg_pool_t *one = pg_pool_new(fx->db.url, 1, 5, 30000, &up, &err);
    assert_true(up);
    static const char *const tables[] = {"crm_client_preferences", "crm_idempotency_keys"};
    comm_new_t m[2];
    const comm_new_t *batch[2];
    char ids[2][37], keys[2][32];
    int results[2];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 2; i++) {
            snprintf(keys[i], sizeof(keys[i]), "key-%d-%d", round, i);
            char sql[256];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO crm_idempotency_keys (principal, idempotency_key, "
                     "request_hash) VALUES ('test-principal', '%s', repeat('a', 64))",
                     keys[i]);
            exec_sql(fx, sql);
            m[i] = new_msg(i ? "client-guess-b" : "client-guess-a", ids[i]);
            m[i].idempotency_key = keys[i];
            m[i].idem_principal = "test-principal";
            m[i].idem_response = "{\"id\":\"x\"}";
            m[i].unless_prefs = true;
            batch[i] = &m[i];
        }
        long before[2] = {0, 0};
        if (round == 1) {
            /* the plan was made on empty tables; now they have many rows and
             * no new statistics */
            char sql[512];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO crm_client_preferences (client_id) SELECT 'bulk-' || g "
                     "FROM generate_series(1, %d) g",
                     BULK);
            exec_sql(fx, sql);
            snprintf(sql, sizeof(sql),
                     "INSERT INTO crm_idempotency_keys (principal, idempotency_key, "
                     "request_hash) SELECT 'test-principal', 'bulk-' || g, repeat('a', 64) "
                     "FROM generate_series(1, %d) g",
                     BULK);
            exec_sql(fx, sql);
            pg_conn_t *c = pg_pool_get(one, 5000, &err);
            assert_non_null(c);
            for (int t = 0; t < 2; t++)
                before[t] = rows_read(pg_raw(c), tables[t]);
            pg_pool_put(one, c);
        }
        if (comms_create_many(one, test_keyring(), batch, 2, results, &err) != 0)
            fail_msg("comms_create_many: %s", err.msg);
        assert_int_equal(results[0], 0);
        assert_int_equal(results[1], 0);
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "DO $$ BEGIN IF (SELECT count(*) FROM crm_idempotency_keys WHERE "
                 "idempotency_key IN ('%s', '%s') AND state = 'done') <> 2 THEN "
                 "RAISE EXCEPTION 'the idempotency keys were not completed'; END IF; END $$",
                 keys[0], keys[1]);
        exec_sql(fx, sql);
        if (round == 1) {
            pg_conn_t *c = pg_pool_get(one, 5000, &err);
            assert_non_null(c);
            for (int t = 0; t < 2; t++) {
                long n = rows_read(pg_raw(c), tables[t]) - before[t];
                if (n > 10)
                    fail_msg("accepting 2 messages read %ld rows of %s (%d rows)", n, tables[t],
                             BULK);
            }
            pg_pool_put(one, c);
        }
    }
    pg_pool_free(one);
    exec_sql(fx, "ALTER TABLE crm_client_preferences RESET (autovacuum_enabled); "
                 "ALTER TABLE crm_idempotency_keys RESET (autovacuum_enabled)");
    exec_sql(fx, "DELETE FROM crm_idempotency_keys");
    bulk_drop(fx);
}

/* ---- our own database ---- */

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    fe_keyring_free(fx->kr);
    int rc = testdb_drop(&fx->db);
    free(fx);
    *state = NULL;
    return rc;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    if (testdb_create(&fx->db, "herald_cl_", "test_claim") != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    uint8_t k[32], idx[32];
    for (int i = 0; i < 32; i++) {
        k[i] = (uint8_t)(0x01 + i);
        idx[i] = (uint8_t)(0x81 + i);
    }
    fx->kr = fe_keyring_new(k, idx);
    if (fx->kr == NULL) {
        fprintf(stderr, "test_claim: no keyring\n");
        teardown(state);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_carries_the_current_preferences_version),
        cmocka_unit_test(test_extend_renews_only_the_jobs_in_flight),
        cmocka_unit_test(test_claim_commits_without_waiting_for_the_flush),
        cmocka_unit_test(test_queue_depth_and_oldest_due_age),
        cmocka_unit_test(test_claim_reads_what_it_claims),
        cmocka_unit_test(test_acceptance_probes_by_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
