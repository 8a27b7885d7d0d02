/*
 * test_db.h - a throwaway database for the tests that run against the real
 * PostgreSQL named by HERALD_DATABASE_URL (default
 * postgresql://herald@127.0.0.1:55432/herald). testdb_create() makes a
 * database of its own, <prefix><random hex>, on that server, opens a pool on
 * it and applies the migrations from $HERALD_SOURCE_DIR/migrations through
 * that pool; testdb_drop() frees the pool and drops the database again.
 * Errors go to stderr prefixed with the test's name (who). Static helpers for
 * one test file; needs no cmocka.
 */
#ifndef HERALD_TESTS_TEST_DB_H
#define HERALD_TESTS_TEST_DB_H

#include "crypto/hash.h"
#include "store/migrate.h"
#include "store/pg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct testdb {
    char dbname[64];     /* <prefix><random hex>, ours alone */
    char admin_url[512]; /* the server's postgres database */
    char url[512];       /* dbname on the same server */
    pg_pool_t *pool;     /* on url, migrated */
    const char *who;     /* the test's name, for messages */
} testdb_t;

/* url with its database (the last path segment) replaced by db. */
static __attribute__((unused)) int testdb_with_db(const char *url, const char *db, char *out,
                                                  size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *query_at = strchr(url, '?');
    size_t end = query_at ? (size_t)(query_at - url) : strlen(url);
    size_t slash = end;
    while (slash > 0 && url[slash - 1] != '/')
        slash--;
    if (scheme == NULL || slash <= (size_t)(scheme - url) + 3)
        return -1; /* no path: nothing to replace */
    int n = snprintf(out, size, "%.*s%s%s", (int)slash, url, db, query_at ? query_at : "");
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* Runs one statement on its own connection to admin_url. */
static __attribute__((unused)) int testdb_admin_exec(const char *who, const char *admin_url,
                                                     const char *sql)
{
    PGconn *a = PQconnectdb(admin_url);
    int rc = -1;
    if (PQstatus(a) != CONNECTION_OK) {
        fprintf(stderr, "%s: %s: %s", who, admin_url, PQerrorMessage(a));
    } else {
        PGresult *r = PQexec(a, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            rc = 0;
        else
            fprintf(stderr, "%s: %s: %s", who, sql, PQerrorMessage(a));
        PQclear(r);
    }
    PQfinish(a);
    return rc;
}

/* Frees the pool and drops the database; a testdb_t never created (all
 * zero) or already dropped is left alone. 0, or -1 when the DROP failed. */
static __attribute__((unused)) int testdb_drop(testdb_t *t)
{
    pg_pool_free(t->pool);
    t->pool = NULL;
    if (t->dbname[0] == '\0')
        return 0;
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->dbname);
    int rc = testdb_admin_exec(t->who, t->admin_url, sql);
    t->dbname[0] = '\0';
    return rc;
}

/* Fills t and makes its database: created, pooled (2 connections) and
 * migrated. 0, or -1 after saying why on stderr, with nothing left behind. */
static __attribute__((unused)) int testdb_create(testdb_t *t, const char *prefix, const char *who)
{
    memset(t, 0, sizeof(*t));
    t->who = who;
    const char *url = getenv("HERALD_DATABASE_URL");
    if (url == NULL)
        url = "postgresql://herald@127.0.0.1:55432/herald";
    const char *src = getenv("HERALD_SOURCE_DIR");
    if (src == NULL || *src == '\0') {
        fprintf(stderr,
                "%s: HERALD_SOURCE_DIR is not set (ctest sets it; by hand: "
                "HERALD_SOURCE_DIR=$PWD ./build/tests/%s)\n",
                who, who);
        return -1;
    }
    uint8_t rnd[8];
    if (hash_random(rnd, sizeof(rnd)) != 0) {
        fprintf(stderr, "%s: no random bytes for the database name\n", who);
        return -1;
    }
    char dbname[sizeof(t->dbname)];
    int n = snprintf(dbname, sizeof(dbname), "%s", prefix);
    for (size_t i = 0; i < sizeof(rnd) && n > 0 && (size_t)n < sizeof(dbname); i++)
        n += snprintf(dbname + n, sizeof(dbname) - (size_t)n, "%02x", rnd[i]);
    if (n <= 0 || (size_t)n >= sizeof(dbname)) {
        fprintf(stderr, "%s: database prefix %s is too long\n", who, prefix);
        return -1;
    }

    char sql[128], dir[1024];
    if (testdb_with_db(url, "postgres", t->admin_url, sizeof(t->admin_url)) != 0 ||
        testdb_with_db(url, dbname, t->url, sizeof(t->url)) != 0) {
        fprintf(stderr, "%s: no database name to replace in %s\n", who, url);
        return -1;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    if (testdb_admin_exec(who, t->admin_url, sql) != 0)
        return -1;
    memcpy(t->dbname, dbname, sizeof(dbname));

    /* From here on a failure drops the database again. */
    hd_err_t err;
    bool up;
    int applied = 0;
    t->pool = pg_pool_new(t->url, 2, 5, 30000, &up, &err);
    if (!up) {
        fprintf(stderr, "%s: %s: %s\n", who, t->url, err.msg);
        goto fail;
    }
    pg_conn_t *c = pg_pool_get(t->pool, 5000, &err);
    if (c == NULL) {
        fprintf(stderr, "%s: %s\n", who, err.msg);
        goto fail;
    }
    snprintf(dir, sizeof(dir), "%s/migrations", src);
    int rc = mig_run(c, dir, &applied, &err);
    pg_pool_put(t->pool, c);
    if (rc != 0 || applied < 1) {
        fprintf(stderr, "%s: migrations from %s (%d applied): %s\n", who, dir, applied,
                rc != 0 ? err.msg : "none found");
        goto fail;
    }
    return 0;
fail:
    testdb_drop(t);
    return -1;
}

#endif
