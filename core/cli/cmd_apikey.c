/* cmd_apikey.c - `herald apikey create|list|revoke`. Uses store/repo_auth. */
#include "cli/cli.h"
#include "base/scope.h"
#include "http/api.h"
#include "store/pg.h"
#include "store/repo_auth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: herald apikey create --name NAME --scopes send,read,admin [--config FILE]\n"
           "       herald apikey list [--json] [--config FILE]\n"
           "       herald apikey revoke NAME|PREFIX [--config FILE]\n\n"
           "API keys are exchanged for access tokens at POST /api/crm/auth/token.\n"
           "Only a hash of each key is stored: `create` prints the key once.\n"
           "`revoke` also revokes every refresh token issued for the key.\n");
}

static pg_pool_t *open_db(const cfg_t *cfg)
{
    hd_err_t err;
    bool up;
    pg_pool_t *db = pg_pool_new(cfg->database_url, 1, cfg->db_connect_timeout_s,
                                cfg->db_query_timeout_ms, &up, &err);
    if (!up) {
        fprintf(stderr, "herald apikey: %s\n", err.msg);
        pg_pool_free(db);
        return NULL;
    }
    return db;
}

static int print_list(cJSON *keys, bool json)
{
    if (json) {
        char *s = cJSON_Print(keys);
        printf("%s\n", s);
        free(s);
        return CLI_OK;
    }
    printf("%-20s %-14s %-18s %-21s %s\n", "NAME", "PREFIX", "SCOPES", "CREATED", "STATE");
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        char scopes[64] = "";
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(k, "scopes"))
        {
            if (scopes[0])
                strncat(scopes, ",", sizeof(scopes) - strlen(scopes) - 1);
            strncat(scopes, s->valuestring, sizeof(scopes) - strlen(scopes) - 1);
        }
        const cJSON *rev = cJSON_GetObjectItem(k, "revoked_at");
        printf("%-20s %-14s %-18s %-21s %s\n", cJSON_GetObjectItem(k, "name")->valuestring,
               cJSON_GetObjectItem(k, "prefix")->valuestring, scopes,
               cJSON_GetObjectItem(k, "created_at")->valuestring,
               cJSON_IsString(rev) ? "revoked" : "active");
    }
    return CLI_OK;
}

int cmd_apikey(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"name", required_argument, NULL, 'n'},
        {"scopes", required_argument, NULL, 'S'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *name = NULL, *scopes = NULL;
    bool json = false;
    int o;
    optind = 1;
    while ((o = cli_getopt("apikey", argc, argv, "c:n:S:jh", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'S':
            scopes = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage();
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("apikey", "expected a sub-command: create, list or revoke");
    const char *sub = argv[optind++];
    unsigned mask = 0;
    hd_err_t err;
    if (strcmp(sub, "create") == 0) {
        if (name == NULL || *name == '\0' || strlen(name) > 100)
            return cli_usage_error("apikey", "create needs --name (1 to 100 characters)");
        if (scopes == NULL)
            return cli_usage_error("apikey", "create needs --scopes, e.g. send,read");
        if (scope_parse(scopes, &mask, &err) != 0)
            return cli_usage_error("apikey", "--scopes: %s", err.msg);
        if (optind < argc)
            return cli_usage_error("apikey", "unexpected argument %s", argv[optind]);
    } else if (strcmp(sub, "list") == 0) {
        if (optind < argc)
            return cli_usage_error("apikey", "unexpected argument %s", argv[optind]);
    } else if (strcmp(sub, "revoke") == 0) {
        if (optind + 1 != argc)
            return cli_usage_error("apikey", "revoke takes exactly one NAME or PREFIX");
    } else {
        return cli_usage_error("apikey", "unknown sub-command %s (create, list, revoke)", sub);
    }

    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0)
        return CLI_FAIL;
    pg_pool_t *db = open_db(&cfg);
    int rc = CLI_FAIL;
    if (db == NULL)
        goto done;
    if (strcmp(sub, "create") == 0) {
        char *key = NULL;
        if (apikey_create(db, name, mask, "cli", &key, &err) != 0) {
            fprintf(stderr, "herald apikey: %s\n", err.msg);
        } else {
            printf("%s\n", key);
            fprintf(stderr,
                    "Store this key now: only its hash is kept. Exchange it with\n"
                    "  curl -s -X POST -H 'Content-Type: application/json' "
                    "-d '{\"api_key\":\"<key>\"}' %s/api/crm/auth/token\n",
                    cfg.public_url);
            rc = CLI_OK;
        }
        free(key);
    } else if (strcmp(sub, "list") == 0) {
        apikey_row_t *rows;
        int n;
        if (apikey_list(db, &rows, &n, &err) != 0) {
            fprintf(stderr, "herald apikey: %s\n", err.msg);
        } else {
            cJSON *keys = api_apikeys_json(rows, n);
            rc = print_list(keys, json);
            cJSON_Delete(keys);
            apikey_rows_free(rows, n);
        }
    } else {
        int r = apikey_revoke(db, argv[optind], "cli", &err);
        if (r < 0)
            fprintf(stderr, "herald apikey: %s\n", err.msg);
        else if (r == 1)
            fprintf(stderr, "herald apikey: no active key named %s\n", argv[optind]);
        else {
            printf("revoked %s\n", argv[optind]);
            rc = CLI_OK;
        }
    }
done:
    pg_pool_free(db);
    cfg_free(&cfg);
    return rc;
}
