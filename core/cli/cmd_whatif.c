/*
 * cmd_whatif.c - `herald whatif`: the stored requests of a period run again
 * through an edited copy of scripts/ and through the live policy, side by
 * side (engine/whatif.h). Reads the database, writes nothing, sends nothing.
 */
#include "base/timefmt.h"
#include "cli/cli.h"
#include "crypto/field.h"
#include "engine/whatif.h"
#include "lua/runtime.h"
#include "store/pg.h"
#include "transport/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int parse_when(const char *flag, const char *s, int64_t *out)
{
    /* a date alone is its midnight UTC */
    char buf[64];
    if (s && strlen(s) == 10) {
        snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
        s = buf;
    }
    if (s == NULL || timefmt_parse(s, out) != 0)
        return cli_usage_error("whatif",
                               "%s: expected a date (2026-11-30) or an RFC 3339 time "
                               "(2026-11-30T09:00:00Z), got %s",
                               flag, s ? s : "nothing");
    return 0;
}

static void print_side(const char *name, const cJSON *t)
{
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(t, "channels");
    printf("  %-7s channels:", name);
    const cJSON *c;
    cJSON_ArrayForEach(c, ch) printf(" %s %d", c->string, c->valueint);
    printf("\n          quiet hours %d, digests %d, refusals %d, errors %d\n",
           cJSON_GetObjectItemCaseSensitive(t, "quiet_hours")->valueint,
           cJSON_GetObjectItemCaseSensitive(t, "digests")->valueint,
           cJSON_GetObjectItemCaseSensitive(t, "refusals")->valueint,
           cJSON_GetObjectItemCaseSensitive(t, "errors")->valueint);
    const cJSON *fe = cJSON_GetObjectItemCaseSensitive(t, "first_error");
    if (cJSON_IsString(fe))
        printf("          first error: %s\n", fe->valuestring);
    printf("          send hour (client's local time):");
    int h = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(t, "send_hour"))
    {
        if (c->valueint)
            printf(" %02dh:%d", h, c->valueint);
        h++;
    }
    printf("\n");
}

static void print_report(const cJSON *r)
{
    printf("what-if: %d messages of %d clients replayed in %.2f s; %d decisions change\n",
           cJSON_GetObjectItemCaseSensitive(r, "messages")->valueint,
           cJSON_GetObjectItemCaseSensitive(r, "clients")->valueint,
           cJSON_GetObjectItemCaseSensitive(r, "seconds")->valuedouble,
           cJSON_GetObjectItemCaseSensitive(r, "changed")->valueint);
    print_side("live", cJSON_GetObjectItemCaseSensitive(r, "live"));
    print_side("edited", cJSON_GetObjectItemCaseSensitive(r, "edited"));
    const cJSON *t;
    int i = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r, "top"))
    {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(t, "live");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(t, "edited");
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(l, "channel");
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(e, "channel");
        const cJSON *ls = cJSON_GetObjectItemCaseSensitive(l, "send_at");
        const cJSON *es = cJSON_GetObjectItemCaseSensitive(e, "send_at");
        const cJSON *lx = cJSON_GetObjectItemCaseSensitive(l, "explanation");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(e, "explanation");
        printf("\n%2d. %s %s (%s) of %s, accepted %s\n", ++i,
               cJSON_GetObjectItemCaseSensitive(t, "message_type")->valuestring,
               cJSON_GetObjectItemCaseSensitive(t, "id")->valuestring,
               cJSON_GetObjectItemCaseSensitive(t, "urgency")->valuestring,
               cJSON_GetObjectItemCaseSensitive(t, "client_id")->valuestring,
               cJSON_GetObjectItemCaseSensitive(t, "accepted_at")->valuestring);
        printf("    live:   %s at %s: %s\n", cJSON_IsString(lc) ? lc->valuestring : "no channel",
               cJSON_IsString(ls) ? ls->valuestring : "-",
               cJSON_IsString(lx) ? lx->valuestring : "");
        printf("    edited: %s at %s: %s\n", cJSON_IsString(ec) ? ec->valuestring : "no channel",
               cJSON_IsString(es) ? es->valuestring : "-",
               cJSON_IsString(ex) ? ex->valuestring : "");
    }
}

