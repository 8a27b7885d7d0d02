/* repo_auth.c - API keys and refresh tokens (see repo_auth.h). Scopes are
 * stored as a text array, converted with base/scope. */
#include "store/repo_auth.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/scope.h"
#include "crypto/codec.h"
#include "crypto/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX_LEN 12

static const pg_stmt_t st_key_insert = {
    "apikey_insert",
    "INSERT INTO crm_api_keys (name, prefix, secret_hash, scopes) "
    "VALUES ($1, $2, $3, string_to_array($4, ','))",
    4, false};
static const pg_stmt_t st_key_list = {
    "apikey_list",
    "SELECT id, name, prefix, array_to_string(scopes, ','), "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM crm_api_keys ORDER BY created_at DESC, name",
    0, false};
static const pg_stmt_t st_key_revoke = {
    /* One key at most: an exact name wins over a prefix that happens to be
     * spelled the same. */
    "apikey_revoke",
    "UPDATE crm_api_keys SET revoked_at = now() WHERE id = ("
    " SELECT id FROM crm_api_keys WHERE revoked_at IS NULL"
    " AND (name = $1 OR prefix = $1) ORDER BY (name = $1) DESC LIMIT 1)"
    " RETURNING id, name",
    1, false};
static const pg_stmt_t st_key_revoke_tokens = {"apikey_revoke_tokens",
                                               "UPDATE crm_refresh_tokens SET revoked_at = now() "
                                               "WHERE api_key_id = $1 AND revoked_at IS NULL",
                                               1, false};
static const pg_stmt_t st_key_by_prefix = {
    "apikey_by_prefix",
    "SELECT id, name, array_to_string(scopes, ','), secret_hash "
    "FROM crm_api_keys WHERE prefix = $1 AND revoked_at IS NULL",
    1, false};
static const pg_stmt_t st_key_touch = {
    "apikey_touch", "UPDATE crm_api_keys SET last_used_at = now() WHERE id = $1", 1, false};
static const pg_stmt_t st_audit = {"audit_insert",
                                   "INSERT INTO crm_audit_log (actor, action, target, details) "
                                   "VALUES ($1, $2, $3, COALESCE($4::jsonb, '{}'))",
                                   4, false};
static const pg_stmt_t st_refresh_insert = {
    "refresh_insert",
    "INSERT INTO crm_refresh_tokens (family_id, api_key_id, token_hash, "
    "expires_at) VALUES (COALESCE($1::uuid, gen_random_uuid()), $2, $3, "
    "now() + make_interval(secs => $4::int)) RETURNING id",
    4, false};
static const pg_stmt_t st_refresh_find = {
    "refresh_find",
    "SELECT r.id, r.family_id, r.used_at IS NOT NULL, "
    "(r.revoked_at IS NOT NULL OR r.expires_at <= now() OR k.revoked_at IS NOT NULL), "
    "k.id, k.name, array_to_string(k.scopes, ',') "
    "FROM crm_refresh_tokens r JOIN crm_api_keys k ON k.id = r.api_key_id "
    "WHERE r.token_hash = $1 FOR UPDATE OF r",
    1, false};
static const pg_stmt_t st_refresh_spend = {
    "refresh_spend",
    "UPDATE crm_refresh_tokens SET used_at = now(), replaced_by = $2 "
    "WHERE id = $1",
    2, false};
static const pg_stmt_t st_refresh_revoke_family = {
    "refresh_revoke_family",
    "UPDATE crm_refresh_tokens SET revoked_at = now() "
    "WHERE family_id = $1 AND revoked_at IS NULL",
    1, false};

/* Writes an audit row inside the caller's transaction. A failure fails the
 * transaction: an action that cannot be audited does not happen. */
static int audit(pg_conn_t *c, const char *actor, const char *action, const char *target,
                 hd_err_t *err)
{
    const char *p[] = {actor, action, target, NULL};
    PGresult *r = pg_exec(c, &st_audit, p, err);
    if (r == NULL)
        return hd_err_prefix(err, "audit log");
    PQclear(r);
    return 0;
}

