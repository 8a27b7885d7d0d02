/*
 * cmd_token.c - `herald token revoke JTI|TOKEN`: puts an access token on the
 * deny list (engine/revoke.h): PostgreSQL, then Redis. Uses http/auth to
 * read a whole token's jti and expiry (its signature checked with the
 * configured keys).
 */
#include "cache/redis.h"
#include "cli/cli.h"
#include "engine/revoke.h"
#include "http/auth.h"
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    printf("usage: herald token revoke JTI|TOKEN [--expires-at UNIX] [--config FILE]\n\n"
           "Revokes an access token: from now on every Herald process answers it with\n"
           "401. Give the token's jti (GET /api/crm/auth/me shows it) or the whole\n"
           "token (its jti and expiry are read from it; its signature must verify\n"
           "with a configured key). The revocation is recorded in PostgreSQL\n"
           "(crm_revoked_tokens, audited) and copied to Redis's deny list for as long\n"
           "as the token could be presented.\n\n"
           "  --expires-at UNIX  when the token expires (its exp claim); without it a\n"
           "                     bare jti is denied for %d s, the longest a token\n"
           "                     Herald issues can live\n"
           "  --config FILE      configuration (default config.lua)\n\n"
           "Exit status: 0 revoked everywhere; 1 not recorded, or recorded in\n"
           "PostgreSQL only (Redis unreachable: servers read PostgreSQL while Redis is\n"
           "down, and reload the deny list within a minute once it is back); 2 bad usage.\n"
           "The admin API does the same: POST /api/crm/auth/revoke {\"jti\", \"expires_at\"}.\n",
           REVOKE_MAX_LIFE_S);
}

int cmd_token_revoke(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"expires-at", required_argument, NULL, 'e'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    long exp_flag = -1;
    int o;
    optind = 1;
    int64_t now = (int64_t)time(NULL);
    while ((o = cli_getopt("token revoke", argc, argv, "c:e:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'e':
            if (cli_parse_long(optarg, 0, (long)(now + REVOKE_MAX_LIFE_S), &exp_flag) != 0)
                return cli_usage_error("token revoke",
                                       "--expires-at: expected Unix seconds, at most %d s "
                                       "from now, got \"%s\"",
                                       REVOKE_MAX_LIFE_S, optarg);
            break;
        case 'h':
            usage();
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("token revoke", "expected one JTI or TOKEN");
    const char *arg = argv[optind];
    cfg_t cfg;
    if (cli_load_config(config, &cfg, true) != 0)
        return CLI_FAIL;
    int rc = CLI_FAIL;
    hd_err_t err;
    char jti[64];
    int64_t exp = exp_flag >= 0 ? exp_flag : now + REVOKE_MAX_LIFE_S;
    pg_pool_t *db = NULL;
    rd_client_t *rd = NULL;
    if (strchr(arg, '.') != NULL) {
        /* a whole token: its own jti and expiry */
        char *hdr = malloc(strlen(arg) + 8);
        snprintf(hdr, strlen(arg) + 8, "Bearer %s", arg);
        auth_principal_t who;
        int v = auth_verify_bearer(&cfg, hdr, now, &who, &err);
        free(hdr);
        if (v != 0) {
            fprintf(stderr, "herald token revoke: %s\n", err.msg);
            goto done;
        }
        if (who.jti[0] == '\0') {
            fprintf(stderr, "herald token revoke: this token has no jti; it cannot be revoked\n");
            goto done;
        }
        snprintf(jti, sizeof(jti), "%s", who.jti);
        if (exp_flag < 0)
            exp = who.exp;
    } else if (revoke_jti_ok(arg)) {
        snprintf(jti, sizeof(jti), "%s", arg);
    } else {
        rc = cli_usage_error("token revoke",
                             "JTI: expected 1 to 63 printable characters without spaces");
        goto done;
    }
    bool up = false;
    db = pg_pool_new(cfg.database_url, 1, cfg.db_connect_timeout_s, cfg.db_query_timeout_ms, &up,
                     &err);
    if (!up) {
        fprintf(stderr, "herald token revoke: %s\n", err.msg);
        goto done;
    }
    rd = rd_new(cfg.redis_url, cfg.redis_timeout_ms, 1, &err);
    if (rd == NULL) {
        fprintf(stderr, "herald token revoke: %s\n", err.msg);
        goto done;
    }
    switch (revoke_token(db, rd, jti, exp, AUTH_LEEWAY_S, now, "cli", &err)) {
    case 0:
        printf("revoked %s until %lld\n", jti, (long long)exp);
        rc = CLI_OK;
        break;
    case 1:
        fprintf(stderr,
                "herald token revoke: %s is revoked in PostgreSQL but Redis could not be told "
                "(%s); servers read PostgreSQL while Redis is down and reload the deny list "
                "within a minute once it answers; run this again to copy it at once\n",
                jti, err.msg);
        break;
    default:
        fprintf(stderr, "herald token revoke: %s\n", err.msg);
        break;
    }
done:
    rd_free(rd);
    pg_pool_free(db);
    cfg_free(&cfg);
    return rc;
}
