/*
 * test_acceptq.c - group commit of acceptance: comms_create_many (many
 * messages, one statement) and engine/acceptq (concurrent requests share a
 * commit; a row the database refuses fails only its own request), against
 * the real PostgreSQL named by HERALD_DATABASE_URL, in a database of their
 * own (test_db.h). What they check is read back with their own SELECTs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "crypto/hash.h"
#include "engine/acceptq.h"
#include "store/pg.h"
#include "store/repo_comms.h"
#include "test_db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef testdb_t fixture_t;

static fe_keyring_t *keyring(void)
{
    static fe_keyring_t *kr;
    if (kr == NULL) {
        uint8_t k[32], idx[32];
        memset(k, 0x3c, sizeof(k));
        memset(idx, 0xc3, sizeof(idx));
        kr = fe_keyring_new(k, idx);
        assert_non_null(kr);
    }
    return kr;
}

/* Our own reads go over a connection of their own (the pool prepares its
 * statements by address, so it is no place for ad-hoc SQL). */
static PGconn *reader;

/* One text value of our own query; caller frees. NULL for SQL NULL. */
static char *scalar(pg_pool_t *pool, const char *sql, const char *arg)
{
    (void)pool;
    const char *p[] = {arg};
    PGresult *r = PQexecParams(reader, sql, arg ? 1 : 0, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(reader));
    char *v = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

static void want(pg_pool_t *pool, const char *sql, const char *arg, const char *expected)
{
    char *v = scalar(pool, sql, arg);
    if (expected == NULL ? v != NULL : v == NULL || strcmp(v, expected) != 0)
        fail_msg("%s (%s): got %s, want %s", sql, arg ? arg : "", v ? v : "NULL",
                 expected ? expected : "NULL");
    free(v);
}

typedef struct msg {
    char id[37];
    char client[64];
    comm_new_t c;
} msg_t;

static void make(msg_t *m, const char *client, const char *context)
{
    char *u = hash_uuid4();
    snprintf(m->id, sizeof(m->id), "%s", u);
    free(u);
    snprintf(m->client, sizeof(m->client), "%s", client);
    m->c = (comm_new_t){.id = m->id,
                        .plan_id = "plan-1",
                        .client_id = m->client,
                        .message_type = "welcome",
                        .urgency = "high",
                        .context_json = context,
                        .strategy_json = "{\"reasons\": [\"test\"]}",
                        .primary_channel = "email",
                        .fallbacks_csv = "sms,whatsapp",
                        .send_at = time(NULL),
                        .priority = 70,
                        .requested_by = "test"};
}

/* Every field a batch carries comes back as a lone insert would store it:
 * awkward text, NULLs, a future send time, two digests of one client (one
 * job between them), an idempotency record completed in the same commit. */
static void test_many_in_one_statement(void **state)
{
    fixture_t *fx = *state;
    pg_pool_t *pool = fx->pool;
    msg_t m[6];
    make(&m[0], "c-\"quoted\" {braces}, commas\\ NULL", "{\"name\": \"Zoë \\\"Z\\\" {x}\"}");
    make(&m[1], "c-plain", "{}");
    m[1].c.send_at = time(NULL) + 3600;
    m[1].c.fallbacks_csv = "";
    m[1].c.payload_json = "{\"attachments\": []}";
    make(&m[2], "c-digest", "{}");
    make(&m[3], "c-digest", "{}");
    m[2].c.batch = m[3].c.batch = true;
    m[2].c.urgency = m[3].c.urgency = "low";
    m[3].c.send_at = m[2].c.send_at = time(NULL) + 7200;
    make(&m[4], "c-idem", "{}");
    m[4].c.idempotency_key = "key-1";
    m[4].c.idem_principal = "apikey:test";
    m[4].c.idem_response = "{\"id\": \"x\"}";
    make(&m[5], "c-recipient", "{}");
    m[5].c.recipient_enc = "sealed-recipient";
    assert_int_equal(
        testdb_admin_exec("test_acceptq", fx->url,
                          "INSERT INTO crm_idempotency_keys (principal, idempotency_key, "
                          "request_hash) VALUES ('apikey:test', 'key-1', repeat('c', 64))"),
        0);

    const comm_new_t *c[6];
    for (int i = 0; i < 6; i++)
        c[i] = &m[i].c;
    hd_err_t err;
    int results[6] = {-1, -1, -1, -1, -1, -1};
    if (comms_create_many(pool, keyring(), c, 6, results, &err) != 0)
        fail_msg("comms_create_many: %s", err.msg);
    for (int i = 0; i < 6; i++)
        assert_int_equal(results[i], 0);

    want(pool, "SELECT client_id FROM crm_communications WHERE id = $1::uuid", m[0].id,
         m[0].client);
    char *enc =
        scalar(pool, "SELECT context_enc FROM crm_communications WHERE id = $1::uuid", m[0].id);
    char *clear = NULL;
    assert_int_equal(comms_context_open(keyring(), NULL, enc, &clear, &err), 0);
    assert_string_equal(clear, m[0].c.context_json);
    free(enc);
    free(clear);
    want(pool,
         "SELECT status || ' ' || priority || ' ' || array_to_string(fallback_channels, ',') || "
         "' ' || (strategy->'reasons'->>0) || ' ' || coalesce(payload::text, 'null') FROM "
         "crm_communications WHERE id = $1::uuid",
         m[0].id, "queued 70 sms,whatsapp test null");
    want(pool,
         "SELECT status || ' ' || cardinality(fallback_channels) || ' ' || payload::text || ' ' "
         "|| (queued_at IS NULL) FROM crm_communications WHERE id = $1::uuid",
         m[1].id, "scheduled 0 {\"attachments\": []} true");
    want(
        pool,
        "SELECT count(*)::text FROM crm_jobs WHERE dedup_key LIKE 'digest:c-digest:%' AND $1::text "
        "IS NOT NULL",
        "x", "1");
    want(pool,
         "SELECT state || ' ' || response_status || ' ' || response_body FROM "
         "crm_idempotency_keys WHERE idempotency_key = $1",
         "key-1", "done 202 {\"id\": \"x\"}");
    /* the communication id of the record is the message's */
    want(pool, "SELECT communication_id::text FROM crm_idempotency_keys WHERE idempotency_key = $1",
         "key-1", m[4].id);
    want(pool, "SELECT recipient_enc FROM crm_communications WHERE id = $1::uuid", m[5].id,
         "sealed-recipient");
    want(pool, "SELECT count(*)::text FROM crm_jobs WHERE kind = 'send' AND $1::text IS NOT NULL",
         "x", "5");
}

/* A row the database refuses stores none of the statement's. */
static void test_one_bad_row_stores_nothing(void **state)
{
    fixture_t *fx = *state;
    msg_t ok, bad;
    make(&ok, "c-ok-with-bad", "{}");
    make(&bad, "c-bad", "{}");
    char long_plan[260];
    memset(long_plan, 'p', sizeof(long_plan) - 1);
    long_plan[sizeof(long_plan) - 1] = '\0';
    bad.c.plan_id = long_plan; /* CHECK (length(plan_id) <= 200) */
    const comm_new_t *c[] = {&ok.c, &bad.c};
    hd_err_t err;
    int results[2];
    assert_int_equal(comms_create_many(fx->pool, keyring(), c, 2, results, &err), -1);
    want(fx->pool, "SELECT count(*)::text FROM crm_communications WHERE client_id LIKE $1",
         "c-%bad", "0");
}

/* unless_prefs: a message decided without reading the client's preferences
 * is stored only while the client has no row; with one, nothing of it is
 * (no message, no job, its idempotency record left in progress), and the
 * others of the statement are stored. Alone or in a batch. */
static void test_unless_prefs_stores_only_for_a_client_without_a_row(void **state)
{
    fixture_t *fx = *state;
    pg_pool_t *pool = fx->pool;
    assert_int_equal(testdb_admin_exec("test_acceptq", fx->url,
                                       "INSERT INTO crm_client_preferences (client_id) VALUES "
                                       "('c-has-row'), ('c-has-row-alone')"),
                     0);
    assert_int_equal(
        testdb_admin_exec("test_acceptq", fx->url,
                          "INSERT INTO crm_idempotency_keys (principal, idempotency_key, "
                          "request_hash) VALUES ('apikey:test', 'key-guard', repeat('d', 64))"),
        0);
    msg_t m[3];
    make(&m[0], "c-no-row", "{}");
    make(&m[1], "c-has-row", "{}");
    make(&m[2], "c-has-row", "{}");
    m[0].c.unless_prefs = m[1].c.unless_prefs = true;
    m[1].c.idempotency_key = "key-guard";
    m[1].c.idem_principal = "apikey:test";
    m[1].c.idem_response = "{\"id\": \"guarded\"}";
    const comm_new_t *c[] = {&m[0].c, &m[1].c, &m[2].c};
    int results[3] = {-1, -1, -1};
    hd_err_t err;
    if (comms_create_many(pool, keyring(), c, 3, results, &err) != 0)
        fail_msg("comms_create_many: %s", err.msg);
    assert_int_equal(results[0], 0);
    assert_int_equal(results[1], COMMS_PREFS_EXIST);
    assert_int_equal(results[2], 0); /* not guarded: stored whatever the row */
    want(pool, "SELECT count(*)::text FROM crm_communications WHERE id = $1::uuid", m[0].id, "1");
    want(pool, "SELECT count(*)::text FROM crm_communications WHERE id = $1::uuid", m[1].id, "0");
    want(pool, "SELECT count(*)::text FROM crm_communications WHERE id = $1::uuid", m[2].id, "1");
    want(pool, "SELECT count(*)::text FROM crm_jobs WHERE communication_id = $1::uuid", m[1].id,
         "0");
    want(pool, "SELECT count(*)::text FROM crm_jobs WHERE communication_id = $1::uuid", m[0].id,
         "1");
    want(pool,
         "SELECT state || ' ' || (communication_id IS NULL) FROM crm_idempotency_keys "
         "WHERE idempotency_key = $1",
         "key-guard", "in_progress true");

    /* alone (comms_create, the statement of a lone request) */
    msg_t one, free_one;
    make(&one, "c-has-row-alone", "{}");
    make(&free_one, "c-no-row-alone", "{}");
    one.c.unless_prefs = free_one.c.unless_prefs = true;
    assert_int_equal(comms_create(pool, keyring(), &one.c, &err), COMMS_PREFS_EXIST);
    want(pool, "SELECT count(*)::text FROM crm_communications WHERE id = $1::uuid", one.id, "0");
    assert_int_equal(comms_create(pool, keyring(), &free_one.c, &err), 0);
    want(pool, "SELECT count(*)::text FROM crm_jobs WHERE communication_id = $1::uuid", free_one.id,
         "1");
}

typedef struct worker_arg {
    acceptq_t *q;
    pg_pool_t *pool;
    int n, failed;
    bool with_bad;
} worker_arg_t;

static void *writer(void *p)
{
    worker_arg_t *a = p;
    char long_plan[260];
    memset(long_plan, 'p', sizeof(long_plan) - 1);
    long_plan[sizeof(long_plan) - 1] = '\0';
    for (int i = 0; i < a->n; i++) {
        msg_t m;
        make(&m, "c-group", "{}");
        if (a->with_bad && i == a->n / 2)
            m.c.plan_id = long_plan;
        hd_err_t err;
        if (acceptq_create(a->q, a->pool, keyring(), &m.c, &err) != 0)
            a->failed++;
    }
    return NULL;
}

/* Eight writers while the first commit is held up: the ones that arrive
 * meanwhile share the next commit; every message is stored once, and the
 * bad row of one writer fails that request alone. */
static void test_concurrent_requests_share_commits(void **state)
{
    fixture_t *fx = *state;
    acceptq_t *q = acceptq_new(fx->pool, keyring());
    /* hold every insert into crm_jobs for a moment */
    PGconn *lock = PQconnectdb(fx->url);
    assert_int_equal(PQstatus(lock), CONNECTION_OK);
    PQclear(PQexec(lock, "BEGIN"));
    PGresult *lr = PQexec(lock, "LOCK TABLE crm_jobs IN SHARE ROW EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(lr), PGRES_COMMAND_OK);
    PQclear(lr);

    enum { THREADS = 8, EACH = 40 };
    pthread_t t[THREADS];
    worker_arg_t a[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (worker_arg_t){.q = q, .pool = fx->pool, .n = EACH, .with_bad = i == 3};
        assert_int_equal(pthread_create(&t[i], NULL, writer, &a[i]), 0);
    }
    usleep(300 * 1000);
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    int failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failed += a[i].failed;
    }
    assert_int_equal(failed, 1);
    want(fx->pool, "SELECT count(*)::text FROM crm_communications WHERE client_id = $1", "c-group",
         "319");
    want(fx->pool,
         "SELECT count(*)::text FROM crm_jobs j JOIN crm_communications c ON c.id = "
         "j.communication_id WHERE c.client_id = $1",
         "c-group", "319");
    long batches = 0, messages = 0, unread = -1, refused = -1;
    acceptq_counts(q, &batches, &messages, &unread, &refused);
    assert_int_equal(unread, 0);
    assert_int_equal(refused, 0);
    assert_int_equal(messages, THREADS * EACH);
    /* the seven that waited behind the first commit went in one */
    if (batches > messages - 6)
        fail_msg("%ld messages in %ld commits: no group commit", messages, batches);
    acceptq_free(q);
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    PQfinish(reader);
    reader = NULL;
    int rc = testdb_drop(fx);
    free(fx);
    *state = NULL;
    return rc;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    if (testdb_create(fx, "herald_aq_", "test_acceptq") != 0) {
        free(fx);
        return -1;
    }
    reader = PQconnectdb(fx->url);
    if (PQstatus(reader) != CONNECTION_OK) {
        fprintf(stderr, "test_acceptq: %s", PQerrorMessage(reader));
        return -1;
    }
    *state = fx;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_in_one_statement),
        cmocka_unit_test(test_one_bad_row_stores_nothing),
        cmocka_unit_test(test_unless_prefs_stores_only_for_a_client_without_a_row),
        cmocka_unit_test(test_concurrent_requests_share_commits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
