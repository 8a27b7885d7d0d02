/*
 * migrate.c - forward-only migrations runner (see migrate.h). Uses pg for
 * SQL and crypto/hash for checksums.
 */
#include "store/migrate.h"
#include "base/buf.h"
#include "base/log.h"
#include "crypto/hash.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any constant shared by every Herald process; "HERALD!!" in ASCII. */
#define MIGRATE_LOCK_KEY "5207652479234826529"

typedef struct mig {
    int version;
    char *file; /* base name */
    char *sql;
    char sum[65];
} mig_t;

static const pg_stmt_t st_lock = {"mig_lock", "SELECT pg_advisory_lock($1::bigint)", 1, false};
static const pg_stmt_t st_unlock = {"mig_unlock", "SELECT pg_advisory_unlock($1::bigint)", 1,
                                    false};
static const pg_stmt_t st_applied = {
    "mig_applied", "SELECT version, name, checksum FROM herald_schema_migrations", 0, false};
static const pg_stmt_t st_record = {
    "mig_record",
    "INSERT INTO herald_schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)", 3,
    false};

static bool valid_name(const char *n, int *version)
{
    size_t len = strlen(n);
    if (len < 10 || strcmp(n + len - 4, ".sql") != 0)
        return false;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)n[i]))
            return false;
    if (n[4] != '_')
        return false;
    for (size_t i = 5; i < len - 4; i++)
        if (!(islower((unsigned char)n[i]) || isdigit((unsigned char)n[i]) || n[i] == '_'))
            return false;
    *version = atoi(n);
    return true;
}

static char *slurp(const char *path, hd_err_t *err)
{
    buf_t b;
    buf_init(&b);
    if (buf_read_file(&b, path) != 0) {
        buf_free(&b);
        hd_err_set(err, "%s: cannot read", path);
        return NULL;
    }
    return buf_steal(&b);
}

static int cmp_mig(const void *a, const void *b)
{
    return ((const mig_t *)a)->version - ((const mig_t *)b)->version;
}

static void free_migs(mig_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        free(m[i].file);
        free(m[i].sql);
    }
    free(m);
}

/* Reads and checks every file name in dir. */
static int scan(const char *dir, mig_t **out, int *count, hd_err_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return hd_err_set(err, "%s: cannot open the migrations directory", dir);
    mig_t *m = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int version;
        if (!valid_name(e->d_name, &version)) {
            rc = hd_err_set(err, "%s/%s: migration files are named NNNN_lower_snake.sql", dir,
                            e->d_name);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            m = realloc(m, (size_t)cap * sizeof(*m));
            if (m == NULL)
                abort();
        }
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        m[n].version = version;
        m[n].file = xstrdup(e->d_name);
        m[n].sql = slurp(path, err);
        n++;
        if (m[n - 1].sql == NULL) {
            rc = -1;
            break;
        }
        hash_sha256_hex(m[n - 1].sql, strlen(m[n - 1].sql), m[n - 1].sum);
    }
    closedir(d);
    if (rc == 0) {
        qsort(m, (size_t)n, sizeof(*m), cmp_mig);
        for (int i = 1; i < n; i++)
            if (m[i].version == m[i - 1].version)
                rc = hd_err_set(err, "%s: %s and %s share version %04d", dir, m[i - 1].file,
                                m[i].file, m[i].version);
    }
    if (rc != 0) {
        free_migs(m, n);
        return -1;
    }
    *out = m;
    *count = n;
    return 0;
}

static int apply_all(pg_conn_t *c, const char *dir, mig_t *m, int n, int *applied, hd_err_t *err)
{
    if (pg_exec_script(c,
                       "CREATE TABLE IF NOT EXISTS herald_schema_migrations ("
                       " version integer PRIMARY KEY,"
                       " name text NOT NULL,"
                       " checksum text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now())",
                       err) != 0)
        return -1;
    PGresult *r = pg_exec(c, &st_applied, NULL, err);
    if (r == NULL)
        return -1;
    int rows = PQntuples(r);
    bool *done = xcalloc((size_t)n + 1, sizeof(bool));
    int rc = 0;
    /* Check every applied file first: a changed history stops everything. */
    for (int i = 0; i < rows && rc == 0; i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        const char *sum = PQgetvalue(r, i, 2);
        bool found = false;
        for (int j = 0; j < n; j++) {
            if (m[j].version != v)
                continue;
            found = true;
            done[j] = true;
            if (strcmp(m[j].sum, sum) != 0)
                rc = hd_err_set(err,
                                "%s/%s was changed after it was applied (checksum %.12s, "
                                "recorded %.12s); migrations are forward-only: restore the file "
                                "and add a new migration",
                                dir, m[j].file, m[j].sum, sum);
        }
        if (!found)
            log_warn("applied migration has no file", "name", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    for (int j = 0; j < n && rc == 0; j++) {
        if (done[j])
            continue;
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", m[j].version);
        const char *params[] = {ver, m[j].file, m[j].sum};
        if ((rc = pg_tx_open(c, err)) != 0)
            break;
        if (pg_exec_script(c, m[j].sql, err) != 0) {
            hd_err_prefix(err, "%s/%s", dir, m[j].file);
            rc = -1;
        }
        if (rc == 0)
            rc = pg_exec_ok(c, &st_record, params, err);
        if ((rc = pg_tx_close(c, rc, err)) != 0)
            break;
        log_info("migration applied", "name", m[j].file, "checksum", m[j].sum);
        if (applied)
            (*applied)++;
    }
    free(done);
    return rc;
}

int mig_run(pg_conn_t *c, const char *dir, int *applied, hd_err_t *err)
{
    if (applied)
        *applied = 0;
    mig_t *m = NULL;
    int n = 0;
    if (scan(dir, &m, &n, err) != 0)
        return -1;
    const char *key[] = {MIGRATE_LOCK_KEY};
    PGresult *r = pg_exec(c, &st_lock, key, err);
    if (r == NULL) {
        free_migs(m, n);
        return -1;
    }
    PQclear(r);
    int rc = apply_all(c, dir, m, n, applied, err);
    PQclear(pg_exec(c, &st_unlock, key, NULL));
    free_migs(m, n);
    return rc;
}
