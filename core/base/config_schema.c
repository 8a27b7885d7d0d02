/*
 * config_schema.c - what config.lua may contain: the schema of every key
 * (type, bounds, default, allowed URL schemes and words) and the checks that
 * store a value into cfg_t or name the key and the problem (see
 * config_schema.h). Uses the Lua API to read the returned table and base/log
 * for level names; config.c runs the file.
 */
#include "base/config_schema.h"
#include "base/buf.h"
#include "base/log.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    K_STRING,
    K_INT,
    K_LONG,
    K_NUMBER,
    K_BOOL,
    K_HOSTPORT,
    K_URL,
    K_LEVEL,
    K_ENUM /* one of the words in url_schemes */
} kind_t;

typedef struct field {
    const char *path; /* dotted path in the returned table */
    kind_t kind;
    size_t off; /* offset of the member in cfg_t */
    bool required;
    const char *def;         /* default as text, parsed like a value from the file */
    double min, max;         /* bounds for numbers */
    const char *url_schemes; /* K_URL: space-separated allowed schemes */
} field_t;

#define OFF(m) offsetof(cfg_t, m)

static const field_t schema[] = {
    {"http.listen", K_HOSTPORT, OFF(listen), true, NULL, 0, 0, NULL},
    {"http.public_url", K_URL, OFF(public_url), false, "http://127.0.0.1:8080", 0, 0, "http https"},
    {"http.threads", K_INT, OFF(http_threads), false, "16", 1, 256, NULL},
    {"http.max_body_bytes", K_LONG, OFF(max_body_bytes), false, "1048576", 1024, 64 << 20, NULL},
    {"http.max_connections", K_INT, OFF(http_max_conns), false, "4096", 16, 1000000, NULL},
    {"http.max_connections_per_address", K_INT, OFF(http_max_conns_per_addr), false, "256", 0,
     1000000, NULL},
    {"http.header_timeout", K_INT, OFF(http_header_timeout_s), false, "10", 1, 3600, NULL},
    {"http.idle_timeout", K_INT, OFF(http_idle_timeout_s), false, "30", 1, 3600, NULL},
    {"http.webhook_max_bytes", K_LONG, OFF(webhook_max_bytes), false, "2097152", 1024, 64 << 20,
     NULL},
    {"database.url", K_URL, OFF(database_url), true, NULL, 0, 0, "postgresql postgres"},
    {"database.pool_size", K_INT, OFF(db_pool_size), false, "8", 1, 512, NULL},
    {"database.connect_timeout", K_INT, OFF(db_connect_timeout_s), false, "5", 1, 300, NULL},
    {"database.query_timeout_ms", K_INT, OFF(db_query_timeout_ms), false, "10000", 100, 600000,
     NULL},
    {"redis.url", K_URL, OFF(redis_url), true, NULL, 0, 0, "redis"},
    {"redis.timeout_ms", K_INT, OFF(redis_timeout_ms), false, "500", 1, 60000, NULL},
    {"auth.issuer", K_STRING, OFF(jwt_issuer), false, "herald", 0, 0, NULL},
    {"auth.audience", K_STRING, OFF(jwt_audience), false, "herald-api", 0, 0, NULL},
    {"auth.access_ttl", K_INT, OFF(access_ttl_s), false, "3600", 60, 86400, NULL},
    {"auth.refresh_ttl", K_INT, OFF(refresh_ttl_s), false, "2592000", 300, 31536000, NULL},
    {"auth.allow_dev_keys", K_BOOL, OFF(allow_dev_keys), false, "true", 0, 0, NULL},
    {"engine.workers", K_INT, OFF(workers), false, "0", 0, 256, NULL},
    {"engine.claim_linger_ms", K_INT, OFF(claim_linger_ms), false, "5", 0, 1000, NULL},
    {"engine.outcome_linger_ms", K_INT, OFF(outcome_linger_ms), false, "2", 0, 1000, NULL},
    {"engine.retry_scale", K_NUMBER, OFF(retry_scale), false, "1", 0, 1000, NULL},
    {"limits.api_rate", K_NUMBER, OFF(limit_api_rate), false, "50", 0.001, 1000000, NULL},
    {"limits.api_burst", K_INT, OFF(limit_api_burst), false, "100", 1, 1000000, NULL},
    {"limits.auth_failures", K_INT, OFF(limit_auth_failures), false, "10", 1, 100000, NULL},
    {"limits.webhook_rate", K_NUMBER, OFF(limit_webhook_rate), false, "1000", 0.001, 1000000, NULL},
    {"limits.tracking_rate", K_NUMBER, OFF(limit_tracking_rate), false, "100", 0.001, 1000000,
     NULL},
    {"limits.processes", K_INT, OFF(limit_processes), false, "1", 1, 1024, NULL},
    {"engine.lease_seconds", K_INT, OFF(lease_s), false, "120", 2, 3600, NULL},
    {"engine.analytics_refresh_seconds", K_INT, OFF(analytics_refresh_s), false, "10", 1, 86400,
     NULL},
    {"engine.alert_url", K_URL, OFF(alert_url), false, NULL, 0, 0, "http https"},
    {"retention.communications_days", K_INT, OFF(retention_comms_days), false, "730", 0, 36500,
     NULL},
    {"retention.events_days", K_INT, OFF(retention_events_days), false, "730", 0, 36500, NULL},
    {"retention.batch_size", K_INT, OFF(retention_batch), false, "1000", 10, 100000, NULL},
    {"retention.pause_ms", K_INT, OFF(retention_pause_ms), false, "50", 0, 10000, NULL},
    {"retention.interval_seconds", K_INT, OFF(retention_interval_s), false, "3600", 1, 86400, NULL},
    {"engine.alert_email", K_STRING, OFF(alert_email), false, NULL, 0, 0, NULL},
    {"paths.var", K_STRING, OFF(var_dir), false, "var", 0, 0, NULL},
    {"paths.migrations", K_STRING, OFF(migrations_dir), false, "migrations", 0, 0, NULL},
    {"paths.scripts", K_STRING, OFF(scripts_dir), false, "scripts", 0, 0, NULL},
    {"paths.templates", K_STRING, OFF(templates_dir), false, "templates", 0, 0, NULL},
    {"log.level", K_LEVEL, OFF(log_level), false, "info", 0, 0, NULL},
    {"lua.instruction_limit", K_LONG, OFF(lua_instruction_limit), false, "10000000", 0, 1e10, NULL},
    {"lua.memory_limit_mb", K_INT, OFF(lua_memory_limit_mb), false, "64", 0, 4096, NULL},
    {"lua.decision_ms", K_INT, OFF(lua_decision_ms), false, "50", 0, 600000, NULL},
    {"lua.render_ms", K_INT, OFF(lua_render_ms), false, "200", 0, 600000, NULL},
    {"lua.load_ms", K_INT, OFF(lua_load_ms), false, "5000", 0, 600000, NULL},
    {"lua.pattern_max_bytes", K_LONG, OFF(lua_pattern_max_bytes), false, "16384", 0, 64 << 20,
     NULL},
    {"policy.default_timezone", K_STRING, OFF(default_timezone), false, "UTC", 0, 0, NULL},
    {"channels.outbox_dir", K_STRING, OFF(outbox_dir), false, "var/outbox", 0, 0, NULL},
    {"channels.email.driver", K_ENUM, OFF(email_driver), false, "outbox", 0, 0, "outbox smtp"},
    {"channels.email.smtp_url", K_URL, OFF(smtp_url), false, NULL, 0, 0, "smtp smtps"},
    {"channels.email.username", K_STRING, OFF(smtp_username), false, NULL, 0, 0, NULL},
    {"channels.email.starttls", K_ENUM, OFF(smtp_starttls), false, "try", 0, 0, "off try required"},
    {"channels.email.from", K_STRING, OFF(email_from), false, "Herald <noreply@localhost>", 0, 0,
     NULL},
    {"channels.email.reply_to", K_STRING, OFF(email_reply_to), false, NULL, 0, 0, NULL},
    {"channels.email.timeout_ms", K_INT, OFF(email_timeout_ms), false, "30000", 100, 600000, NULL},
    {"channels.email.connections", K_INT, OFF(email_connections), false, "8", 1, 1000, NULL},
    {"channels.email.dkim_domain", K_STRING, OFF(dkim_domain), false, NULL, 0, 0, NULL},
    {"channels.email.dkim_selector", K_STRING, OFF(dkim_selector), false, NULL, 0, 0, NULL},
    {"channels.sms.driver", K_ENUM, OFF(sms_driver), false, "outbox", 0, 0, "outbox twilio"},
    {"channels.sms.base_url", K_URL, OFF(twilio_base_url), false, "https://api.twilio.com", 0, 0,
     "http https"},
    {"channels.sms.account_sid", K_STRING, OFF(twilio_sid), false, NULL, 0, 0, NULL},
    {"channels.sms.from", K_STRING, OFF(twilio_from), false, NULL, 0, 0, NULL},
    {"channels.sms.timeout_ms", K_INT, OFF(sms_timeout_ms), false, "15000", 100, 600000, NULL},
    {"channels.sms.in_flight", K_INT, OFF(sms_in_flight), false, "200", 1, 10000, NULL},
    {"channels.whatsapp.driver", K_ENUM, OFF(wa_driver), false, "outbox", 0, 0, "outbox whatsapp"},
    {"channels.whatsapp.base_url", K_URL, OFF(wa_base_url), false,
     "https://graph.facebook.com/v18.0", 0, 0, "http https"},
    {"channels.whatsapp.phone_number_id", K_STRING, OFF(wa_phone_number_id), false, NULL, 0, 0,
     NULL},
    {"channels.whatsapp.timeout_ms", K_INT, OFF(wa_timeout_ms), false, "15000", 100, 600000, NULL},
    {"channels.whatsapp.in_flight", K_INT, OFF(wa_in_flight), false, "200", 1, 10000, NULL},
};
#define NFIELDS (sizeof(schema) / sizeof(schema[0]))

