/*
 * module.c - the `herald` module of C primitives for scripts (see
 * module.h and docs/scripting.md). Uses base/tz, base/sms, crypto/hash,
 * lua/convert and the log.
 */
#include "lua/module.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/sms.h"
#include "base/tz.h"
#include "crypto/codec.h"
#include "crypto/hash.h"
#include "lua/convert.h"

#include <lauxlib.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0);
    return 1;
}

static const tz_zone_t *check_zone(lua_State *L, int idx, hd_err_t *err)
{
    const char *name = luaL_checkstring(L, idx);
    return tz_get(name, err);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* herald.to_local(t, zone) -> fields | nil, err */
static int l_to_local(lua_State *L)
{
    lua_Number t = luaL_checknumber(L, 1);
    hd_err_t err;
    const tz_zone_t *z = check_zone(L, 2, &err);
    if (z == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    tz_local_t lt;
    tz_to_local(z, (int64_t)floor(t), &lt);
    lua_createtable(L, 0, 11);
    set_int(L, "year", lt.year);
    set_int(L, "month", lt.month);
    set_int(L, "day", lt.day);
    set_int(L, "hour", lt.hour);
    set_int(L, "min", lt.min);
    set_int(L, "sec", lt.sec);
    set_int(L, "wday", lt.wday);
    set_int(L, "yday", lt.yday);
    set_int(L, "offset", lt.offset);
    lua_pushboolean(L, lt.isdst);
    lua_setfield(L, -2, "isdst");
    lua_pushstring(L, lt.abbr);
    lua_setfield(L, -2, "abbr");
    return 1;
}

static lua_Integer field(lua_State *L, int idx, const char *k, bool required, lua_Integer def)
{
    lua_getfield(L, idx, k);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint) {
        if (!lua_isnil(L, -1) || required)
            luaL_error(L, "from_local: field '%s' must be a whole number", k);
        v = def;
    }
    lua_pop(L, 1);
    return v;
}

/* herald.from_local(zone, {year, month, day, hour, min, sec}) -> t | nil, err */
static int l_from_local(lua_State *L)
{
    hd_err_t err;
    const tz_zone_t *z = check_zone(L, 1, &err);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer y = field(L, 2, "year", true, 0), mo = field(L, 2, "month", true, 0),
                d = field(L, 2, "day", true, 0), h = field(L, 2, "hour", false, 0),
                mi = field(L, 2, "min", false, 0), s = field(L, 2, "sec", false, 0);
    if (z == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushinteger(L, tz_from_local(z, (int)y, (int)mo, (int)d, (int)h, (int)mi, (int)s));
    return 1;
}

static int l_valid_zone(lua_State *L)
{
    lua_pushboolean(L, tz_get(luaL_checkstring(L, 1), NULL) != NULL);
    return 1;
}

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    hd_err_t err;
    cJSON *j = lconv_to_json(L, 1, &err);
    if (j == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (s == NULL)
        return luaL_error(L, "json_encode: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, false);
    size_t off = end ? (size_t)(end - s) : 0;
    if (j != NULL) {
        while (off < len && (s[off] == ' ' || s[off] == '\t' || s[off] == '\r' || s[off] == '\n'))
            off++;
        if (off < len) {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    if (j == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "malformed JSON at byte %d", (int)off);
        return 2;
    }
    lconv_push_json(L, j);
    cJSON_Delete(j);
    return 1;
}

static int l_html_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&':
            luaL_addstring(&b, "&amp;");
            break;
        case '<':
            luaL_addstring(&b, "&lt;");
            break;
        case '>':
            luaL_addstring(&b, "&gt;");
            break;
        case '"':
            luaL_addstring(&b, "&#34;");
            break;
        case '\'':
            luaL_addstring(&b, "&#39;");
            break;
        default:
            luaL_addchar(&b, s[i]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_sha256(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[65];
    hash_sha256_hex(s, len, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int l_hmac_sha256(lua_State *L)
{
    size_t klen, len;
    const char *k = luaL_checklstring(L, 1, &klen);
    const char *s = luaL_checklstring(L, 2, &len);
    uint8_t mac[32];
    if (hash_hmac_sha256_checked(k, klen, s, len, mac) != 0)
        return luaL_error(L, "hmac_sha256: failed");
    char hex[65];
    hex_encode(mac, sizeof(mac), hex);
    lua_pushstring(L, hex);
    return 1;
}

static int l_uuid(lua_State *L)
{
    char *u = hash_uuid4();
    if (u == NULL)
        return luaL_error(L, "uuid: no randomness available");
    lua_pushstring(L, u);
    free(u);
    return 1;
}

/* herald.log(level, msg, fields?) — fields are flattened to strings. */
static int l_log(lua_State *L)
{
    const char *lvname = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    log_level_t lv;
    if (log_level_parse(lvname, &lv) != 0 || lv == LOG_CRIT)
        return luaL_error(L, "log: level must be debug, info, warn or error, got '%s'", lvname);
    buf_t f;
    buf_init(&f);
    buf_puts(&f, "\"source\":\"script\"");
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3) != 0) { /* stack: ..., key, value */
            if (lua_type(L, -2) == LUA_TSTRING) {
                buf_puts(&f, ",\"");
                buf_json_escape(&f, lua_tostring(L, -2));
                buf_puts(&f, "\":\"");
                buf_json_escape(&f, luaL_tolstring(L, -1, NULL));
                lua_pop(L, 1); /* the tolstring copy */
                buf_putc(&f, '"');
            }
            lua_pop(L, 1);
        }
    }
    log_write_raw(lv, msg, f.data);
    buf_free(&f);
    return 0;
}

static int l_sms_info(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    sms_info_t info;
    sms_measure(s, len, &info);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, info.gsm7 ? "GSM-7" : "UCS-2");
    lua_setfield(L, -2, "encoding");
    set_int(L, "units", (lua_Integer)info.units);
    set_int(L, "segments", info.segments);
    set_int(L, "per_segment", info.per_segment);
    return 1;
}

/* A per-state xorshift generator seeded from the OS: jitter needs spread,
 * not secrecy, and math.random's state is the script's to reseed. */
static int l_random(lua_State *L)
{
    uint64_t *st = lua_touserdata(L, lua_upvalueindex(1));
    uint64_t x = *st;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *st = x;
    lua_pushnumber(L, (double)(x >> 11) / 9007199254740992.0);
    return 1;
}

static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lconv_push_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

int luaopen_herald(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"now", l_now},
        {"to_local", l_to_local},
        {"from_local", l_from_local},
        {"valid_zone", l_valid_zone},
        {"json_encode", l_json_encode},
        {"json_decode", l_json_decode},
        {"html_escape", l_html_escape},
        {"sha256", l_sha256},
        {"hmac_sha256", l_hmac_sha256},
        {"uuid", l_uuid},
        {"log", l_log},
        {"sms_info", l_sms_info},
        {"array", l_array},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    uint64_t *st = lua_newuserdatauv(L, sizeof(uint64_t), 0);
    if (hash_random((uint8_t *)st, sizeof(*st)) != 0 || *st == 0)
        *st = 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
    lua_pushcclosure(L, l_random, 1);
    lua_setfield(L, -2, "random");
    lconv_push_null(L);
    lua_setfield(L, -2, "null");
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, 1);
    lua_setfield(L, -2, "retry_scale");
    lua_pushstring(L, "UTC");
    lua_setfield(L, -2, "default_timezone");
    lua_pushstring(L, "http://127.0.0.1:8080");
    lua_setfield(L, -2, "public_url");
    lua_setfield(L, -2, "config");
    lua_newtable(L);
    lua_setfield(L, -2, "templates");
    return 1;
}