int apikey_create(pg_pool_t *db, const char *name, unsigned scopes, const char *actor,
                  char **key_out, hd_err_t *err)
{
    *key_out = NULL;
    uint8_t raw[KEY_PREFIX_LEN / 2];
    char prefix[KEY_PREFIX_LEN + 1];
    if (hash_random(raw, sizeof(raw)) != 0)
        return hd_err_set(err, "no randomness available");
    hex_encode(raw, sizeof(raw), prefix);
    char *secret = hash_random_token(32);
    if (secret == NULL)
        return hd_err_set(err, "no randomness available");
    buf_t key;
    buf_init(&key);
    buf_printf(&key, "hk_%s_%s", prefix, secret);
    free(secret);
    char hash[65];
    hash_sha256_hex(key.data, key.len, hash);
    char scope_list[64] = "";
    scope_format(scopes, scope_list, sizeof(scope_list));
    for (char *p = scope_list; *p; p++)
        if (*p == ' ')
            *p = ',';

    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL) {
        buf_free(&key);
        return -1;
    }
    const char *params[] = {name, prefix, hash, scope_list};
    int rc = -1;
    PGresult *r = pg_exec(c, &st_key_insert, params, err);
    if (r == NULL) {
        if (pg_is_unique_violation(c))
            hd_err_set(err, "an API key named \"%s\" already exists", name);
    } else {
        char target[160];
        snprintf(target, sizeof(target), "apikey:%s", name);
        rc = audit(c, actor, "apikey.create", target, err);
    }
    PQclear(r);
    rc = pg_tx_end(db, c, rc, err);
    if (rc == 0)
        *key_out = buf_steal(&key);
    else
        buf_free(&key);
    return rc;
}

static char *nullable(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

int apikey_list(pg_pool_t *db, apikey_row_t **rows, int *n, hd_err_t *err)
{
    *rows = NULL;
    *n = 0;
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_key_list, NULL, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    *n = PQntuples(r);
    *rows = xcalloc((size_t)*n + 1, sizeof(apikey_row_t));
    for (int i = 0; i < *n; i++) {
        apikey_row_t *k = &(*rows)[i];
        char **cols[] = {&k->id,         &k->name,         &k->prefix,    &k->scopes,
                         &k->created_at, &k->last_used_at, &k->revoked_at};
        for (int col = 0; col < 7; col++)
            *cols[col] = nullable(r, i, col);
    }
    PQclear(r);
    return 0;
}

void apikey_rows_free(apikey_row_t *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        apikey_row_t *k = &rows[i];
        char *cols[] = {k->id,         k->name,         k->prefix,    k->scopes,
                        k->created_at, k->last_used_at, k->revoked_at};
        for (int col = 0; col < 7; col++)
            free(cols[col]);
    }
    free(rows);
}

int apikey_revoke(pg_pool_t *db, const char *name_or_prefix, const char *actor, hd_err_t *err)
{
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return -1;
    int rc = -1;
    const char *p[] = {name_or_prefix};
    PGresult *r = pg_exec(c, &st_key_revoke, p, err), *r2 = NULL;
    if (r == NULL)
        goto done;
    if (PQntuples(r) == 0) {
        rc = 1; /* rolled back: nothing was changed anyway */
        goto done;
    }
    const char *id[] = {PQgetvalue(r, 0, 0)};
    if ((r2 = pg_exec(c, &st_key_revoke_tokens, id, err)) != NULL) {
        char target[160];
        snprintf(target, sizeof(target), "apikey:%s", PQgetvalue(r, 0, 1));
        rc = audit(c, actor, "apikey.revoke", target, err);
    }
done:
    PQclear(r2);
    PQclear(r);
    return pg_tx_end(db, c, rc, err);
}

static unsigned scopes_from_list(const char *list)
{
    unsigned m = 0;
    return scope_parse(list, &m, NULL) == 0 ? m : 0;
}

int apikey_authenticate(pg_pool_t *db, const char *key, apikey_info_t *out, hd_err_t *err)
{
    size_t n = strlen(key);
    if (n < 3 + KEY_PREFIX_LEN + 1 + 16 || strncmp(key, "hk_", 3) != 0 ||
        key[3 + KEY_PREFIX_LEN] != '_')
        return hd_err_set(err, "invalid API key");
    char prefix[KEY_PREFIX_LEN + 1];
    memcpy(prefix, key + 3, KEY_PREFIX_LEN);
    prefix[KEY_PREFIX_LEN] = '\0';
    char hash[65];
    hash_sha256_hex(key, n, hash);

    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -2;
    const char *p[] = {prefix};
    PGresult *r = pg_exec(c, &st_key_by_prefix, p, err);
    int rc = -2;
    if (r != NULL) {
        rc = -1;
        if (PQntuples(r) == 1 && hash_ct_equal(hash, PQgetvalue(r, 0, 3), 64)) {
            snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(r, 0, 0));
            snprintf(out->name, sizeof(out->name), "%s", PQgetvalue(r, 0, 1));
            out->scopes = scopes_from_list(PQgetvalue(r, 0, 2));
            const char *idp[] = {out->id};
            PQclear(pg_exec(c, &st_key_touch, idp, NULL));
            rc = 0;
        } else {
            hd_err_set(err, "invalid API key");
        }
        PQclear(r);
    }
    pg_pool_put(db, c);
    return rc;
}