/* Keys that look like secrets get a pointed message instead of "unknown key". */
static const struct {
    const char *word, *var;
} secret_words[] = {
    {"jwt_secret", "HERALD_JWT_SECRET"},         {"secret", "HERALD_JWT_SECRET"},
    {"encryption_key", "HERALD_ENCRYPTION_KEY"}, {"password", "HERALD_SMTP_PASSWORD"},
    {"token", "the provider's HERALD_*_TOKEN"},  {"auth_token", "HERALD_TWILIO_AUTH_TOKEN"},
};

/* Renders the value at idx for "got ..." in messages. A URL's user
 * information (user:password@) is blanked: messages reach logs. */
static void describe(lua_State *L, int idx, char *out, size_t n)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        const char *s = lua_tostring(L, idx);
        const char *scheme = strstr(s, "://");
        const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
        if (at && !memchr(scheme + 3, '/', (size_t)(at - scheme - 3)))
            snprintf(out, n, "\"%.*s://***@%.60s\"", (int)(scheme - s > 20 ? 20 : scheme - s), s,
                     at + 1);
        else
            snprintf(out, n, "\"%.80s\"", s);
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(out, n, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(out, n, "%g", lua_tonumber(L, idx));
        break;
    case LUA_TBOOLEAN:
        snprintf(out, n, "%s", lua_toboolean(L, idx) ? "true" : "false");
        break;
    default:
        snprintf(out, n, "%s", luaL_typename(L, idx));
    }
}

