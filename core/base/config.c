/*
 * config.c - runs config.lua (see config.h) in a small Lua state that has
 * computation and env() but not the machine, then hands what it returned to
 * config_schema.c, which checks every key. Uses Lua 5.4 and base/buf.
 */
#include "base/config.h"
#include "base/buf.h"
#include "base/config_schema.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* env(name [, default]): the only window the file has on the environment. */
static int l_env(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *v = getenv(name);
    if (v != NULL && *v != '\0')
        lua_pushstring(L, v);
    else if (lua_gettop(L) >= 2)
        lua_pushvalue(L, 2);
    else
        lua_pushnil(L);
    return 1;
}

static int load_common(lua_State *L, const char *name, cfg_t *out, hd_err_t *err)
{
    /* stack: chunk */
    if (lua_pcall(L, 0, 1, 0) != LUA_OK)
        return hd_err_set(err, "%s", lua_tostring(L, -1));
    return cfg_schema_apply(L, name, out, err);
}

static lua_State *config_state(void)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return NULL;
    /* The file gets computation, not the machine: no io, os, package. */
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_pop(L, 4);
    static const char *const removed[] = {"dofile", "loadfile", "load", "require",
                                          "collectgarbage"};
    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_pushcfunction(L, l_env);
    lua_setglobal(L, "env");
    return L;
}

static int load_with(int (*loader)(lua_State *, const void *, const char *), const void *src,
                     const char *name, cfg_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->path = xstrdup(name);
    lua_State *L = config_state();
    if (L == NULL) {
        cfg_free(out);
        return hd_err_set(err, "out of memory");
    }
    int rc = loader(L, src, name);
    if (rc != LUA_OK) {
        hd_err_set(err, "%s", lua_tostring(L, -1));
    } else {
        rc = load_common(L, name, out, err);
    }
    lua_close(L);
    if (rc != 0) {
        cfg_free(out);
        return -1;
    }
    return 0;
}

static int load_file(lua_State *L, const void *src, const char *name)
{
    (void)name;
    int rc = luaL_loadfilex(L, (const char *)src, "t");
    if (rc == LUA_ERRFILE) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s: cannot read the file (%s); pass --config FILE or set HERALD_CONFIG",
                        (const char *)src, strerror(errno));
    }
    return rc;
}

static int load_string(lua_State *L, const void *src, const char *name)
{
    const char *s = src;
    char chunkname[256];
    /* '@' makes Lua report "name:line:" as it does for files. */
    snprintf(chunkname, sizeof(chunkname), "@%s", name);
    return luaL_loadbufferx(L, s, strlen(s), chunkname, "t");
}

int cfg_load(const char *path, cfg_t *out, hd_err_t *err)
{
    return load_with(load_file, path, path, out, err);
}

int cfg_load_string(const char *chunk, const char *name, cfg_t *out, hd_err_t *err)
{
    return load_with(load_string, chunk, name, out, err);
}

const char *cfg_default_path(const char *flag_value)
{
    if (flag_value && *flag_value)
        return flag_value;
    const char *e = getenv("HERALD_CONFIG");
    return (e && *e) ? e : "config.lua";
}

void cfg_free(cfg_t *cfg)
{
    if (cfg == NULL)
        return;
    char **strs[] = {&cfg->path,
                     &cfg->listen,
                     &cfg->listen_host,
                     &cfg->public_url,
                     &cfg->database_url,
                     &cfg->redis_url,
                     &cfg->jwt_issuer,
                     &cfg->jwt_audience,
                     &cfg->var_dir,
                     &cfg->migrations_dir,
                     &cfg->scripts_dir,
                     &cfg->templates_dir,
                     &cfg->log_level,
                     &cfg->default_timezone,
                     &cfg->outbox_dir,
                     &cfg->email_driver,
                     &cfg->smtp_url,
                     &cfg->smtp_username,
                     &cfg->smtp_starttls,
                     &cfg->email_from,
                     &cfg->email_reply_to,
                     &cfg->sms_driver,
                     &cfg->twilio_base_url,
                     &cfg->twilio_sid,
                     &cfg->twilio_from,
                     &cfg->wa_driver,
                     &cfg->wa_base_url,
                     &cfg->wa_phone_number_id,
                     &cfg->alert_url,
                     &cfg->alert_email};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    free(cfg->dkim_domain);
    free(cfg->dkim_selector);
    free(cfg->dkim_key_file);
    cfg->dkim_domain = cfg->dkim_selector = cfg->dkim_key_file = NULL;
    /* Secrets do not outlive the config. */
    char **secrets[] = {&cfg->smtp_password, &cfg->twilio_token, &cfg->wa_token,
                        &cfg->wa_app_secret, &cfg->wa_verify_token};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (*secrets[i])
            memset(*secrets[i], 0, strlen(*secrets[i]));
        free(*secrets[i]);
        *secrets[i] = NULL;
    }
    memset(cfg->jwt_secret, 0, sizeof(cfg->jwt_secret));
    memset(cfg->jwt_old_secrets, 0, sizeof(cfg->jwt_old_secrets));
    memset(cfg->enc_key, 0, sizeof(cfg->enc_key));
    memset(cfg->enc_old_keys, 0, sizeof(cfg->enc_old_keys));
    memset(cfg->blind_index_key, 0, sizeof(cfg->blind_index_key));
}