/* Inserts a token for key in family (NULL: a new family) on c. */
static int insert_refresh(pg_conn_t *c, const char *family, const char *key_id, int ttl_s,
                          char **token_out, char new_id[40], hd_err_t *err)
{
    char *tok = hash_random_token(32);
    if (tok == NULL)
        return hd_err_set(err, "no randomness available");
    char hash[65], ttl[16];
    hash_sha256_hex(tok, strlen(tok), hash);
    snprintf(ttl, sizeof(ttl), "%d", ttl_s);
    const char *p[] = {family, key_id, hash, ttl};
    PGresult *r = pg_exec(c, &st_refresh_insert, p, err);
    if (r == NULL) {
        free(tok);
        return -1;
    }
    if (new_id)
        snprintf(new_id, 40, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    *token_out = tok;
    return 0;
}

int refresh_issue(pg_pool_t *db, const apikey_info_t *key, int ttl_s, char **token_out,
                  hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return -1;
    int rc = insert_refresh(c, NULL, key->id, ttl_s, token_out, NULL, err);
    pg_pool_put(db, c);
    return rc;
}

refresh_status_t refresh_rotate(pg_pool_t *db, const char *token, int ttl_s, apikey_info_t *key,
                                char **new_token, hd_err_t *err)
{
    *new_token = NULL;
    char hash[65];
    hash_sha256_hex(token, strlen(token), hash);
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL)
        return REFRESH_ERROR;
    refresh_status_t st = REFRESH_ERROR;
    const char *p[] = {hash};
    PGresult *r = pg_exec(c, &st_refresh_find, p, err);
    if (r == NULL)
        goto done;
    if (PQntuples(r) == 0) {
        hd_err_set(err, "unknown refresh token");
        st = REFRESH_INVALID;
        goto done;
    }
    const char *old_id = PQgetvalue(r, 0, 0), *family = PQgetvalue(r, 0, 1);
    bool spent = PQgetvalue(r, 0, 2)[0] == 't', dead = PQgetvalue(r, 0, 3)[0] == 't';
    if (spent) {
        /* A spent token presented again means it leaked: kill the family. */
        const char *fp[] = {family};
        PGresult *rv = pg_exec(c, &st_refresh_revoke_family, fp, err);
        if (rv != NULL) {
            char target[160];
            snprintf(target, sizeof(target), "apikey:%s", PQgetvalue(r, 0, 5));
            if (audit(c, "system", "refresh.reuse_detected", target, err) == 0)
                st = REFRESH_REUSED; /* once committed */
        }
        PQclear(rv);
        goto done;
    }
    if (dead) {
        hd_err_set(err, "refresh token expired or revoked");
        st = REFRESH_INVALID;
        goto done;
    }
    snprintf(key->id, sizeof(key->id), "%s", PQgetvalue(r, 0, 4));
    snprintf(key->name, sizeof(key->name), "%s", PQgetvalue(r, 0, 5));
    key->scopes = scopes_from_list(PQgetvalue(r, 0, 6));
    char new_id[40];
    if (insert_refresh(c, family, key->id, ttl_s, new_token, new_id, err) != 0)
        goto done;
    const char *sp[] = {old_id, new_id};
    PGresult *rs = pg_exec(c, &st_refresh_spend, sp, err);
    if (rs != NULL)
        st = REFRESH_OK; /* once committed */
    PQclear(rs);
done:;
    /* a spent token's revocation commits as a rotation does; the rest
     * changed nothing worth keeping */
    bool commit = st == REFRESH_OK || st == REFRESH_REUSED;
    if (pg_tx_end(db, c, commit ? 0 : -1, err) != 0 && commit)
        st = REFRESH_ERROR;
    if (st == REFRESH_REUSED) {
        log_warn("refresh token reused; its family is revoked", "apikey", PQgetvalue(r, 0, 5));
        hd_err_set(err, "refresh token was already used; all tokens of its family are revoked");
    }
    PQclear(r);
    if (st != REFRESH_OK) {
        free(*new_token);
        *new_token = NULL;
    }
    return st;
}
