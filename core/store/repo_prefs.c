/* repo_prefs.c - client preferences and their cache (see repo_prefs.h). */
#include "store/repo_prefs.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_PREFIX  "herald:prefs:v1:"
#define CACHE_TTL_S "300"
#define DB_WAIT_MS  5000
#define UTC_TIME(c) "to_char(" #c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The row as the API and the cache see it; ROW_* are its column numbers.
 * The version is updated_at in microseconds: strictly increasing per row
 * (see st_update), so it orders cached copies. */
#define ROW_COLUMNS                                                                                \
    "client_id, name, email_enc, email_index, phone_enc, phone_index, timezone, locale, "          \
    "array_to_string(allowed_channels, ','), to_char(quiet_hours_start, 'HH24:MI'), "              \
    "to_char(quiet_hours_end, 'HH24:MI'), array_to_string(opted_out_channels, ','), "              \
    "to_char(digest_local_time, 'HH24:MI'), consent_given, " CONSENT_AT_UTC                        \
    ", consent_source, " CREATED_AT_UTC ", " UPDATED_AT_UTC                                        \
    ", (extract(epoch FROM updated_at) * 1000000)::bigint"
#define CONSENT_AT_UTC UTC_TIME(consent_at)
#define CREATED_AT_UTC UTC_TIME(created_at)
#define UPDATED_AT_UTC UTC_TIME(updated_at)

enum {
    ROW_ID,
    ROW_NAME,
    ROW_EMAIL_ENC,
    ROW_EMAIL_INDEX,
    ROW_PHONE_ENC,
    ROW_PHONE_INDEX,
    ROW_TIMEZONE,
    ROW_LOCALE,
    ROW_CHANNELS,
    ROW_QUIET_START,
    ROW_QUIET_END,
    ROW_OPTED_OUT,
    ROW_DIGEST,
    ROW_CONSENT,
    ROW_CONSENT_AT,
    ROW_CONSENT_SOURCE,
    ROW_CREATED,
    ROW_UPDATED,
    ROW_VERSION,
};

static const pg_stmt_t st_select = {
    "prefs_select", "SELECT " ROW_COLUMNS " FROM crm_client_preferences WHERE client_id = $1", 1};
/* A new client starts from the table's defaults; the patch is applied by
 * st_update like any other change. ON CONFLICT waits for a concurrent
 * creator, so the st_lock that follows sees its committed row. */
static const pg_stmt_t st_create = {"prefs_create",
                                    "INSERT INTO crm_client_preferences (client_id) VALUES ($1) "
                                    "ON CONFLICT (client_id) DO NOTHING RETURNING 1",
                                    1};
/* The stored values in their exact text form, so that a field the patch
 * leaves out is written back unchanged. */
static const pg_stmt_t st_lock = {
    "prefs_lock",
    "SELECT name, email_enc, email_index, phone_enc, phone_index, timezone, locale, "
    "array_to_string(allowed_channels, ','), quiet_hours_start::text, quiet_hours_end::text, "
    "array_to_string(opted_out_channels, ','), digest_local_time::text, consent_given, "
    "consent_at::text, extract(epoch FROM consent_at)::bigint, consent_source "
    "FROM crm_client_preferences WHERE client_id = $1 FOR UPDATE",
    1};
enum {
    LK_NAME,
    LK_EMAIL_ENC,
    LK_EMAIL_INDEX,
    LK_PHONE_ENC,
    LK_PHONE_INDEX,
    LK_TIMEZONE,
    LK_LOCALE,
    LK_CHANNELS,
    LK_QUIET_START,
    LK_QUIET_END,
    LK_OPTED_OUT,
    LK_DIGEST,
    LK_CONSENT,
    LK_CONSENT_AT,
    LK_CONSENT_EPOCH,
    LK_CONSENT_SOURCE,
};
/* updated_at moves forward even if the clock does not (the cache version);
 * a row created by this transaction keeps updated_at = created_at. */