static int parse_hostport(const char *s, char **host, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || colon[1] == '\0')
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno || p < 1 || p > 65535)
        return -1;
    *host = strndup(h, hlen);
    *port = (int)p;
    return *host ? 0 : -1;
}

/* Whether word is one of the space-separated words. */
static bool url_scheme_ok_word(const char *word, const char *words)
{
    size_t n = strlen(word);
    for (const char *p = words; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, word, n) == 0)
            return true;
        p += w;
        while (*p == ' ')
            p++;
    }
    return false;
}

static bool url_scheme_ok(const char *url, const char *schemes)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL || sep == url || sep[3] == '\0')
        return false;
    size_t n = (size_t)(sep - url);
    const char *p = schemes;
    while (*p) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, url, n) == 0)
            return true;
        p += w;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Stores the value on top of the stack into cfg according to f. */
static int store(lua_State *L, const field_t *f, cfg_t *cfg, const char *name, hd_err_t *err)
{
    char got[128];
    describe(L, -1, got, sizeof(got));
    char *base = (char *)cfg;
    switch (f->kind) {
    case K_STRING:
    case K_URL:
    case K_LEVEL:
    case K_ENUM:
    case K_HOSTPORT: {
        if (lua_type(L, -1) != LUA_TSTRING && f->kind == K_HOSTPORT)
            return hd_err_set(err, "%s: %s: expected \"host:port\", got %s", name, f->path, got);
        if (lua_type(L, -1) != LUA_TSTRING)
            goto badtype;
        const char *s = lua_tostring(L, -1);
        if (f->kind == K_HOSTPORT) {
            free(cfg->listen_host);
            cfg->listen_host = NULL;
            if (parse_hostport(s, &cfg->listen_host, &cfg->listen_port) != 0)
                return hd_err_set(err, "%s: %s: expected \"host:port\", got %s", name, f->path,
                                  got);
        } else if (f->kind == K_URL && !url_scheme_ok(s, f->url_schemes)) {
            char want[64] = "";
            const char *p = f->url_schemes;
            while (*p) { /* "a b" -> "a:// or b://" */
                size_t w = strcspn(p, " ");
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%.*s://",
                         *want ? " or " : "", (int)w, p);
                p += w + (p[w] == ' ');
            }
            return hd_err_set(err, "%s: %s: expected a %s URL, got %s", name, f->path, want, got);
        } else if (f->kind == K_ENUM && !url_scheme_ok_word(s, f->url_schemes)) {
            return hd_err_set(err, "%s: %s: expected one of %s, got %s", name, f->path,
                              f->url_schemes, got);
        } else if (f->kind == K_LEVEL) {
            log_level_t lv;
            if (log_level_parse(s, &lv) != 0)
                return hd_err_set(err,
                                  "%s: %s: expected one of debug, info, warn, error, crit, "
                                  "got %s",
                                  name, f->path, got);
        } else if (*s == '\0') {
            return hd_err_set(err, "%s: %s: expected a non-empty string, got \"\"", name, f->path);
        }
        char **slot = (char **)(base + f->off);
        free(*slot);
        *slot = xstrdup(s);
        return 0;
    }
    case K_INT:
    case K_LONG:
    case K_NUMBER: {
        int isnum = 0;
        lua_Number v = lua_tonumberx(L, -1, &isnum);
        /* lua_tonumberx also converts numeric strings: numbers given
         * through env() arrive as strings. */
        if (!isnum)
            return hd_err_set(err, "%s: %s: expected a %s, got %s", name, f->path,
                              f->kind == K_NUMBER ? "number" : "whole number", got);
        if (f->kind != K_NUMBER && v != floor(v))
            return hd_err_set(err, "%s: %s: expected a whole number, got %s", name, f->path, got);
        if (!(v >= f->min && v <= f->max)) /* also refuses NaN */
            return hd_err_set(err, "%s: %s: expected a value between %g and %g, got %s", name,
                              f->path, f->min, f->max, got);
        if (f->kind == K_NUMBER)
            *(double *)(base + f->off) = v;
        else if (f->kind == K_LONG)
            *(long *)(base + f->off) = (long)v;
        else
            *(int *)(base + f->off) = (int)v;
        return 0;
    }
    case K_BOOL:
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            goto badtype;
        *(bool *)(base + f->off) = lua_toboolean(L, -1);
        return 0;
    }
