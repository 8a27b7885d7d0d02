/* repo_prefs.c - the client preferences repository (see repo_prefs.h). */
#include "store/repo_prefs.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/timefmt.h"
#include "store/pg_array.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_WAIT_MS  5000
#define UTC_TIME(c) "to_char(" #c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The row as prefs_row_t holds it; ROW_* are its column numbers. */
#define ROW_COLUMNS                                                                                \
    "client_id, name, email_enc, phone_enc, timezone, locale, "                                    \
    "array_to_string(allowed_channels, ','), to_char(quiet_hours_start, 'HH24:MI'), "              \
    "to_char(quiet_hours_end, 'HH24:MI'), array_to_string(opted_out_channels, ','), "              \
    "to_char(digest_local_time, 'HH24:MI'), consent_given, " UTC_TIME(                             \
        consent_at) ", consent_source, " UTC_TIME(created_at) ", " UTC_TIME(updated_at) ", "       \
                                                                                        "(extract" \
                                                                                        "(epoch "  \
                                                                                        "FROM "    \
                                                                                        "updated_" \
                                                                                        "at) * "   \
                                                                                        "1000000)" \
                                                                                        "::"       \
                                                                                        "bigint, " \
                                                                                        "name_enc"

enum {
    ROW_ID,
    ROW_NAME,
    ROW_EMAIL_ENC,
    ROW_PHONE_ENC,
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
    ROW_NAME_ENC,
};

static const pg_stmt_t st_select = {
    "prefs_select", "SELECT " ROW_COLUMNS " FROM crm_client_preferences WHERE client_id = $1", 1,
    false};
static const pg_stmt_t st_select_many = {
    "prefs_select_many",
    "SELECT " ROW_COLUMNS " FROM crm_client_preferences WHERE client_id = ANY($1::text[])", 1,
    false};
/* A new client starts from the table's defaults; the patch is applied by
 * st_update like any other change. ON CONFLICT waits for a concurrent
 * creator, so the st_lock that follows sees its committed row. */
static const pg_stmt_t st_create = {"prefs_create",
                                    "INSERT INTO crm_client_preferences (client_id) VALUES ($1) "
                                    "ON CONFLICT (client_id) DO NOTHING RETURNING 1",
                                    1, false};
/* The stored values in their exact text form, so that a field the patch
 * leaves out is written back unchanged. */
static const pg_stmt_t st_lock = {
    "prefs_lock",
    "SELECT name, email_enc, email_index, phone_enc, phone_index, timezone, locale, "
    "array_to_string(allowed_channels, ','), quiet_hours_start::text, quiet_hours_end::text, "
    "array_to_string(opted_out_channels, ','), digest_local_time::text, consent_given, "
    "consent_at::text, extract(epoch FROM consent_at)::bigint, consent_source, name_enc "
    "FROM crm_client_preferences WHERE client_id = $1 FOR UPDATE",
    1, false};
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
    LK_NAME_ENC,
};
/* updated_at moves forward even if the clock does not (the row's version);
 * a row created by this transaction keeps updated_at = created_at. The name
 * is written sealed only ($2): the clear column of rows from before
 * migration 0008 is emptied by any write. */
static const pg_stmt_t st_update = {
    "prefs_update",
    "UPDATE crm_client_preferences SET name = NULL, name_enc = $2, email_enc = $3, email_index = "
    "$4, "
    "phone_enc = $5, phone_index = $6, timezone = $7, locale = $8, "
    "allowed_channels = string_to_array($9, ','), quiet_hours_start = $10::time, "
    "quiet_hours_end = $11::time, opted_out_channels = string_to_array($12, ','), "
    "digest_local_time = $13::time, consent_given = $14::boolean, "
    "consent_at = $15::timestamptz, consent_source = $16, "
    "updated_at = CASE WHEN $17::boolean THEN updated_at "
    "ELSE greatest(clock_timestamp(), updated_at + interval '1 microsecond') END "
    "WHERE client_id = $1 RETURNING " ROW_COLUMNS,
    17, false};
static const pg_stmt_t st_audit = {"prefs_audit",
                                   "INSERT INTO crm_audit_log (actor, action, target, details) "
                                   "VALUES ($1, 'preferences.consent', $2, $3::jsonb)",
                                   3, false};