static const pg_stmt_t st_update = {
    "prefs_update",
    "UPDATE crm_client_preferences SET name = $2, email_enc = $3, email_index = $4, "
    "phone_enc = $5, phone_index = $6, timezone = $7, locale = $8, "
    "allowed_channels = string_to_array($9, ','), quiet_hours_start = $10::time, "
    "quiet_hours_end = $11::time, opted_out_channels = string_to_array($12, ','), "
    "digest_local_time = $13::time, consent_given = $14::boolean, "
    "consent_at = $15::timestamptz, consent_source = $16, "
    "updated_at = CASE WHEN $17::boolean THEN updated_at "
    "ELSE greatest(clock_timestamp(), updated_at + interval '1 microsecond') END "
    "WHERE client_id = $1 RETURNING " ROW_COLUMNS,
    17};
static const pg_stmt_t st_audit = {"prefs_audit",
                                   "INSERT INTO crm_audit_log (actor, action, target, details) "
                                   "VALUES ($1, 'preferences.consent', $2, $3::jsonb)",
                                   3};

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

static cJSON *text_or_null(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? cJSON_CreateNull() : cJSON_CreateString(PQgetvalue(r, 0, col));
}

static cJSON *list_from_csv(const char *csv)
{
    cJSON *arr = cJSON_CreateArray();
    char *list = xstrdup(csv), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        cJSON_AddItemToArray(arr, cJSON_CreateString(t));
    free(list);
    return arr;
}

/* The cached form of row 0 of r (ROW_COLUMNS): the row as stored, with the
 * name encrypted as name_enc. NULL with err when encryption fails. */
static cJSON *row_from_result(const fe_keyring_t *kr, const PGresult *r, hd_err_t *err)
{
    char *name_enc = NULL;
    if (!PQgetisnull(r, 0, ROW_NAME)) {
        const char *name = PQgetvalue(r, 0, ROW_NAME);
        if (fe_encrypt(kr, "name", name, strlen(name), &name_enc, err) != 0)
            return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    /* first member: the cache script reads it with a pattern */
    cJSON_AddStringToObject(o, "version", PQgetvalue(r, 0, ROW_VERSION));
    cJSON_AddStringToObject(o, "client_id", PQgetvalue(r, 0, ROW_ID));
    cJSON_AddItemToObject(o, "name_enc",
                          name_enc ? cJSON_CreateString(name_enc) : cJSON_CreateNull());
    free(name_enc);
    cJSON_AddItemToObject(o, "email_enc", text_or_null(r, ROW_EMAIL_ENC));
    cJSON_AddItemToObject(o, "email_index", text_or_null(r, ROW_EMAIL_INDEX));
    cJSON_AddItemToObject(o, "phone_enc", text_or_null(r, ROW_PHONE_ENC));
    cJSON_AddItemToObject(o, "phone_index", text_or_null(r, ROW_PHONE_INDEX));
    cJSON_AddStringToObject(o, "timezone", PQgetvalue(r, 0, ROW_TIMEZONE));
    cJSON_AddStringToObject(o, "locale", PQgetvalue(r, 0, ROW_LOCALE));
    cJSON_AddItemToObject(o, "allowed_channels",
                          PQgetisnull(r, 0, ROW_CHANNELS)
                              ? cJSON_CreateNull()
                              : list_from_csv(PQgetvalue(r, 0, ROW_CHANNELS)));
    cJSON_AddItemToObject(o, "quiet_hours_start", text_or_null(r, ROW_QUIET_START));
    cJSON_AddItemToObject(o, "quiet_hours_end", text_or_null(r, ROW_QUIET_END));
    cJSON_AddItemToObject(o, "opted_out_channels", list_from_csv(PQgetvalue(r, 0, ROW_OPTED_OUT)));
    cJSON_AddStringToObject(o, "digest_local_time", PQgetvalue(r, 0, ROW_DIGEST));
    cJSON_AddBoolToObject(o, "consent_given", PQgetvalue(r, 0, ROW_CONSENT)[0] == 't');
    cJSON_AddItemToObject(o, "consent_at", text_or_null(r, ROW_CONSENT_AT));
    cJSON_AddItemToObject(o, "consent_source", text_or_null(r, ROW_CONSENT_SOURCE));
    cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, 0, ROW_CREATED));
    cJSON_AddStringToObject(o, "updated_at", PQgetvalue(r, 0, ROW_UPDATED));
    return o;
}