badtype:
    return hd_err_set(err, "%s: %s: expected a %s, got %s", name, f->path,
                      f->kind == K_BOOL ? "boolean" : "string", got);
}

/* Pushes the value at dotted path from the table at idx (nil when absent).
 * Returns -1 when an intermediate is not a table. */
static int push_path(lua_State *L, int idx, const char *path, char *bad, size_t badn)
{
    lua_pushvalue(L, idx);
    const char *p = path;
    while (*p) {
        size_t n = strcspn(p, ".");
        if (lua_isnil(L, -1))
            return 0; /* an absent section: every key in it is absent */
        if (!lua_istable(L, -1)) {
            snprintf(bad, badn, "%.*s", (int)(p - path - 1), path);
            lua_pop(L, 1);
            return -1;
        }
        lua_pushlstring(L, p, n);
        lua_gettable(L, -2); /* stack: parent, child */
        lua_remove(L, -2);
        p += n;
        if (*p == '.')
            p++;
    }
    return 0;
}

static bool known_prefix(const char *path, bool *is_leaf)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NFIELDS; i++) {
        if (strcmp(schema[i].path, path) == 0) {
            *is_leaf = true;
            return true;
        }
        if (strncmp(schema[i].path, path, n) == 0 && schema[i].path[n] == '.') {
            *is_leaf = false;
            return true;
        }
    }
    return false;
}

