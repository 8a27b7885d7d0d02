/* prefs_cache.c - the Redis copy of preferences rows (see prefs_cache.h). */
#include "cache/prefs_cache.h"
#include "base/buf.h"
#include "base/log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX  "herald:prefs:v1:"
#define CACHE_TTL_S "300"
#define MAX_VERSION 18 /* digits: any int64 microsecond count until year 33658 */

/* Stores a copy only when the cache holds no newer version of the row
 * (versions are digit strings; equal lengths compare as numbers). */
static const char CACHE_PUT_SCRIPT[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local v = string.match(cur, '^{\"version\":\"(%d+)\"')\n"
    "  if v and (#v > #ARGV[2] or (#v == #ARGV[2] and v >= ARGV[2])) then return 0 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])\n"
    "return 1\n";

static char *cache_key(const char *client_id)
{
    buf_t k;
    buf_init(&k);
    buf_puts(&k, KEY_PREFIX);
    buf_puts(&k, client_id);
    return buf_steal(&k);
}

void pcache_forget(rd_client_t *rd, const char *client_id)
{
    char *key = cache_key(client_id);
    const char *argv[] = {"DEL", key};
    hd_err_t err;
    redisReply *r = rd_command_argv(rd, 2, argv, &err);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        log_warn("cannot drop cached preferences", "client_id", client_id, "reason",
                 r ? r->str : err.msg);
    if (r)
        freeReplyObject(r);
    free(key);
}

/* ---- the cached form ------------------------------------------------------
 * {"version": "<digits>", client_id, name_enc, email_enc, email_index,
 *  phone_enc, phone_index, timezone, locale, allowed_channels: [..] | null,
 *  quiet_hours_start, quiet_hours_end, opted_out_channels: [..],
 *  digest_local_time, consent_given, consent_at, consent_source, created_at,
 *  updated_at}, nullable members null when empty. The version comes first:
 * CACHE_PUT_SCRIPT reads it with a pattern. */

/* A fixed-size member of the row: "" is none. */
static cJSON *text_or_null(const char *s)
{
    return s && *s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *channel_list(const char *const *list, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(list[i]));
    return arr;
}

/* Adds <field>_enc (and <field>_index for an address) for value to o. */
static int add_sealed(cJSON *o, const fe_keyring_t *kr, const char *field, const char *value,
                      bool indexed, hd_err_t *err)
{
    char member[32], *enc = NULL, index[65];
    snprintf(member, sizeof(member), "%s_enc", field);
    if (value == NULL) {
        cJSON_AddNullToObject(o, member);
    } else if (fe_encrypt(kr, field, value, strlen(value), &enc, err) != 0) {
        return hd_err_prefix(err, "%s", field);
    } else {
        cJSON_AddStringToObject(o, member, enc);
        free(enc);
    }
    if (!indexed)
        return 0;
    snprintf(member, sizeof(member), "%s_index", field);
    if (value == NULL)
        cJSON_AddNullToObject(o, member);
    else if (fe_blind_index(kr, field, value, index) != 0)
        return hd_err_set(err, "%s: cannot compute the blind index", field);
    else
        cJSON_AddStringToObject(o, member, index);
    return 0;
}

/* The cached form of row, or NULL with err when encryption fails. */
static cJSON *cached_form(const fe_keyring_t *kr, const prefs_row_t *row, hd_err_t *err)
{
    char version[24];
    snprintf(version, sizeof(version), "%" PRId64, row->version);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddStringToObject(o, "client_id", row->client_id);
    if (add_sealed(o, kr, "name", row->name, false, err) != 0 ||
        add_sealed(o, kr, "email", row->email, true, err) != 0 ||
        add_sealed(o, kr, "phone", row->phone, true, err) != 0) {
        cJSON_Delete(o);
        return NULL;
    }
    bool quiet = row->quiet_start[0] && row->quiet_end[0];
    cJSON_AddStringToObject(o, "timezone", row->timezone);
    cJSON_AddStringToObject(o, "locale", row->locale);
    cJSON_AddItemToObject(o, "allowed_channels",
                          row->channels_stated ? channel_list(row->channels, row->nchannels)
                                               : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "quiet_hours_start", text_or_null(quiet ? row->quiet_start : NULL));
    cJSON_AddItemToObject(o, "quiet_hours_end", text_or_null(quiet ? row->quiet_end : NULL));
    cJSON_AddItemToObject(o, "opted_out_channels", channel_list(row->opted_out, row->nopted_out));
    cJSON_AddStringToObject(o, "digest_local_time", row->digest_time);
    cJSON_AddBoolToObject(o, "consent_given", row->consent_given);
    cJSON_AddItemToObject(o, "consent_at", text_or_null(row->consent_at));
    cJSON_AddItemToObject(o, "consent_source",
                          row->consent_source ? cJSON_CreateString(row->consent_source)
                                              : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "created_at", row->created_at);
    cJSON_AddStringToObject(o, "updated_at", row->updated_at);
    return o;
}

/* Member k of o as text into *out: true for a string, and for null (*out
 * NULL) when nullable. Redis is outside this process: a value of another
 * shape is a miss, never trusted. */
static bool text_member(const cJSON *o, const char *k, bool nullable, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    *out = cJSON_IsString(v) ? v->valuestring : NULL;
    return *out != NULL || (nullable && cJSON_IsNull(v));
}

static bool dup_member(const cJSON *o, const char *k, bool nullable, char **out)
{
    const char *s;
    if (!text_member(o, k, nullable, &s))
        return false;
    *out = s ? xstrdup(s) : NULL;
    return true;
}

static bool fixed_member(const cJSON *o, const char *k, bool nullable, char *dst, size_t size)
{
    const char *s;
    if (!text_member(o, k, nullable, &s) || (s && strlen(s) >= size))
        return false;
    snprintf(dst, size, "%s", s ? s : "");
    return true;
}

static bool channels_member(const cJSON *o, const char *k, bool nullable, bool *stated,
                            const char **list, int *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k), *e;
    *n = 0;
    *stated = cJSON_IsArray(v);
    if (!*stated)
        return nullable && cJSON_IsNull(v);
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e) || prefs_channel_add(list, n, e->valuestring) != 0)
            return false;
    }
    return true;
}

