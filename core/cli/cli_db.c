/* cli_db.c - the database and keyring a command builds as serve does (cli.h). */
#include "cli/cli.h"
#include "crypto/field.h"
#include "store/pg.h"

#include <stdio.h>

/* The keyring serve builds: the current key and the old ones. NULL with a
 * message printed. */
fe_keyring_t *cli_keyring(const cfg_t *cfg, const char *cmd)
{
    fe_keyring_t *kr = fe_keyring_new(cfg->enc_key, cfg->blind_index_key);
    for (int i = 0; kr && i < cfg->enc_old_count; i++) {
        if (fe_keyring_add_old(kr, cfg->enc_old_keys[i]) != 0) {
            fprintf(stderr,
                    "herald %s: HERALD_ENCRYPTION_OLD_KEYS: key %d has the id of another "
                    "key\n",
                    cmd, i + 1);
            fe_keyring_free(kr);
            return NULL;
        }
    }
    return kr;
}

pg_pool_t *cli_pool(const cfg_t *cfg, const char *cmd)
{
    hd_err_t err;
    bool up = false;
    pg_pool_t *db = pg_pool_new(cfg->database_url, 1, cfg->db_connect_timeout_s, 0, &up, &err);
    if (db == NULL || !up) {
        fprintf(stderr, "herald %s: database: %s\n", cmd, err.msg);
        pg_pool_free(db);
        return NULL;
    }
    return db;
}