int cmd_whatif(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"scripts", required_argument, NULL, 's'},
        {"from", required_argument, NULL, 'f'},   {"to", required_argument, NULL, 't'},
        {"top", required_argument, NULL, 'n'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *scripts = NULL, *from = NULL, *to = NULL;
    int top = 20;
    bool json = false;
    int o;
    optind = 1;
    while ((o = cli_getopt("whatif", argc, argv, "c:s:f:t:n:jh", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 's':
            scripts = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'n': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || n < 0 || n > 1000)
                return cli_usage_error("whatif", "--top: a number from 0 to 1000, got %s", optarg);
            top = (int)n;
            break;
        }
        case 'j':
            json = true;
            break;
        case 'h':
            printf("usage: herald whatif --scripts DIR --from DATE [--to DATE] [--top N] "
                   "[--json]\n\n"
                   "Runs the messages accepted in [--from, --to) (default --to: now) again\n"
                   "through the scripts in DIR (an edited copy of scripts/) and through the\n"
                   "live ones, and reports both side by side: channel mix, send time by hour\n"
                   "of the client's day, messages in the client's quiet hours, digests,\n"
                   "refusals, errors, and the N (20) most changed decisions with both\n"
                   "explanations. Each request is decided as it was accepted (type, urgency,\n"
                   "the acceptance time, the client's current preferences with the message's\n"
                   "own recipient). Nothing is written or sent.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("whatif", "unexpected argument %s", argv[optind]);
    if (scripts == NULL)
        return cli_usage_error("whatif", "--scripts DIR is required (an edited copy of "
                                         "scripts/)");
    whatif_opts_t wo = {.top = top, .to = (int64_t)time(NULL)};
    if (parse_when("--from", from, &wo.from) != 0 || (to && parse_when("--to", to, &wo.to) != 0))
        return CLI_USAGE;
    if (wo.to <= wo.from)
        return cli_usage_error("whatif", "--to must be after --from");
    cfg_t cfg;
    if (cli_load_config(config, &cfg, true) != 0)
        return CLI_FAIL;
    hd_err_t err;
    int rc = CLI_FAIL;
    lrt_t *live = cli_policy(&cfg, &err);
    if (live == NULL) {
        fprintf(stderr, "herald whatif: the live scripts (%s): %s\n", cfg.scripts_dir, err.msg);
        cfg_free(&cfg);
        return CLI_FAIL;
    }
    char *saved = cfg.scripts_dir;
    cfg.scripts_dir = (char *)scripts;
    lrt_t *edited = cli_policy(&cfg, &err);
    cfg.scripts_dir = saved;
    fe_keyring_t *kr = NULL;
    pg_pool_t *db = NULL;
    if (edited == NULL) {
        fprintf(stderr, "herald whatif: %s: %s\n", scripts, err.msg);
    } else if ((kr = cli_keyring(&cfg, "whatif")) != NULL &&
               (db = cli_pool(&cfg, "whatif")) != NULL) {
        cJSON *report = whatif_run(db, kr, live, edited, &wo, &err);
        if (report == NULL) {
            fprintf(stderr, "herald whatif: %s\n", err.msg);
        } else {
            if (json) {
                char *s = cJSON_Print(report);
                printf("%s\n", s);
                free(s);
            } else {
                print_report(report);
            }
            cJSON_Delete(report);
            rc = CLI_OK;
        }
    }
    pg_pool_free(db);
    fe_keyring_free(kr);
    lrt_free(edited);
    lrt_free(live);
    cfg_free(&cfg);
    return rc;
}