static bool version_member(const cJSON *o, int64_t *out)
{
    const char *s;
    if (!text_member(o, "version", false, &s))
        return false;
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > MAX_VERSION || s[n] != '\0')
        return false;
    *out = strtoll(s, NULL, 10);
    return true;
}

/* The addresses of a cached row, still sealed (borrowed from the JSON). */
typedef struct sealed {
    const char *name, *email, *phone;
} sealed_t;

/* Row o of client_id into *out, except the sealed members. */
static bool row_from_cached(const cJSON *o, const char *client_id, prefs_row_t *out, sealed_t *s)
{
    const char *id, *index;
    bool opted_stated;
    if (!cJSON_IsObject(o) || !text_member(o, "client_id", false, &id) ||
        strcmp(id, client_id) != 0 || !version_member(o, &out->version) ||
        !text_member(o, "name_enc", true, &s->name) ||
        !text_member(o, "email_enc", true, &s->email) ||
        !text_member(o, "email_index", true, &index) ||
        !text_member(o, "phone_enc", true, &s->phone) ||
        !text_member(o, "phone_index", true, &index) ||
        !dup_member(o, "timezone", false, &out->timezone) ||
        !dup_member(o, "locale", false, &out->locale) ||
        !channels_member(o, "allowed_channels", true, &out->channels_stated, out->channels,
                         &out->nchannels) ||
        !fixed_member(o, "quiet_hours_start", true, out->quiet_start, sizeof(out->quiet_start)) ||
        !fixed_member(o, "quiet_hours_end", true, out->quiet_end, sizeof(out->quiet_end)) ||
        !channels_member(o, "opted_out_channels", false, &opted_stated, out->opted_out,
                         &out->nopted_out) ||
        !fixed_member(o, "digest_local_time", false, out->digest_time, sizeof(out->digest_time)) ||
        !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "consent_given")) ||
        !fixed_member(o, "consent_at", true, out->consent_at, sizeof(out->consent_at)) ||
        !dup_member(o, "consent_source", true, &out->consent_source) ||
        !fixed_member(o, "created_at", false, out->created_at, sizeof(out->created_at)) ||
        !fixed_member(o, "updated_at", false, out->updated_at, sizeof(out->updated_at)))
        return false;
    if (!out->quiet_start[0] || !out->quiet_end[0])
        out->quiet_start[0] = out->quiet_end[0] = '\0'; /* both or none */
    out->consent_given = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "consent_given"));
    out->client_id = xstrdup(id);
    return true;
}

static int open_sealed(const fe_keyring_t *kr, const char *field, const char *enc, char **out,
                       hd_err_t *err)
{
    size_t n;
    if (enc != NULL && fe_decrypt(kr, field, enc, out, &n, err) != 0)
        return hd_err_prefix(err, "%s", field);
    return 0;
}

bool pcache_get(rd_client_t *rd, const fe_keyring_t *kr, const char *client_id, prefs_row_t *out)
{
    memset(out, 0, sizeof(*out));
    char *key = cache_key(client_id);
    const char *argv[] = {"GET", key};
    hd_err_t err;
    redisReply *r = rd_command_argv(rd, 2, argv, &err);
    free(key);
    if (r == NULL)
        return false;
    bool hit = false;
    if (r->type == REDIS_REPLY_STRING) {
        cJSON *o = cJSON_ParseWithLength(r->str, r->len);
        sealed_t s = {0};
        if (!row_from_cached(o, client_id, out, &s)) {
            log_warn("ignoring a malformed cached preferences row", "client_id", client_id);
        } else if (open_sealed(kr, "name", s.name, &out->name, &err) != 0 ||
                   open_sealed(kr, "email", s.email, &out->email, &err) != 0 ||
                   open_sealed(kr, "phone", s.phone, &out->phone, &err) != 0) {
            log_warn("cached preferences do not decrypt; reading the database", "client_id",
                     client_id, "reason", err.msg);
            pcache_forget(rd, client_id);
        } else {
            hit = true;
        }
        cJSON_Delete(o);
    }
    freeReplyObject(r);
    if (!hit)
        prefs_row_free(out);
    return hit;
}

void pcache_put(rd_client_t *rd, const fe_keyring_t *kr, const prefs_row_t *row)
{
    hd_err_t err;
    cJSON *o = cached_form(kr, row, &err);
    if (o == NULL) {
        log_warn("cannot cache preferences", "client_id", row->client_id, "reason", err.msg);
        pcache_forget(rd, row->client_id);
        return;
    }
    char *key = cache_key(row->client_id);
    char *value = cJSON_PrintUnformatted(o);
    const char *version = cJSON_GetObjectItemCaseSensitive(o, "version")->valuestring;
    const char *argv[] = {"EVAL", CACHE_PUT_SCRIPT, "1", key, value, version, CACHE_TTL_S};
    redisReply *r = rd_command_argv(rd, 7, argv, &err);
    if (r != NULL && r->type != REDIS_REPLY_INTEGER) {
        log_warn("cannot cache preferences", "client_id", row->client_id, "reason",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        pcache_forget(rd, row->client_id);
    }
    if (r)
        freeReplyObject(r);
    free(value);
    free(key);
    cJSON_Delete(o);
}