/* ---- reading ------------------------------------------------------------ */

static const char *col_at(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

static const char *col(const PGresult *r, int c)
{
    return col_at(r, 0, c);
}

static char *dup_at(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : xstrdup(PQgetvalue(r, row, c));
}

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* The channels of a comma-separated list; the schema allows no other names. */
static void channels_of(const char *csv, const char **list, int *n)
{
    char *copy = xstrdup(csv), *save = NULL;
    *n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        prefs_channel_add(list, n, t);
    free(copy);
}

/* Decrypts column c of row for field into *out (NULL when the column is). */
static int open_field(const fe_keyring_t *kr, const PGresult *r, int row, int c, const char *field,
                      char **out, hd_err_t *err)
{
    *out = NULL;
    size_t n;
    if (!PQgetisnull(r, row, c) && fe_decrypt(kr, field, PQgetvalue(r, row, c), out, &n, err) != 0)
        return hd_err_prefix(err, "%s", field);
    return 0;
}

/* Row i of r (ROW_COLUMNS) into *out: PREFS_OK, or PREFS_ERR_CRYPTO (logged)
 * with *out zeroed. */
static int row_from_result(const fe_keyring_t *kr, const PGresult *r, int i, prefs_row_t *out,
                           hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (open_field(kr, r, i, ROW_EMAIL_ENC, "email", &out->email, err) != 0 ||
        open_field(kr, r, i, ROW_PHONE_ENC, "phone", &out->phone, err) != 0 ||
        open_field(kr, r, i, ROW_NAME_ENC, "name", &out->name, err) != 0) {
        log_error("cannot decrypt stored preferences", "client_id", PQgetvalue(r, i, ROW_ID),
                  "reason", err->msg);
        hd_err_prefix(err, "cannot decrypt the stored preferences");
        prefs_row_free(out);
        return PREFS_ERR_CRYPTO;
    }
    out->client_id = xstrdup(PQgetvalue(r, i, ROW_ID));
    if (out->name == NULL) /* a row from before migration 0008, not yet rekeyed */
        out->name = dup_at(r, i, ROW_NAME);
    out->timezone = xstrdup(PQgetvalue(r, i, ROW_TIMEZONE));
    out->locale = xstrdup(PQgetvalue(r, i, ROW_LOCALE));
    out->channels_stated = !PQgetisnull(r, i, ROW_CHANNELS);
    if (out->channels_stated)
        channels_of(PQgetvalue(r, i, ROW_CHANNELS), out->channels, &out->nchannels);
    channels_of(PQgetvalue(r, i, ROW_OPTED_OUT), out->opted_out, &out->nopted_out);
    if (col_at(r, i, ROW_QUIET_START) && col_at(r, i, ROW_QUIET_END)) {
        copy_text(out->quiet_start, sizeof(out->quiet_start), col_at(r, i, ROW_QUIET_START));
        copy_text(out->quiet_end, sizeof(out->quiet_end), col_at(r, i, ROW_QUIET_END));
    }
    copy_text(out->digest_time, sizeof(out->digest_time), col_at(r, i, ROW_DIGEST));
    out->consent_given = PQgetvalue(r, i, ROW_CONSENT)[0] == 't';
    copy_text(out->consent_at, sizeof(out->consent_at), col_at(r, i, ROW_CONSENT_AT));
    out->consent_source = dup_at(r, i, ROW_CONSENT_SOURCE);
    copy_text(out->created_at, sizeof(out->created_at), col_at(r, i, ROW_CREATED));
    copy_text(out->updated_at, sizeof(out->updated_at), col_at(r, i, ROW_UPDATED));
    out->version = strtoll(PQgetvalue(r, i, ROW_VERSION), NULL, 10);
    return PREFS_OK;
}

int prefs_repo_get(pg_pool_t *db, const fe_keyring_t *kr, const char *client_id, prefs_row_t *out,
                   hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    pg_conn_t *c = pg_pool_get(db, DB_WAIT_MS, err);
    if (c == NULL)
        return PREFS_ERR_DB;
    const char *p[] = {client_id};
    PGresult *r = pg_exec(c, &st_select, p, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return PREFS_ERR_DB;
    int rc = PQntuples(r) == 1 ? row_from_result(kr, r, 0, out, err) : PREFS_NOT_FOUND;
    PQclear(r);
    return rc;
}

int prefs_repo_get_many(pg_pool_t *db, const fe_keyring_t *kr, const char *const *client_ids, int n,
                        prefs_row_t *out, int *rcs, hd_err_t *err)
{
    memset(out, 0, (size_t)n * sizeof(*out));
    for (int i = 0; i < n; i++)
        rcs[i] = PREFS_NOT_FOUND;
    buf_t arr;
    buf_init(&arr);
    for (int i = 0; i < n; i++)
        pg_arr_add(&arr, client_ids[i]);
    char *ids = pg_arr_end(&arr);
    pg_conn_t *c = pg_pool_get(db, DB_WAIT_MS, err);
    if (c == NULL) {
        free(ids);
        return -1;
    }
    const char *p[] = {ids};
    PGresult *r = pg_exec(c, &st_select_many, p, err);
    pg_pool_put(db, c);
    free(ids);
    if (r == NULL)
        return -1;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *id = PQgetvalue(r, row, ROW_ID);
        for (int i = 0; i < n; i++) {
            if (rcs[i] != PREFS_NOT_FOUND || strcmp(client_ids[i], id) != 0)
                continue;
            /* the same id asked twice gets the row twice */
            hd_err_t rerr;
            rcs[i] = row_from_result(kr, r, row, &out[i], &rerr);
        }
    }
    PQclear(r);
    return 0;
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

/* The audit row of a consent change; upd is the row as updated. */
static int write_audit(pg_conn_t *c, const char *actor, const char *client_id, const PGresult *upd,
                       hd_err_t *err)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddBoolToObject(d, "given", PQgetvalue(upd, 0, ROW_CONSENT)[0] == 't');
    const char *source = col(upd, ROW_CONSENT_SOURCE), *at = col(upd, ROW_CONSENT_AT);
    cJSON_AddItemToObject(d, "source", source ? cJSON_CreateString(source) : cJSON_CreateNull());
    cJSON_AddItemToObject(d, "at", at ? cJSON_CreateString(at) : cJSON_CreateNull());
    char *details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    buf_t target;
    buf_init(&target);
    buf_printf(&target, "client:%s", client_id);
    const char *p[] = {actor, target.data, details};
    int rc = pg_exec_ok(c, &st_audit, p, err);
    buf_free(&target);
    free(details);
    return rc == 0 ? 0 : hd_err_prefix(err, "audit log");
}

/* The steps of the write transaction on c. *upd (caller PQclear()s) is the
 * row as updated (ROW_COLUMNS). Returns PREFS_OK or a PREFS_ERR_*. */
static int write_steps(pg_conn_t *c, const fe_keyring_t *kr, const prefs_patch_t *p,
                       const char *new_name_enc, const sealed_t *email, const sealed_t *phone,
                       const char *actor, bool *created, PGresult **upd, hd_err_t *err)
{
    PGresult *old = NULL;
    char *kept_name_enc = NULL;
    int rc = PREFS_ERR_DB;
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

    const char *name = p->name_op == PREFS_SET     ? new_name_enc
                       : p->name_op == PREFS_CLEAR ? NULL
                                                   : col(old, LK_NAME_ENC);
    const char *clear_name = col(old, LK_NAME);
    if (p->name_op == PREFS_KEEP && name == NULL && clear_name != NULL) {
        /* a name kept from before migration 0008 is sealed by this write */
        if (fe_encrypt(kr, "name", clear_name, strlen(clear_name), &kept_name_enc, err) != 0) {
            hd_err_prefix(err, "name");
            rc = PREFS_ERR_CRYPTO;
            goto done;
        }
        name = kept_name_enc;
    }
    const char *email_enc = col(old, LK_EMAIL_ENC), *email_index = col(old, LK_EMAIL_INDEX);
    if (p->email_op != PREFS_KEEP) {
        email_enc = p->email_op == PREFS_SET ? email->enc : NULL;
        email_index = p->email_op == PREFS_SET ? email->index : NULL;
    }
    const char *phone_enc = col(old, LK_PHONE_ENC), *phone_index = col(old, LK_PHONE_INDEX);
    if (p->phone_op != PREFS_KEEP) {
        phone_enc = p->phone_op == PREFS_SET ? phone->enc : NULL;
        phone_index = p->phone_op == PREFS_SET ? phone->index : NULL;
    }
    const char *qs = col(old, LK_QUIET_START), *qe = col(old, LK_QUIET_END);
    if (p->quiet_op != PREFS_KEEP) {
        qs = p->quiet_op == PREFS_SET ? p->quiet_start : NULL;
        qe = p->quiet_op == PREFS_SET ? p->quiet_end : NULL;
    }
    char channels_buf[64], opted[64];
    const char *channels = col(old, LK_CHANNELS); /* NULL: no stated order */
    if (p->set_channels) {
        csv_of(p->channels, p->nchannels, channels_buf, sizeof(channels_buf));
        channels = channels_buf;
    }
    if (p->set_opted_out)
        csv_of(p->opted_out, p->nopted_out, opted, sizeof(opted));
    else
        snprintf(opted, sizeof(opted), "%s", col(old, LK_OPTED_OUT));

    /* Consent: a change of `given` is a new event (its time defaults to
     * now, its source to none); otherwise only what the patch names
     * changes. Any change is audited. */
    bool old_given = PQgetvalue(old, 0, LK_CONSENT)[0] == 't', given = old_given;
    const char *consent_at = col(old, LK_CONSENT_AT), *source = col(old, LK_CONSENT_SOURCE);
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
        const char *old_epoch = col(old, LK_CONSENT_EPOCH);
        consent_changed = given != old_given || !same_text(source, col(old, LK_CONSENT_SOURCE)) ||
                          (p->consent_at_set &&
                           (old_epoch == NULL || strtoll(old_epoch, NULL, 10) != p->consent_at));
    }

    const char *params[] = {p->client_id,
                            name,
                            email_enc,
                            email_index,
                            phone_enc,
                            phone_index,
                            p->timezone ? p->timezone : col(old, LK_TIMEZONE),
                            p->locale ? p->locale : col(old, LK_LOCALE),
                            channels,
                            qs,
                            qe,
                            opted,
                            p->digest_time ? p->digest_time : col(old, LK_DIGEST),
                            given ? "t" : "f",
                            consent_at,
                            source,
                            *created ? "t" : "f"};
    if ((*upd = pg_exec(c, &st_update, params, err)) == NULL) {
        rc = db_failure(c);
        goto done;
    }
    if (PQntuples(*upd) != 1) {
        hd_err_set(err, "database: the preferences row vanished during the update");
        goto done;
    }
    if (consent_changed && write_audit(c, actor, p->client_id, *upd, err) != 0)
        goto done;
    rc = PREFS_OK;
done:
    PQclear(old);
    free(kept_name_enc);
    return rc;
}