/* Checks that a cached value has the shape row_from_result gives: Redis is
 * outside this process, and a value that is not a row is only a miss. */
static bool row_valid(const cJSON *o)
{
    static const char *const strings[] = {"version",           "client_id",  "timezone",  "locale",
                                          "digest_local_time", "created_at", "updated_at"};
    static const char *const nullable[] = {"name_enc",        "email_enc",   "email_index",
                                           "phone_enc",       "phone_index", "quiet_hours_start",
                                           "quiet_hours_end", "consent_at",  "consent_source"};
    static const char *const lists[] = {"allowed_channels", "opted_out_channels"};
    if (!cJSON_IsObject(o))
        return false;
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, strings[i])))
            return false;
    for (size_t i = 0; i < sizeof(nullable) / sizeof(nullable[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, nullable[i]);
        if (!cJSON_IsString(v) && !cJSON_IsNull(v))
            return false;
    }
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, lists[i]), *e;
        if (i == 0 && cJSON_IsNull(v))
            continue; /* no stated channel order */
        if (!cJSON_IsArray(v))
            return false;
        cJSON_ArrayForEach(e, v)
        {
            if (!cJSON_IsString(e))
                return false;
        }
    }
    return cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "consent_given"));
}

/* The cached row of client_id, or NULL (miss, Redis down, not a row). */
static cJSON *cache_get(app_t *app, const char *client_id)
{
    char *key = cache_key(client_id);
    const char *argv[] = {"GET", key};
    hd_err_t err;
    redisReply *r = rd_command_argv(app->redis, 2, argv, &err);
    free(key);
    if (r == NULL)
        return NULL;
    cJSON *row = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        row = cJSON_ParseWithLength(r->str, r->len);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "client_id");
        if (!row_valid(row) || strcmp(id->valuestring, client_id) != 0) {
            log_warn("ignoring a malformed cached preferences row", "client_id", client_id);
            cJSON_Delete(row);
            row = NULL;
        }
    }
    freeReplyObject(r);
    return row;
}

void prefs_cache_forget(app_t *app, const char *client_id)
{
    char *key = cache_key(client_id);
    const char *argv[] = {"DEL", key};
    hd_err_t err;
    redisReply *r = rd_command_argv(app->redis, 2, argv, &err);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        log_warn("cannot drop cached preferences", "client_id", client_id, "reason",
                 r ? r->str : err.msg);
    if (r)
        freeReplyObject(r);
    free(key);
}

/* Stores row unless a newer version is cached. Best effort: when Redis is
 * down, the next reads go to PostgreSQL. */
static void cache_put(app_t *app, const cJSON *row)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "client_id");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(row, "version");
    char *key = cache_key(id->valuestring);
    char *value = cJSON_PrintUnformatted(row);
    const char *argv[] = {"EVAL", CACHE_PUT_SCRIPT,     "1",        key,
                          value,  version->valuestring, CACHE_TTL_S};
    hd_err_t err;
    redisReply *r = rd_command_argv(app->redis, 7, argv, &err);
    bool stored = r != NULL && r->type == REDIS_REPLY_INTEGER;
    if (r != NULL && !stored) {
        /* the script itself failed: a missing copy is safe, a stale one
         * is not */
        log_warn("cannot cache preferences", "client_id", id->valuestring, "reason",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        r = NULL;
        prefs_cache_forget(app, id->valuestring);
    }
    if (r)
        freeReplyObject(r);
    free(value);
    free(key);
}

/* The stored row of client_id from PostgreSQL: PREFS_OK with *row (caller
 * frees), PREFS_NOT_FOUND, PREFS_ERR_DB or PREFS_ERR_CRYPTO. */
