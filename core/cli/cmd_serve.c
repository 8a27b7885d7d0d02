/*
 * cmd_serve.c - `herald serve`: builds the app context (config, database
 * pool, Redis, key ring, metrics, routes), starts HTTP and waits for
 * SIGINT/SIGTERM to stop cleanly.
 */
#include "base/log.h"
#include "cli/cli.h"
#include "base/group.h"
#include "base/hint.h"
#include "engine/acceptq.h"
#include "engine/prefs.h"
#include "engine/app.h"
#include "engine/ops.h"
#include "engine/pace.h"
#include "http/api.h"
#include "http/server.h"
#include "engine/worker.h"
#include "transport/settings.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: herald serve [--config FILE] [--listen HOST:PORT]\n\n"
           "Runs the HTTP API and the engine (queue workers, transports, live policy\n"
           "reload) in the foreground.\n"
           "Logs are JSON lines on stderr. SIGINT or SIGTERM stop it cleanly.\n\n"
           "  --config FILE      configuration file (default: $HERALD_CONFIG or config.lua)\n"
           "  --listen HOST:PORT overrides http.listen\n");
}

/* herald.limit for the scripts: the shared limiter, under "script:". */
static int script_limit(void *arg, const char *key, double rate, double per_s, int burst,
                        double *retry_after_s)
{
    char k[128];
    snprintf(k, sizeof(k), "script:%s", key);
    lim_rule_t rule = {.rate = rate, .per_s = per_s, .burst = burst};
    lim_result_t r = lim_check((lim_t *)arg, k, &rule);
    *retry_after_s = r.allowed ? 0 : (double)r.retry_after_ms / 1000.0;
    return 0;
}

static int build_app(app_t *app, cfg_t *cfg)
{
    hd_err_t err;
    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    app->started = time(NULL);
    bool up = false;
    app->db = pg_pool_new(cfg->database_url, cfg->db_pool_size, cfg->db_connect_timeout_s,
                          cfg->db_query_timeout_ms, &up, &err);
    if (!up)
        log_error("database unreachable at start; will keep retrying", "reason", err.msg);
    /* health's own connection: its answer is about the database, never
     * about a queue for the pool's connections */
    app->probe = pg_pool_new(cfg->database_url, 1, cfg->db_connect_timeout_s,
                             cfg->db_query_timeout_ms, &up, NULL);
    app->redis = rd_new(cfg->redis_url, cfg->redis_timeout_ms, cfg->http_threads + 2, &err);
    if (app->redis == NULL) {
        fprintf(stderr, "herald serve: %s\n", err.msg);
        return -1;
    }
    if (rd_ping(app->redis, &err) != 0)
        log_error("redis unreachable at start; serving degraded", "reason", err.msg);
    app->limiter = lim_new(app->redis, "herald:limit:", cfg->limit_processes, &err);
    if (app->limiter == NULL) {
        fprintf(stderr, "herald serve: %s\n", err.msg);
        return -1;
    }
    track_keys_init(&app->track, cfg->enc_key, (const uint8_t(*)[32])cfg->enc_old_keys,
                    cfg->enc_old_count);
    app->keyring = fe_keyring_new(cfg->enc_key, cfg->blind_index_key);
    for (int i = 0; app->keyring && i < cfg->enc_old_count; i++) {
        if (fe_keyring_add_old(app->keyring, cfg->enc_old_keys[i]) != 0) {
            fprintf(stderr,
                    "herald serve: HERALD_ENCRYPTION_OLD_KEYS: key %d clashes with the "
                    "id of another key; generate a new key\n",
                    i + 1);
            return -1;
        }
    }
    app->policy = cli_policy_hooked(cfg, script_limit, app->limiter, &err);
    if (app->policy == NULL) {
        fprintf(stderr, "herald serve: policy: %s\n", err.msg);
        return -1;
    }
    app->watch = lrt_watch_start(app->policy, &err);
    if (app->watch == NULL)
        log_warn("live reload is off; use POST /api/crm/scripts/reload", "reason", err.msg);
    tr_config_t tc;
    tr_config_from(cfg, &tc);
    app->transport = tr_new(&tc, &err);
    if (app->transport == NULL) {
        fprintf(stderr, "herald serve: transport: %s\n", err.msg);
        return -1;
    }
    app->metrics = metrics_new();
    app->acceptq = acceptq_new(app->db, app->keyring);
    app->prefs_reads = prefs_reads_new(app);
    app->prefs_stored = hint_new(PREFS_STORED_HINTS);
    app->pacing = pace_new();
    app->ops = ops_state_new();
    if (app->keyring == NULL || app->metrics == NULL || api_register(app) != 0) {
        fprintf(stderr, "herald serve: cannot initialise (out of memory)\n");
        return -1;
    }
    return 0;
}

static void free_app(app_t *app)
{
    tr_free(app->transport);
    acceptq_free(app->acceptq);
    group_free(app->prefs_reads);
    hint_free(app->prefs_stored);
    pace_free(app->pacing);
    ops_state_free(app->ops);
    lrt_watch_stop(app->watch);
    lrt_free(app->policy);
    metrics_free(app->metrics);
    free(app->router);
    app->router = NULL;
    fe_keyring_free(app->keyring);
    lim_free(app->limiter);
    app->limiter = NULL;
    rd_free(app->redis);
    pg_pool_free(app->probe);
    pg_pool_free(app->db);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *listen = NULL;
    int o;
    optind = 1;
    while ((o = cli_getopt("serve", argc, argv, "c:l:h", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            if (!cfg_valid_listen(optarg))
                return cli_usage_error("serve", "--listen: expected \"host:port\", got \"%s\"",
                                       optarg);
            listen = optarg;
            break;
        case 'h':
            usage();
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("serve", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, true) != 0)
        return CLI_FAIL;
    if (listen)
        cfg_set_listen(&cfg, listen, NULL); /* the flag wins over the file */

    /* Block the stop signals before any thread starts so only sigwait sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    app_t app;
    int rc = CLI_FAIL;
    http_server_t *srv = NULL;
    if (build_app(&app, &cfg) == 0) {
        hd_err_t err;
        /* The engine first: request handlers read app.engine (to wake the
         * workers), so it is set before any handler runs. */
        app.engine = engine_start(&app, cfg.workers, &err);
        if (app.engine == NULL)
            log_error("the engine did not start; the API answers but nothing is sent", "reason",
                      err.msg);
        srv = http_start(&app, &err);
        if (srv == NULL) {
            fprintf(stderr, "herald serve: %s\n", err.msg);
        } else {
            log_info("herald is serving", "listen", cfg.listen, "version", HERALD_VERSION, "config",
                     cfg.path);
            int sig = 0;
            sigwait(&stop, &sig);
            log_info("stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
            http_stop(srv);
            rc = CLI_OK;
        }
        /* In-flight sends finish and are recorded; unstarted jobs are
         * released for other processes. */
        engine_stop(app.engine);
        app.engine = NULL;
    }
    free_app(&app);
    cfg_free(&cfg);
    return rc;
}
