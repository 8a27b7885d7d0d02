/*
 * test_prefs_repo.c - the preferences repository (store/repo_prefs) with
 * nothing but a pool and a keyring, against the real PostgreSQL named by
 * HERALD_DATABASE_URL: a save reads back, the table holds ciphertext and
 * blind indexes, a consent change writes its audit row in the transaction
 * that changes the row, a field the patch leaves out keeps its value, and a
 * row under another key does not decrypt. The tests run in a database of
 * their own, created, migrated (from $HERALD_SOURCE_DIR/migrations) and
 * dropped by the group setup / teardown with test_db.h, and check the table
 * with their own SELECTs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "crypto/hash.h"
#include "store/pg.h"
#include "store/repo_prefs.h"
#include "test_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    testdb_t db; /* herald_pr_<random hex>, ours alone; db.pool on it */
    fe_keyring_t *kr;
} fixture_t;

static const pg_stmt_t st_stored = {
    "tp_stored",
    "SELECT name, email_enc, email_index, phone_enc, phone_index, xmin::text "
    "FROM crm_client_preferences WHERE client_id = $1",
    1, false};
static const pg_stmt_t st_audits = {
    "tp_audits",
    "SELECT actor, details->>'given', details->>'source', details->>'at', xmin::text "
    "FROM crm_audit_log WHERE action = 'preferences.consent' AND target = 'client:' || $1 "
    "ORDER BY id",
    1, false};

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

static void keys(uint8_t base, uint8_t enc[32], uint8_t idx[32])
{
    for (int i = 0; i < 32; i++) {
        enc[i] = (uint8_t)(base + i);
        idx[i] = (uint8_t)(base + 0x80 + i);
    }
}

static const char *new_client(char *buf, size_t size, const char *tag)
{
    uint8_t rnd[6];
    assert_int_equal(hash_random(rnd, sizeof(rnd)), 0);
    snprintf(buf, size, "%s-%02x%02x%02x%02x%02x%02x", tag, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
             rnd[5]);
    return buf;
}

/* Every field set: what a client's first full POST carries. */
static prefs_patch_t full_patch(const char *client_id)
{
    prefs_patch_t p = {.client_id = client_id,
                       .name_op = PREFS_SET,
                       .name = "Zoë O'Brien",
                       .email_op = PREFS_SET,
                       .email = "zoe.obrien@example.com",
                       .phone_op = PREFS_SET,
                       .phone = "+447700900123",
                       .quiet_op = PREFS_SET,
                       .quiet_start = "22:00",
                       .quiet_end = "07:30",
                       .timezone = "Europe/London",
                       .locale = "en_GB",
                       .digest_time = "08:15",
                       .set_channels = true,
                       .channels = {"sms", "email"},
                       .nchannels = 2,
                       .set_opted_out = true,
                       .opted_out = {"whatsapp"},
                       .nopted_out = 1,
                       .set_consent = true,
                       .consent_given = true,
                       .consent_at_set = true,
                       .consent_at = 1764321000, /* 2025-11-28T09:10:00Z */
                       .consent_source_set = true,
                       .consent_source = "signup form"};
    return p;
}

static void assert_full(const prefs_row_t *r, const char *client_id)
{
    assert_string_equal(r->client_id, client_id);
    assert_string_equal(r->name, "Zoë O'Brien");
    assert_string_equal(r->email, "zoe.obrien@example.com");
    assert_string_equal(r->phone, "+447700900123");
    assert_string_equal(r->timezone, "Europe/London");
    assert_string_equal(r->locale, "en_GB");
    assert_true(r->channels_stated);
    assert_int_equal(r->nchannels, 2);
    assert_string_equal(r->channels[0], "sms");
    assert_string_equal(r->channels[1], "email");
    assert_int_equal(r->nopted_out, 1);
    assert_string_equal(r->opted_out[0], "whatsapp");
    assert_string_equal(r->quiet_start, "22:00");
    assert_string_equal(r->quiet_end, "07:30");
    assert_string_equal(r->digest_time, "08:15");
    assert_true(r->consent_given);
    assert_string_equal(r->consent_at, "2025-11-28T09:10:00Z");
    assert_string_equal(r->consent_source, "signup form");
    assert_int_equal(strlen(r->created_at), 20);
    assert_true(r->version > 0);
}