static int db_get(app_t *app, const char *client_id, cJSON **row, hd_err_t *err)
{
    *row = NULL;
    pg_conn_t *c = pg_pool_get(app->db, DB_WAIT_MS, err);
    if (c == NULL)
        return PREFS_ERR_DB;
    const char *p[] = {client_id};
    PGresult *r = pg_exec(c, &st_select, p, err);
    pg_pool_put(app->db, c);
    if (r == NULL)
        return PREFS_ERR_DB;
    int rc = PREFS_NOT_FOUND;
    if (PQntuples(r) == 1) {
        *row = row_from_result(app->keyring, r, err);
        rc = *row ? PREFS_OK : PREFS_ERR_CRYPTO;
    }
    PQclear(r);
    return rc;
}

/* Decrypts the member `column` of row for field: 0 with *out (caller frees;
 * NULL when the column is null), or -1 with err. */
static int open_field(const fe_keyring_t *kr, const cJSON *row, const char *column,
                      const char *field, char **out, hd_err_t *err)
{
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, column);
    if (!cJSON_IsString(v))
        return 0;
    size_t n;
    if (fe_decrypt(kr, field, v->valuestring, out, &n, err) != 0)
        return hd_err_prefix(err, "%s", field);
    return 0;
}

/* The name, email and phone of row in clear. */
typedef struct contact {
    char *name, *email, *phone;
} contact_t;

static void contact_free(contact_t *ct)
{
    free(ct->name);
    free(ct->email);
    free(ct->phone);
    memset(ct, 0, sizeof(*ct));
}

static int contact_open(const fe_keyring_t *kr, const cJSON *row, bool with_name, contact_t *ct,
                        hd_err_t *err)
{
    memset(ct, 0, sizeof(*ct));
    if ((with_name && open_field(kr, row, "name_enc", "name", &ct->name, err) != 0) ||
        open_field(kr, row, "email_enc", "email", &ct->email, err) != 0 ||
        open_field(kr, row, "phone_enc", "phone", &ct->phone, err) != 0) {
        contact_free(ct);
        return -1;
    }
    return 0;
}

static cJSON *copy_member(const cJSON *row, const char *name)
{
    return cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, name), true);
}

static cJSON *string_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

typedef int (*shape_fn)(const fe_keyring_t *kr, const cJSON *row, cJSON **out, hd_err_t *err);

static int shape_api(const fe_keyring_t *kr, const cJSON *row, cJSON **out, hd_err_t *err)
{
    contact_t ct;
    if (contact_open(kr, row, true, &ct, err) != 0)
        return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "client_id", copy_member(row, "client_id"));
    cJSON_AddItemToObject(o, "name", string_or_null(ct.name));
    cJSON_AddItemToObject(o, "email", string_or_null(ct.email));
    cJSON_AddItemToObject(o, "phone", string_or_null(ct.phone));
    contact_free(&ct);
    cJSON_AddItemToObject(o, "timezone", copy_member(row, "timezone"));
    cJSON_AddItemToObject(o, "locale", copy_member(row, "locale"));
    cJSON_AddItemToObject(o, "channels", copy_member(row, "allowed_channels"));
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(row, "quiet_hours_start");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(row, "quiet_hours_end");
    if (cJSON_IsString(qs) && cJSON_IsString(qe)) {
        cJSON *q = cJSON_AddObjectToObject(o, "quiet_hours");
        cJSON_AddStringToObject(q, "start", qs->valuestring);
        cJSON_AddStringToObject(q, "end", qe->valuestring);
    } else {
        cJSON_AddNullToObject(o, "quiet_hours");
    }
    cJSON_AddItemToObject(o, "opted_out", copy_member(row, "opted_out_channels"));
    cJSON_AddItemToObject(o, "digest_time", copy_member(row, "digest_local_time"));
    cJSON *consent = cJSON_AddObjectToObject(o, "consent");
    cJSON_AddItemToObject(consent, "given", copy_member(row, "consent_given"));
    cJSON_AddItemToObject(consent, "at", copy_member(row, "consent_at"));
    cJSON_AddItemToObject(consent, "source", copy_member(row, "consent_source"));
    cJSON_AddItemToObject(o, "created_at", copy_member(row, "created_at"));
    cJSON_AddItemToObject(o, "updated_at", copy_member(row, "updated_at"));
    *out = o;
    return 0;
}