int prefs_repo_save(pg_pool_t *db, const fe_keyring_t *kr, const prefs_patch_t *patch,
                    const char *actor, bool *created, prefs_row_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    *created = false;
    sealed_t email = {0}, phone = {0};
    char *name_enc = NULL;
    PGresult *upd = NULL;
    int rc = PREFS_ERR_CRYPTO;
    if ((patch->name_op == PREFS_SET &&
         fe_encrypt(kr, "name", patch->name, strlen(patch->name), &name_enc, err) != 0) ||
        (patch->email_op == PREFS_SET && seal(kr, "email", patch->email, &email, err) != 0) ||
        (patch->phone_op == PREFS_SET && seal(kr, "phone", patch->phone, &phone, err) != 0))
        goto done;
    pg_conn_t *c = pg_tx_begin(db, err);
    if (c == NULL) {
        rc = PREFS_ERR_DB;
        goto done;
    }
    rc = write_steps(c, kr, patch, name_enc, &email, &phone, actor, created, &upd, err);
    rc = pg_tx_end(db, c, rc, err); /* a failed commit is PREFS_ERR_DB (-1) */
    /* decrypted only once committed: a kept address that no longer
     * decrypts must not block a change (one that replaces it, say) */
    if (rc == PREFS_OK)
        rc = row_from_result(kr, upd, 0, out, err);
done:
    PQclear(upd);
    free(name_enc);
    free(email.enc);
    free(phone.enc);
    return rc;
}