static void save(fixture_t *fx, const prefs_patch_t *p, bool want_created, prefs_row_t *out)
{
    hd_err_t err;
    bool created = !want_created;
    int rc = prefs_repo_save(fx->db.pool, fx->kr, p, "test", &created, out, &err);
    if (rc != PREFS_OK)
        fail_msg("prefs_repo_save: %d %s", rc, err.msg);
    assert_int_equal(created, want_created);
}

static void test_save_then_load(void **state)
{
    fixture_t *fx = *state;
    char id[64];
    new_client(id, sizeof(id), "saved");
    prefs_patch_t p = full_patch(id);
    prefs_row_t saved, loaded;
    save(fx, &p, true, &saved);
    assert_full(&saved, id);
    assert_string_equal(saved.updated_at, saved.created_at); /* a new row */

    hd_err_t err;
    assert_int_equal(prefs_repo_get(fx->db.pool, fx->kr, id, &loaded, &err), PREFS_OK);
    assert_full(&loaded, id);
    assert_true(loaded.version == saved.version);
    assert_string_equal(loaded.updated_at, saved.updated_at);
    prefs_row_free(&saved);
    prefs_row_free(&loaded);

    /* A client without preferences is an answer, not an error. */
    assert_int_equal(prefs_repo_get(fx->db.pool, fx->kr, "nobody-has-this-id", &loaded, &err),
                     PREFS_NOT_FOUND);
    assert_null(loaded.client_id);
}

/* The group read gives each client what a read of its own gives: the row,
 * NOT_FOUND, the same row twice for an id asked twice, and ids that need
 * quoting in an array literal go through as values. */
static void test_many_reads_each_as_alone(void **state)
{
    fixture_t *fx = *state;
    char a[64], b[64], odd[96];
    new_client(a, sizeof(a), "many-a");
    new_client(b, sizeof(b), "many-b");
    snprintf(odd, sizeof(odd), "%s\"quoted\\,{}", b);
    prefs_patch_t pa = full_patch(a), po = full_patch(odd);
    prefs_row_t saved;
    save(fx, &pa, true, &saved);
    prefs_row_free(&saved);
    save(fx, &po, true, &saved);
    int64_t odd_version = saved.version;
    prefs_row_free(&saved);

    const char *ids[] = {b, a, odd, "nobody-has-this-id", a};
    enum { N = sizeof(ids) / sizeof(ids[0]) };
    prefs_row_t rows[N];
    int rcs[N];
    hd_err_t err;
    assert_int_equal(prefs_repo_get_many(fx->db.pool, fx->kr, ids, N, rows, rcs, &err), 0);
    int want[N] = {PREFS_NOT_FOUND, PREFS_OK, PREFS_OK, PREFS_NOT_FOUND, PREFS_OK};
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs[i], want[i]);
        if (rcs[i] == PREFS_OK)
            assert_full(&rows[i], ids[i]);
        else
            assert_null(rows[i].client_id);
    }
    assert_true(rows[2].version == odd_version);
    for (int i = 0; i < N; i++)
        prefs_row_free(&rows[i]);
}