static int shape_policy(const fe_keyring_t *kr, const cJSON *row, cJSON **out, hd_err_t *err)
{
    contact_t ct;
    if (contact_open(kr, row, true, &ct, err) != 0)
        return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "timezone", copy_member(row, "timezone"));
    cJSON_AddItemToObject(o, "locale", copy_member(row, "locale"));
    cJSON_AddItemToObject(o, "digest_time", copy_member(row, "digest_local_time"));
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(row, "allowed_channels")))
        cJSON_AddItemToObject(o, "channels", copy_member(row, "allowed_channels"));
    cJSON *opted = cJSON_AddObjectToObject(o, "opted_out");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(row, "opted_out_channels"))
    {
        cJSON_AddTrueToObject(opted, e->valuestring);
    }
    cJSON *consent = cJSON_AddObjectToObject(o, "consent");
    cJSON_AddItemToObject(consent, "given", copy_member(row, "consent_given"));
    cJSON_AddItemToObject(consent, "at", copy_member(row, "consent_at"));
    if (ct.name)
        cJSON_AddStringToObject(o, "name", ct.name);
    if (ct.email)
        cJSON_AddStringToObject(o, "email", ct.email);
    if (ct.phone)
        cJSON_AddStringToObject(o, "phone", ct.phone);
    contact_free(&ct);
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(row, "quiet_hours_start");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(row, "quiet_hours_end");
    if (cJSON_IsString(qs) && cJSON_IsString(qe)) {
        cJSON *q = cJSON_AddObjectToObject(o, "quiet_hours");
        cJSON_AddStringToObject(q, "start", qs->valuestring);
        cJSON_AddStringToObject(q, "end", qe->valuestring);
    }
    *out = o;
    return 0;
}

/* Loads client_id's row (cache, then PostgreSQL, filling the cache) and
 * shapes it. A cached copy that does not decrypt is dropped and the row is
 * read again from PostgreSQL; a stored value that does not decrypt fails. */
static int load_shaped(app_t *app, const char *client_id, shape_fn shape, cJSON **out,
                       hd_err_t *err)
{
    *out = NULL;
    cJSON *row = cache_get(app, client_id);
    if (row != NULL) {
        if (shape(app->keyring, row, out, err) == 0) {
            cJSON_Delete(row);
            return PREFS_OK;
        }
        log_warn("cached preferences do not decrypt; reading the database", "client_id", client_id,
                 "reason", err->msg);
        cJSON_Delete(row);
        prefs_cache_forget(app, client_id);
    }
    int rc = db_get(app, client_id, &row, err);
    if (rc != PREFS_OK)
        return rc;
    if (shape(app->keyring, row, out, err) != 0) {
        log_error("cannot decrypt stored preferences", "client_id", client_id, "reason", err->msg);
        hd_err_prefix(err, "cannot decrypt the stored preferences");
        cJSON_Delete(row);
        return PREFS_ERR_CRYPTO;
    }
    cache_put(app, row);
    cJSON_Delete(row);
    return PREFS_OK;
}

int prefs_get(app_t *app, const char *client_id, cJSON **out, hd_err_t *err)
{
    return load_shaped(app, client_id, shape_api, out, err);
}

int prefs_load(app_t *app, const char *client_id, cJSON **out, hd_err_t *err)
{
    int rc = load_shaped(app, client_id, shape_policy, out, err);
    return rc == PREFS_OK || rc == PREFS_NOT_FOUND ? 0 : -1;
}

/* ---- writing ------------------------------------------------------------ */

/* An encrypted address and its blind index. */
typedef struct sealed {
    char *enc;
    char index[65];
} sealed_t;

static int seal(const fe_keyring_t *kr, const char *field, const char *value, sealed_t *s,
                hd_err_t *err)
{
    if (fe_encrypt(kr, field, value, strlen(value), &s->enc, err) != 0)
        return hd_err_prefix(err, "%s", field);
    if (fe_blind_index(kr, field, value, s->index) != 0) {
        free(s->enc);
        s->enc = NULL;
        return hd_err_set(err, "%s: cannot compute the blind index", field);
    }
    return 0;
}