/* Rejects keys the schema does not know, recursively (typos fail loudly). */
static int check_unknown(lua_State *L, int idx, const char *prefix, const char *name, hd_err_t *err)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* stack: ..., key, value */
        char path[256];
        if (lua_type(L, -2) != LUA_TSTRING) {
            const char *type = luaL_typename(L, -2);
            lua_pop(L, 2);
            return hd_err_set(err, "%s: %s%skeys must be names, found a %s key", name, prefix,
                              *prefix ? ": " : "", type);
        }
        const char *key = lua_tostring(L, -2);
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", key);
        bool leaf = false;
        if (!known_prefix(path, &leaf)) {
            for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++) {
                if (strstr(key, secret_words[i].word)) {
                    lua_pop(L, 2);
                    return hd_err_set(err,
                                      "%s: %s: secrets are not read from the file; set %s "
                                      "in the environment",
                                      name, path, secret_words[i].var);
                }
            }
            lua_pop(L, 2);
            return hd_err_set(err, "%s: %s: unknown key (see docs/configuration.md)", name, path);
        }
        if (!leaf) {
            if (!lua_istable(L, -1)) {
                char got[128];
                describe(L, -1, got, sizeof(got));
                lua_pop(L, 2);
                return hd_err_set(err, "%s: %s: expected a table, got %s", name, path, got);
            }
            if (check_unknown(L, lua_gettop(L), path, name, err) != 0) {
                lua_pop(L, 2);
                return -1;
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int apply_defaults(cfg_t *cfg, hd_err_t *err)
{
    /* Defaults go through the same store() as file values, so they obey the
     * same rules and a bad default is caught by the unit tests. */
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return hd_err_set(err, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < NFIELDS && rc == 0; i++) {
        const field_t *f = &schema[i];
        if (f->def == NULL)
            continue;
        if (f->kind == K_BOOL)
            lua_pushboolean(L, strcmp(f->def, "true") == 0);
        else if (f->kind == K_INT || f->kind == K_LONG || f->kind == K_NUMBER)
            lua_pushnumber(L, strtod(f->def, NULL));
        else
            lua_pushstring(L, f->def);
        rc = store(L, f, cfg, "defaults", err);
        lua_pop(L, 1);
    }
    lua_close(L);
    return rc;
}

/* Rules across keys: what a chosen driver needs. */
static int check_together(const cfg_t *c, const char *name, hd_err_t *err)
{
    if (c->http_max_conns_per_addr > c->http_max_conns / 2)
        return hd_err_set(err,
                          "%s: http.max_connections_per_address: %d leaves no room for other "
                          "addresses; at most half of http.max_connections (%d), or 0 for no "
                          "limit",
                          name, c->http_max_conns_per_addr, c->http_max_conns / 2);
    if (strcmp(c->email_driver, "smtp") == 0 && c->smtp_url == NULL)
        return hd_err_set(err,
                          "%s: channels.email.smtp_url: required with the smtp driver (set "
                          "HERALD_SMTP_URL, e.g. smtp://mail.example.com:587)",
                          name);
    if (strcmp(c->sms_driver, "twilio") == 0 && (c->twilio_sid == NULL || c->twilio_from == NULL))
        return hd_err_set(err,
                          "%s: channels.sms: account_sid and from are required with the "
                          "twilio driver (set HERALD_TWILIO_ACCOUNT_SID and HERALD_TWILIO_FROM)",
                          name);
    if (strcmp(c->wa_driver, "whatsapp") == 0 && c->wa_phone_number_id == NULL)
        return hd_err_set(err,
                          "%s: channels.whatsapp.phone_number_id: required with the whatsapp "
                          "driver (set HERALD_WHATSAPP_PHONE_NUMBER_ID)",
                          name);
    return 0;
}

int cfg_schema_apply(lua_State *L, const char *name, cfg_t *out, hd_err_t *err)
{
    /* stack: ..., returned value */
    if (!lua_istable(L, -1)) {
        char got[128];
        describe(L, -1, got, sizeof(got));
        return hd_err_set(err, "%s: expected the file to return a table, got %s", name, got);
    }
    int top = lua_gettop(L);
    if (check_unknown(L, top, "", name, err) != 0)
        return -1;
    if (apply_defaults(out, err) != 0)
        return -1;
    for (size_t i = 0; i < NFIELDS; i++) {
        const field_t *f = &schema[i];
        char bad[128];
        if (push_path(L, top, f->path, bad, sizeof(bad)) != 0)
            return hd_err_set(err, "%s: %s: expected a table", name, bad);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            if (f->required)
                return hd_err_set(err, "%s: %s: required key is missing", name, f->path);
            continue;
        }
        int rc = store(L, f, out, name, err);
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    return check_together(out, name, err);
}

bool cfg_valid_listen(const char *value)
{
    char *host = NULL;
    int port;
    bool ok = parse_hostport(value, &host, &port) == 0;
    free(host);
    return ok;
}

int cfg_set_listen(cfg_t *cfg, const char *value, hd_err_t *err)
{
    char *host = NULL;
    int port;
    if (parse_hostport(value, &host, &port) != 0)
        return hd_err_set(err, "expected \"host:port\", got \"%.80s\"", value);
    free(cfg->listen);
    free(cfg->listen_host);
    cfg->listen = xstrdup(value);
    cfg->listen_host = host;
    cfg->listen_port = port;
    return 0;
}