static void test_table_holds_ciphertext(void **state)
{
    fixture_t *fx = *state;
    char id[64];
    new_client(id, sizeof(id), "sealed");
    prefs_patch_t p = full_patch(id);
    prefs_row_t row;
    save(fx, &p, true, &row);
    prefs_row_free(&row);

    PGresult *r = query(fx->db.pool, &st_stored, id);
    assert_int_equal(PQntuples(r), 1);
    const char *email_enc = PQgetvalue(r, 0, 1), *phone_enc = PQgetvalue(r, 0, 3);
    assert_true(strncmp(email_enc, "v1.", 3) == 0);
    assert_true(strncmp(phone_enc, "v1.", 3) == 0);
    assert_null(strstr(email_enc, "zoe"));
    assert_null(strstr(email_enc, "example"));
    assert_null(strstr(phone_enc, "7700900123"));
    /* the ciphertext is the address, and the blind index finds it */
    char *plain = NULL, index[65];
    size_t n;
    hd_err_t err;
    assert_int_equal(fe_decrypt(fx->kr, "email", email_enc, &plain, &n, &err), 0);
    assert_string_equal(plain, "zoe.obrien@example.com");
    free(plain);
    assert_int_equal(fe_blind_index(fx->kr, "email", " Zoe.OBrien@EXAMPLE.com", index), 0);
    assert_string_equal(PQgetvalue(r, 0, 2), index);
    assert_int_equal(fe_blind_index(fx->kr, "phone", "+447700900123", index), 0);
    assert_string_equal(PQgetvalue(r, 0, 4), index);
    PQclear(r);

    /* Under another key the stored addresses are unreadable: an error,
     * never garbage. */
    uint8_t k[32], idx[32];
    keys(0x20, k, idx);
    fe_keyring_t *other = fe_keyring_new(k, idx);
    assert_non_null(other);
    assert_int_equal(prefs_repo_get(fx->db.pool, other, id, &row, &err), PREFS_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "cannot decrypt the stored preferences"));
    assert_null(row.client_id);
    fe_keyring_free(other);
}

static void test_consent_change_is_audited_in_its_transaction(void **state)
{
    fixture_t *fx = *state;
    char id[64];
    new_client(id, sizeof(id), "consent");
    prefs_patch_t p = full_patch(id);
    prefs_row_t row;
    save(fx, &p, true, &row);
    prefs_row_free(&row);

    PGresult *a = query(fx->db.pool, &st_audits, id), *s = query(fx->db.pool, &st_stored, id);
    assert_int_equal(PQntuples(a), 1);
    assert_string_equal(PQgetvalue(a, 0, 0), "test");
    assert_string_equal(PQgetvalue(a, 0, 1), "true");
    assert_string_equal(PQgetvalue(a, 0, 2), "signup form");
    assert_string_equal(PQgetvalue(a, 0, 3), "2025-11-28T09:10:00Z");
    /* written by the transaction that wrote the row */
    assert_string_equal(PQgetvalue(a, 0, 4), PQgetvalue(s, 0, 5));
    PQclear(a);
    PQclear(s);

    /* No consent change, no audit row: neither another field nor the same
     * consent stated again. */
    prefs_patch_t same = {.client_id = id,
                          .locale = "fr",
                          .set_consent = true,
                          .consent_given = true,
                          .consent_at_set = true,
                          .consent_at = 1764321000,
                          .consent_source_set = true,
                          .consent_source = "signup form"};
    save(fx, &same, false, &row);
    prefs_row_free(&row);
    a = query(fx->db.pool, &st_audits, id);
    assert_int_equal(PQntuples(a), 1);
    PQclear(a);

    /* A withdrawal: now, source cleared, audited with the row's change. */
    prefs_patch_t withdraw = {.client_id = id, .set_consent = true, .consent_given = false};
    save(fx, &withdraw, false, &row);
    assert_false(row.consent_given);
    assert_null(row.consent_source);
    assert_true(row.consent_at[0] != '\0');
    a = query(fx->db.pool, &st_audits, id);
    s = query(fx->db.pool, &st_stored, id);
    assert_int_equal(PQntuples(a), 2);
    assert_string_equal(PQgetvalue(a, 1, 1), "false");
    assert_true(PQgetisnull(a, 1, 2));
    assert_string_equal(PQgetvalue(a, 1, 3), row.consent_at);
    assert_string_equal(PQgetvalue(a, 1, 4), PQgetvalue(s, 0, 5));
    PQclear(a);
    PQclear(s);
    prefs_row_free(&row);

    /* A change the schema refuses writes neither the row nor the audit. */
    char zone[80];
    memset(zone, 'Z', 70);
    zone[70] = '\0';
    prefs_patch_t refused = {
        .client_id = id, .timezone = zone, .set_consent = true, .consent_given = true};
    hd_err_t err;
    bool created;
    assert_int_equal(prefs_repo_save(fx->db.pool, fx->kr, &refused, "test", &created, &row, &err),
                     PREFS_ERR_INVALID);
    a = query(fx->db.pool, &st_audits, id);
    assert_int_equal(PQntuples(a), 2);
    PQclear(a);
    assert_int_equal(prefs_repo_get(fx->db.pool, fx->kr, id, &row, &err), PREFS_OK);
    assert_false(row.consent_given);
    assert_string_equal(row.timezone, "Europe/London");
    prefs_row_free(&row);
}

