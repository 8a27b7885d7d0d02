/*
 * cmd_rekey.c - `herald rekey`: every stored encrypted value (names,
 * contexts, addresses, recipient overrides) moved under the current key, in
 * small batches while the server runs; and the key census `herald check`
 * prints (rows per key id, failing on a key the keyring lacks). The columns
 * and the batches are store/repo_rekey.c's.
 */
#include "cli/cli.h"
#include "crypto/field.h"
#include "store/pg.h"
#include "store/repo_rekey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REKEY_RETRIES 5 /* a batch that meets a deadlock or a restart is tried again */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One column, batch after batch, with a progress line per batch. Returns
 * the values left unreadable, or -1 when the database kept failing. */
static long rekey_one(pg_pool_t *db, const fe_keyring_t *kr, const rekey_column_t *col, int batch,
                      long pause_ms)
{
    hd_err_t err;
    long todo = 0;
    if (rekey_count(db, col, fe_keyring_current_id(kr), &todo, &err) != 0) {
        fprintf(stderr, "herald rekey: %s: %s\n", col->name, err.msg);
        return -1;
    }
    printf("%s: %ld to rekey\n", col->name, todo);
    fflush(stdout);
    rekey_progress_t p;
    memset(&p, 0, sizeof(p));
    int failures = 0;
    while (todo > 0 && !p.done) {
        if (rekey_batch(db, kr, col, batch, &p, &err) != 0) {
            if (++failures > REKEY_RETRIES) {
                fprintf(stderr, "herald rekey: %s: %s\n", col->name, err.msg);
                return -1;
            }
            sleep_ms(200L * failures);
            continue;
        }
        failures = 0;
        long n = p.resealed + p.sealed + p.unreadable;
        printf("%s: %ld/%ld (%ld resealed, %ld encrypted from clear, %ld unreadable)\n", col->name,
               n, todo, p.resealed, p.sealed, p.unreadable);
        fflush(stdout);
        if (pause_ms > 0 && !p.done)
            sleep_ms(pause_ms);
    }
    return p.unreadable;
}

int cmd_rekey(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"pause-ms", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    long batch = 500, pause_ms = 0;
    int o;
    optind = 1;
    while ((o = cli_getopt("rekey", argc, argv, "c:b:p:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'b':
            if (cli_parse_long(optarg, 1, 10000, &batch) != 0)
                return cli_usage_error("rekey", "--batch: expected 1 to 10000 rows, got \"%s\"",
                                       optarg);
            break;
        case 'p':
            if (cli_parse_long(optarg, 0, 60000, &pause_ms) != 0)
                return cli_usage_error("rekey", "--pause-ms: expected 0 to 60000, got \"%s\"",
                                       optarg);
            break;
        case 'h':
            printf("usage: herald rekey [--batch N] [--pause-ms MS] [--config FILE]\n\n"
                   "Re-encrypts every stored encrypted value (client names, emails and phones,\n"
                   "message contexts and recipient overrides) under the current key\n"
                   "(HERALD_ENCRYPTION_KEY), and encrypts the names and contexts stored in\n"
                   "clear before migration 0008. Values under an old key are read with\n"
                   "HERALD_ENCRYPTION_OLD_KEYS. Runs while the server serves: each batch is\n"
                   "one short transaction over N rows. Stopped at any point, it resumes\n"
                   "where it was when run again (what is done is never selected again).\n"
                   "Prints a progress line per batch. Afterwards `herald check` shows that\n"
                   "no row needs the old keys, which can then be removed.\n"
                   "Exits 0 when every value is under the current key, 1 otherwise.\n\n"
                   "  --batch N      rows per transaction (default 500, at most 10000)\n"
                   "  --pause-ms MS  sleep between batches, to lighten the load (default 0)\n"
                   "  --config FILE  configuration file (default: $HERALD_CONFIG or config.lua)\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("rekey", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, true) != 0)
        return CLI_FAIL;
    int rc = CLI_FAIL;
    fe_keyring_t *kr = cli_keyring(&cfg, "rekey");
    pg_pool_t *db = kr ? cli_pool(&cfg, "rekey") : NULL;
    if (db != NULL) {
        printf("current key: %s\n", fe_keyring_current_id(kr));
        int n;
        const rekey_column_t *cols = rekey_columns(&n);
        long unreadable = 0;
        bool failed = false;
        for (int i = 0; i < n && !failed; i++) {
            long u = rekey_one(db, kr, &cols[i], (int)batch, pause_ms);
            failed = u < 0;
            unreadable += u > 0 ? u : 0;
        }
        if (failed)
            fprintf(stderr, "herald rekey: stopped; run it again to resume\n");
        else if (unreadable > 0)
            fprintf(stderr,
                    "herald rekey: %ld values are under a key the keyring lacks and were left "
                    "as they are; `herald check` names the keys\n",
                    unreadable);
        else {
            printf("done: every stored value is under key %s\n", fe_keyring_current_id(kr));
            rc = CLI_OK;
        }
    }
    pg_pool_free(db);
    fe_keyring_free(kr);
    cfg_free(&cfg);
    return rc;
}

typedef struct census {
    const fe_keyring_t *kr;
    int problems;
} census_t;

static void count_key(const rekey_column_t *col, const char *kid, long rows, void *arg)
{
    census_t *c = arg;
    if (kid[0] == '\0') {
        printf("  %s: %ld rows in clear in %s (run herald rekey to encrypt them)\n", col->name,
               rows, col->clear);
        return;
    }
    bool current = strcmp(kid, fe_keyring_current_id(c->kr)) == 0;
    if (current || fe_keyring_has(c->kr, kid)) {
        printf("  %s: %ld rows under key %s (%s)\n", col->name, rows, kid,
               current ? "current" : "old");
        return;
    }
    printf("  %s: %ld rows under key %s (NOT IN THE KEYRING)\n", col->name, rows, kid);
    fprintf(stderr,
            "herald: %s: %ld rows are under key %s, which is neither HERALD_ENCRYPTION_KEY nor "
            "in HERALD_ENCRYPTION_OLD_KEYS: they cannot be read\n",
            col->name, rows, kid);
    c->problems++;
}

int cli_check_keys(const cfg_t *cfg)
{
    if (cfg->enc_key_is_dev) {
        printf("stored keys: not checked (development keys are not read by a check)\n");
        return 0;
    }
    hd_err_t err;
    bool up = false;
    pg_pool_t *db = pg_pool_new(cfg->database_url, 1, cfg->db_connect_timeout_s, 0, &up, &err);
    fe_keyring_t *kr = cli_keyring(cfg, "check");
    census_t c = {kr, 0};
    if (kr == NULL) {
        c.problems = 1;
    } else if (db == NULL || !up) {
        printf("stored keys: not checked (database unreachable: %s)\n", err.msg);
    } else {
        printf("stored keys (current %s):\n", fe_keyring_current_id(kr));
        int n;
        const rekey_column_t *cols = rekey_columns(&n);
        for (int i = 0; i < n; i++) {
            if (rekey_keys(db, &cols[i], count_key, &c, &err) != 0) {
                fprintf(stderr, "herald: %s: %s\n", cols[i].name, err.msg);
                c.problems++;
            }
        }
    }
    pg_pool_free(db);
    fe_keyring_free(kr);
    return c.problems;
}
