/*
 * config.h - the runtime configuration, loaded from config.lua.
 *
 * config.lua is run in a small Lua state (base, string, table, math and an
 * `env(name, default)` function; no io or os) and must return a table. Every
 * key is checked against the schema in config.c: wrong types, malformed
 * values, missing required keys and unknown keys are reported as
 *   config.lua: http.listen: expected "host:port", got 8080
 * Secrets never live in the file: they are read from the environment by
 * cli_load_secrets() (cli/secrets.c), which generates development keys under
 * var/ when they are absent and the file allows it.
 */
#ifndef HERALD_BASE_CONFIG_H
#define HERALD_BASE_CONFIG_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_MAX_OLD_KEYS 8

typedef struct cfg {
    char *path; /* the file that was loaded */

    /* http */
    char *listen; /* "host:port" as written */
    char *listen_host;
    int listen_port;
    char *public_url;
    int http_threads;
    long max_body_bytes;
    int http_max_conns;          /* connections at once, every address together */
    int http_max_conns_per_addr; /* from one client address; 0: no limit (behind a proxy) */
    int http_header_timeout_s;   /* a request's headers arrive within this, or it is closed */
    int http_idle_timeout_s;     /* a connection silent this long is closed */
    long webhook_max_bytes;      /* largest provider callback; more is 413 */

    /* stores */
    char *database_url;
    int db_pool_size;
    int db_connect_timeout_s;
    int db_query_timeout_ms;
    char *redis_url;
    int redis_timeout_ms;

    /* auth */
    char *jwt_issuer;
    char *jwt_audience;
    int access_ttl_s;
    int refresh_ttl_s;
    bool allow_dev_keys;

    /* engine */
    int workers;
    int claim_linger_ms;   /* a worker that found the queue drained waits this long for more */
    int outcome_linger_ms; /* a worker with an outcome waits this long for its other sends' */
    double retry_scale;
    int analytics_refresh_s; /* today's and yesterday's rollups are at most this old */
    int lease_s;             /* how long a claimed job is ours before another process may take it */
    char *alert_url;         /* POSTed a JSON alert when every channel of a message failed */
    char *alert_email;       /* and/or sent an email about it */

    /* retention (engine/retention.h); 0 days: kept for ever */
    int retention_comms_days;  /* ended communications older than this are deleted */
    int retention_events_days; /* events (receipts, opens, clicks) older than this */
    int retention_batch;       /* rows per delete statement */
    int retention_pause_ms;    /* between two batches */
    int retention_interval_s;  /* how often a pass runs */

    /* rate limits (limit/limit.h) */
    double limit_api_rate;      /* authenticated requests per second per token subject */
    int limit_api_burst;        /* of them at once */
    int limit_processes;        /* processes sharing a limit when Redis cannot count them */
    int limit_auth_failures;    /* refused API keys / refresh tokens per minute per address */
    double limit_webhook_rate;  /* provider callbacks per second per source address */
    double limit_tracking_rate; /* open and click hits per second per source address */

    /* paths */
    char *var_dir;
    char *migrations_dir;
    char *scripts_dir;
    char *templates_dir;

    char *log_level;

    /* policy runtime */
    long lua_instruction_limit; /* per call; 0 = none */
    int lua_memory_limit_mb;    /* per state; 0 = none */
    int lua_decision_ms;        /* deadline of strategy, classify and retry calls; 0 = none */
    int lua_render_ms;          /* deadline of content calls; 0 = none */
    int lua_load_ms;            /* deadline of loading a module, a reload's checks; 0 = none */
    long lua_pattern_max_bytes; /* longest subject a pattern may scan; 0 = none */
    char *default_timezone;

    /* channels (transport drivers); secrets come from the environment */
    char *outbox_dir;
    char *email_driver, *smtp_url, *smtp_username, *smtp_starttls, *email_from, *email_reply_to;
    int email_timeout_ms, email_connections;
    char *dkim_domain, *dkim_selector; /* DKIM signing is on when both are set */
    char *sms_driver, *twilio_base_url, *twilio_sid, *twilio_from;
    int sms_timeout_ms, sms_in_flight;
    char *wa_driver, *wa_base_url, *wa_phone_number_id;
    int wa_timeout_ms, wa_in_flight;
    /* provider secrets, filled by cli_load_secrets() from the environment */
    char *smtp_password, *twilio_token, *wa_token;
    char *dkim_key_file;                   /* HERALD_DKIM_KEY_FILE: the DKIM private key's path */
    char *wa_app_secret, *wa_verify_token; /* the WhatsApp webhook's */

    /* secrets, filled by cli_load_secrets() */
    uint8_t jwt_secret[128];
    size_t jwt_secret_len;
    bool jwt_secret_is_dev;
    char jwt_kid[9]; /* the signing key's id (crypto/jwt.h jwt_key_id) */
    /* HERALD_JWT_OLD_SECRETS: verify only, so a rotation logs nobody out */
    uint8_t jwt_old_secrets[CFG_MAX_OLD_KEYS][128];
    size_t jwt_old_lens[CFG_MAX_OLD_KEYS];
    char jwt_old_kids[CFG_MAX_OLD_KEYS][9];
    int jwt_old_count;
    uint8_t enc_key[32];
    uint8_t enc_old_keys[CFG_MAX_OLD_KEYS][32];
    int enc_old_count;
    uint8_t blind_index_key[32];
    bool enc_key_is_dev;
} cfg_t;

/* Loads and validates the file at path into *out (which it initialises).
 * On failure returns -1 with err naming file, key and problem; *out is left
 * freed. Caller frees with cfg_free(). */
int cfg_load(const char *path, cfg_t *out, hd_err_t *err);

/* Same as cfg_load, from a string; name is used in messages. */
int cfg_load_string(const char *chunk, const char *name, cfg_t *out, hd_err_t *err);

/* Whether value is a valid "host:port"; cfg_set_listen replaces the listen
 * address (the `serve --listen` flag). */
bool cfg_valid_listen(const char *value);
int cfg_set_listen(cfg_t *cfg, const char *value, hd_err_t *err);

/* Picks the config path: explicit flag, else $HERALD_CONFIG, else "config.lua". */
const char *cfg_default_path(const char *flag_value);

void cfg_free(cfg_t *cfg);

#endif