static void csv_of(const char *const *list, int n, char *out, size_t outn)
{
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + off, outn - off, "%s%s", i ? "," : "", list[i]);
        if (w < 0 || (size_t)w >= outn - off)
            break;
        off += (size_t)w;
    }
}

static const char *lk(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : PQgetvalue(r, 0, col);
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Error class of the last failure on c: a value the schema refuses is the
 * caller's (400), anything else the database's (503). */
static int db_failure(pg_conn_t *c)
{
    const char *st = pg_last_sqlstate(c);
    return strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0 ? PREFS_ERR_INVALID
                                                                  : PREFS_ERR_DB;
}

static int write_audit(pg_conn_t *c, const char *actor, const char *client_id, const cJSON *row,
                       hd_err_t *err)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "given", copy_member(row, "consent_given"));
    cJSON_AddItemToObject(d, "source", copy_member(row, "consent_source"));
    cJSON_AddItemToObject(d, "at", copy_member(row, "consent_at"));
    char *details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    buf_t target;
    buf_init(&target);
    buf_printf(&target, "client:%s", client_id);
    const char *p[] = {actor, target.data, details};
    PGresult *r = pg_exec(c, &st_audit, p, err);
    buf_free(&target);
    free(details);
    if (r == NULL)
        return hd_err_prefix(err, "audit log");
    PQclear(r);
    return 0;
}

/* One attempt at the write transaction on c. *row (caller frees) is the
 * stored row after the change. */
static int write_tx(app_t *app, pg_conn_t *c, const prefs_patch_t *p, const sealed_t *email,
                    const sealed_t *phone, const char *actor, bool *created, cJSON **row,
                    hd_err_t *err)
{
    PGresult *old = NULL, *upd = NULL;
    int rc = PREFS_ERR_DB;
    if (pg_tx_open(c, err) != 0)
        return PREFS_ERR_DB;
    const char *id[] = {p->client_id};
    /* A row deleted between the insert and the lock (an erasure) is
     * created again on the next round. */
    for (int round = 0; round < 3 && (old == NULL || PQntuples(old) == 0); round++) {
        PQclear(old);
        old = NULL;
        PGresult *ins = pg_exec(c, &st_create, id, err);
        if (ins == NULL) {
            rc = db_failure(c);
            goto done;
        }
        *created = PQntuples(ins) == 1;
        PQclear(ins);
        if ((old = pg_exec(c, &st_lock, id, err)) == NULL)
            goto done;
    }
    if (PQntuples(old) != 1) {
        hd_err_set(err, "database: the preferences row keeps disappearing");
        goto done;
    }

    const char *name = p->name_op == PREFS_SET     ? p->name
                       : p->name_op == PREFS_CLEAR ? NULL
                                                   : lk(old, LK_NAME);
    const char *email_enc = lk(old, LK_EMAIL_ENC), *email_index = lk(old, LK_EMAIL_INDEX);
    if (p->email_op != PREFS_KEEP) {
        email_enc = p->email_op == PREFS_SET ? email->enc : NULL;
        email_index = p->email_op == PREFS_SET ? email->index : NULL;
    }
    const char *phone_enc = lk(old, LK_PHONE_ENC), *phone_index = lk(old, LK_PHONE_INDEX);
    if (p->phone_op != PREFS_KEEP) {
        phone_enc = p->phone_op == PREFS_SET ? phone->enc : NULL;
        phone_index = p->phone_op == PREFS_SET ? phone->index : NULL;
    }
    const char *qs = lk(old, LK_QUIET_START), *qe = lk(old, LK_QUIET_END);
    if (p->quiet_op != PREFS_KEEP) {
        qs = p->quiet_op == PREFS_SET ? p->quiet_start : NULL;
        qe = p->quiet_op == PREFS_SET ? p->quiet_end : NULL;
    }
    char channels_buf[64], opted[64];
    const char *channels = lk(old, LK_CHANNELS); /* NULL: no stated order */
    if (p->set_channels) {
        csv_of(p->channels, p->nchannels, channels_buf, sizeof(channels_buf));
        channels = channels_buf;
    }
    if (p->set_opted_out)
        csv_of(p->opted_out, p->nopted_out, opted, sizeof(opted));
    else
        snprintf(opted, sizeof(opted), "%s", lk(old, LK_OPTED_OUT));

    /* Consent: a change of `given` is a new event (its time defaults to
     * now, its source to none); otherwise only what the patch names
     * changes. Any change is audited. */
    bool old_given = PQgetvalue(old, 0, LK_CONSENT)[0] == 't', given = old_given;
    const char *consent_at = lk(old, LK_CONSENT_AT), *source = lk(old, LK_CONSENT_SOURCE);
    bool consent_changed = false;
    char at_text[32];
    if (p->set_consent) {
        given = p->consent_given;
        if (p->consent_at_set || given != old_given) {
            timefmt_format(p->consent_at_set ? p->consent_at : (int64_t)time(NULL), at_text);
            consent_at = at_text;
        }
        if (p->consent_source_set || given != old_given)
            source = p->consent_source_set ? p->consent_source : NULL;
        const char *old_epoch = lk(old, LK_CONSENT_EPOCH);
        consent_changed = given != old_given || !same_text(source, lk(old, LK_CONSENT_SOURCE)) ||
                          (p->consent_at_set &&
                           (old_epoch == NULL || strtoll(old_epoch, NULL, 10) != p->consent_at));
    }

    const char *params[] = {p->client_id,
                            name,
                            email_enc,
                            email_index,
                            phone_enc,
                            phone_index,
                            p->timezone ? p->timezone : lk(old, LK_TIMEZONE),
                            p->locale ? p->locale : lk(old, LK_LOCALE),
                            channels,
                            qs,
                            qe,
                            opted,
                            p->digest_time ? p->digest_time : lk(old, LK_DIGEST),
                            given ? "t" : "f",
                            consent_at,
                            source,
                            *created ? "t" : "f"};
    if ((upd = pg_exec(c, &st_update, params, err)) == NULL) {
        rc = db_failure(c);
        goto done;
    }
    if (PQntuples(upd) != 1) {
        hd_err_set(err, "database: the preferences row vanished during the update");
        goto done;
    }
    if ((*row = row_from_result(app->keyring, upd, err)) == NULL) {
        rc = PREFS_ERR_CRYPTO;
        goto done;
    }
    if (consent_changed && write_audit(c, actor, p->client_id, *row, err) != 0)
        goto done;
    rc = PREFS_OK;
done:
    rc = pg_tx_close(c, rc, err); /* a failed commit is PREFS_ERR_DB (-1) */
    if (rc != PREFS_OK) {
        cJSON_Delete(*row);
        *row = NULL;
    }
    PQclear(upd);
    PQclear(old);
    return rc;
}