static void test_update_keeps_what_it_leaves_out(void **state)
{
    fixture_t *fx = *state;
    char id[64];
    new_client(id, sizeof(id), "partial");
    prefs_patch_t p = full_patch(id);
    prefs_row_t first, second;
    save(fx, &p, true, &first);
    PGresult *before = query(fx->db.pool, &st_stored, id);

    prefs_patch_t only_locale = {.client_id = id, .locale = "de"};
    save(fx, &only_locale, false, &second);
    assert_string_equal(second.locale, "de");
    free(second.locale);
    second.locale = strdup("en_GB"); /* the one change, undone for the comparison */
    assert_full(&second, id);
    assert_true(second.version > first.version);
    assert_string_equal(second.created_at, first.created_at);

    /* the addresses were kept as stored, not re-encrypted */
    PGresult *after = query(fx->db.pool, &st_stored, id);
    for (int c = 1; c <= 4; c++)
        assert_string_equal(PQgetvalue(after, 0, c), PQgetvalue(before, 0, c));
    PQclear(before);
    PQclear(after);
    prefs_row_free(&first);
    prefs_row_free(&second);

    /* Clearing is explicit: the email and its index go, the rest stays. */
    prefs_patch_t clear = {.client_id = id,
                           .email_op = PREFS_CLEAR,
                           .quiet_op = PREFS_CLEAR,
                           .set_channels = true,
                           .nchannels = 0};
    save(fx, &clear, false, &second);
    assert_null(second.email);
    assert_string_equal(second.phone, "+447700900123");
    assert_string_equal(second.quiet_start, "");
    assert_string_equal(second.quiet_end, "");
    assert_true(second.channels_stated);
    assert_int_equal(second.nchannels, 0);
    assert_int_equal(second.nopted_out, 1);
    after = query(fx->db.pool, &st_stored, id);
    assert_true(PQgetisnull(after, 0, 1));
    assert_true(PQgetisnull(after, 0, 2));
    PQclear(after);
    prefs_row_free(&second);
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
    if (testdb_create(&fx->db, "herald_pr_", "test_prefs_repo") != 0) {
        free(fx);
        return -1;
    }
    *state = fx;

    /* From here on a failure drops the database again. */
    uint8_t k[32], idx[32];
    keys(0x01, k, idx);
    fx->kr = fe_keyring_new(k, idx);
    if (fx->kr == NULL) {
        fprintf(stderr, "test_prefs_repo: no keyring\n");
        teardown(state);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_then_load),
        cmocka_unit_test(test_many_reads_each_as_alone),
        cmocka_unit_test(test_table_holds_ciphertext),
        cmocka_unit_test(test_consent_change_is_audited_in_its_transaction),
        cmocka_unit_test(test_update_keeps_what_it_leaves_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
