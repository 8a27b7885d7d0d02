/*
 * cmd_admin.c - the operator commands that do one thing and exit:
 * `herald migrate`, `herald check`, `herald token`.
 */
#include "base/buf.h"
#include "base/log.h"
#include "cache/redis.h"
#include "cli/cli.h"
#include "http/auth.h"
#include "store/migrate.h"
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *dir = NULL;
    int o;
    optind = 1;
    while ((o = cli_getopt("migrate", argc, argv, "c:d:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'h':
            printf("usage: herald migrate [--config FILE] [--dir DIR]\n\n"
                   "Applies migrations/NNNN_name.sql files not yet applied, in order, each in\n"
                   "its own transaction, under an advisory lock. Refuses to run when a file\n"
                   "that was already applied has changed. Running it again is a no-op.\n\n"
                   "  --config FILE  configuration file (default: $HERALD_CONFIG or config.lua)\n"
                   "  --dir DIR      migrations directory (default: paths.migrations)\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("migrate", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0)
        return CLI_FAIL;
    hd_err_t err;
    bool up;
    int rc = CLI_FAIL;
    pg_pool_t *pool = pg_pool_new(cfg.database_url, 1, cfg.db_connect_timeout_s, 0, &up, &err);
    pg_conn_t *c = up ? pg_pool_get(pool, 5000, &err) : NULL;
    int applied = 0;
    if (c == NULL) {
        fprintf(stderr, "herald migrate: %s\n", err.msg);
    } else if (mig_run(c, dir ? dir : cfg.migrations_dir, &applied, &err) != 0) {
        fprintf(stderr, "herald migrate: %s\n", err.msg);
    } else {
        char n[16];
        snprintf(n, sizeof(n), "%d", applied);
        log_info(applied ? "migrations applied" : "database is up to date", "applied", n);
        rc = CLI_OK;
    }
    if (c)
        pg_pool_put(pool, c);
    pg_pool_free(pool);
    cfg_free(&cfg);
    return rc;
}

/* What `serve` would refuse, found without starting it: connection URLs
 * libpq and the Redis client cannot use, and malformed secrets. */
static int check_all(cfg_t *cfg)
{
    int problems = 0;
    hd_err_t err;
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->database_url, &why);
    if (opts == NULL) {
        fprintf(stderr, "herald: %s: database.url: %s", cfg->path,
                why ? why : "cannot be parsed\n");
        problems++;
    }
    PQconninfoFree(opts);
    PQfreemem(why);
    rd_client_t *rd = rd_new(cfg->redis_url, 100, 1, &err);
    if (rd == NULL) {
        fprintf(stderr, "herald: %s: redis.url: %s\n", cfg->path, err.msg);
        problems++;
    }
    rd_free(rd);
    if (cli_check_secrets(cfg, &err) != 0) {
        fprintf(stderr, "herald: %s\n", err.msg);
        problems++;
    } else {
        problems += cli_check_keys(cfg);
    }
    problems += cli_check_policy(cfg);
    if (problems)
        return CLI_FAIL;
    printf("%s: ok (listen %s; %s)\n", cfg->path, cfg->listen,
           cfg->jwt_secret_is_dev || cfg->enc_key_is_dev
               ? "development keys from var/dev-keys/ will be used"
               : "secrets from the environment");
    return CLI_OK;
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"scripts", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *scripts = NULL;
    int o;
    optind = 1;
    while ((o = cli_getopt("check", argc, argv, "c:s:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 's':
            scripts = optarg;
            break;
        case 'h':
            printf("usage: herald check [--config FILE] [--scripts DIR]\n\n"
                   "Loads the configuration (the first problem, with file and key), checks the\n"
                   "database and Redis URLs and the secrets, loads every script and template,\n"
                   "and renders every message type's example (scripts/types.lua) on every\n"
                   "channel. --scripts DIR checks the policy scripts in DIR (a whole set, as\n"
                   "paths.scripts or HERALD_SCRIPTS_DIR names it for `herald serve`) instead\n"
                   "of the configured ones, with the configured templates.\n"
                   "When the database answers, counts the stored encrypted values by\n"
                   "key id and fails if any is under a key that is in neither\n"
                   "HERALD_ENCRYPTION_KEY nor HERALD_ENCRYPTION_OLD_KEYS (so an old key can be\n"
                   "removed safely).\n"
                   "Exits 0 when everything loads, 1 otherwise.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("check", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0)
        return CLI_FAIL;
    if (scripts) {
        struct stat st;
        if (stat(scripts, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "herald: --scripts %s: not a directory\n", scripts);
            cfg_free(&cfg);
            return CLI_FAIL;
        }
        free(cfg.scripts_dir);
        cfg.scripts_dir = xstrdup(scripts);
        printf("scripts: %s\n", scripts);
    }
    int rc = check_all(&cfg);
    cfg_free(&cfg);
    return rc;
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"sub", required_argument, NULL, 's'},
        {"scopes", required_argument, NULL, 'S'}, {"ttl", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *sub = NULL, *scopes = NULL;
    long ttl = 3600;
    int o;
    if (argc > 1 && strcmp(argv[1], "revoke") == 0)
        return cmd_token_revoke(argc - 1, argv + 1);
    optind = 1;
    while ((o = cli_getopt("token", argc, argv, "c:s:S:t:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 's':
            sub = optarg;
            break;
        case 'S':
            scopes = optarg;
            break;
        case 't':
            if (cli_parse_long(optarg, 1, 31536000, &ttl) != 0)
                return cli_usage_error("token",
                                       "--ttl: expected seconds between 1 and 31536000, "
                                       "got \"%s\"",
                                       optarg);
            break;
        case 'h':
            printf("usage: herald token --sub NAME --scopes send,read,admin [--ttl SECONDS]\n"
                   "                    [--config FILE]\n"
                   "       herald token revoke JTI|TOKEN [--expires-at UNIX] (see --help)\n\n"
                   "Prints an access token signed with the configured key (HERALD_JWT_SECRET,\n"
                   "or the development key under var/). An operator tool: API clients\n"
                   "exchange an API key at POST /api/crm/auth/token instead.\n\n"
                   "  --sub NAME       the token's subject\n"
                   "  --scopes LIST    comma-separated: send, read, admin\n"
                   "  --ttl SECONDS    lifetime (default 3600)\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("token", "unexpected argument %s", argv[optind]);
    if (sub == NULL || *sub == '\0' || strlen(sub) > 127)
        return cli_usage_error("token", "--sub is required (1 to 127 bytes)");
    if (scopes == NULL)
        return cli_usage_error("token", "--scopes is required");
    hd_err_t err;
    unsigned mask;
    if (scope_parse(scopes, &mask, &err) != 0)
        return cli_usage_error("token", "--scopes: %s", err.msg);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, true) != 0)
        return CLI_FAIL;
    char *tok = NULL;
    int rc = CLI_OK;
    if (auth_mint(&cfg, sub, mask, (int)ttl, (int64_t)time(NULL), &tok, &err) != 0) {
        fprintf(stderr, "herald token: %s\n", err.msg);
        rc = CLI_FAIL;
    } else {
        printf("%s\n", tok);
    }
    free(tok);
    cfg_free(&cfg);
    return rc;
}