int prefs_save(app_t *app, const prefs_patch_t *patch, const char *actor, bool *created,
               cJSON **out, hd_err_t *err)
{
    *out = NULL;
    *created = false;
    sealed_t email = {0}, phone = {0};
    cJSON *row = NULL;
    int rc = PREFS_ERR_CRYPTO;
    if ((patch->email_op == PREFS_SET &&
         seal(app->keyring, "email", patch->email, &email, err) != 0) ||
        (patch->phone_op == PREFS_SET &&
         seal(app->keyring, "phone", patch->phone, &phone, err) != 0))
        goto done;
    pg_conn_t *c = pg_pool_get(app->db, DB_WAIT_MS, err);
    if (c == NULL) {
        rc = PREFS_ERR_DB;
        goto done;
    }
    rc = write_tx(app, c, patch, &email, &phone, actor, created, &row, err);
    pg_pool_put(app->db, c); /* rolls back anything left open */
    if (rc != PREFS_OK)
        goto done;
    cache_put(app, row);
    if (shape_api(app->keyring, row, out, err) != 0) {
        log_error("cannot decrypt stored preferences", "client_id", patch->client_id, "reason",
                  err->msg);
        hd_err_prefix(err, "cannot decrypt the stored preferences");
        rc = PREFS_ERR_CRYPTO;
    }
done:
    cJSON_Delete(row);
    free(email.enc);
    free(phone.enc);
    return rc;
}
