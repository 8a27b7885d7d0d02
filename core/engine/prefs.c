/*
 * prefs.c - clients' preferences: the cache in front of the repository, and
 * the shape the policy scripts read (see prefs.h).
 */
#include "engine/prefs.h"
#include "base/group.h"
#include "base/hint.h"
#include "base/log.h"
#include "cache/prefs_cache.h"
#include "store/repo_prefs.h"

#include <string.h>

/* One client's read in a group (read_group). */
typedef struct pread {
    const char *client_id;
    prefs_row_t row;
    int rc;
    hd_err_t err;
} pread_t;

/* Reads items[0..n) in one statement (group_run_fn). */
static void read_group(void *ctx, void **items, int n)
{
    app_t *app = ctx;
    pread_t **it = (pread_t **)items;
    if (n == 1) {
        it[0]->rc =
            prefs_repo_get(app->db, app->keyring, it[0]->client_id, &it[0]->row, &it[0]->err);
        return;
    }
    const char *ids[GROUP_MAX_ITEMS];
    int rcs[GROUP_MAX_ITEMS];
    prefs_row_t *rows = xcalloc((size_t)n, sizeof(*rows));
    for (int i = 0; i < n; i++)
        ids[i] = it[i]->client_id;
    hd_err_t err;
    int ok = prefs_repo_get_many(app->db, app->keyring, ids, n, rows, rcs, &err) == 0;
    for (int i = 0; i < n; i++) {
        if (!ok) {
            memset(&it[i]->row, 0, sizeof(it[i]->row));
            it[i]->rc = PREFS_ERR_DB;
            it[i]->err = err;
        } else if (rcs[i] == PREFS_ERR_CRYPTO) {
            /* rare: read alone for the error that names the field */
            it[i]->rc = prefs_repo_get(app->db, app->keyring, ids[i], &it[i]->row, &it[i]->err);
        } else {
            it[i]->row = rows[i];
            it[i]->rc = rcs[i];
        }
    }
    free(rows);
}

group_t *prefs_reads_new(app_t *app)
{
    return group_new(read_group, app, PREFS_READS_MAX, 1);
}

/* The database's row of client_id: in a group read with the other threads
 * asking at the same moment when the process has one. */
static int repo_row(app_t *app, const char *client_id, prefs_row_t *row, hd_err_t *err)
{
    if (app->prefs_reads == NULL)
        return prefs_repo_get(app->db, app->keyring, client_id, row, err);
    pread_t me = {.client_id = client_id};
    group_submit(app->prefs_reads, &me);
    *row = me.row;
    if (me.rc != PREFS_OK && me.rc != PREFS_NOT_FOUND && err)
        *err = me.err;
    return me.rc;
}

/* Remembers (or forgets) that client_id has a row (prefs_maybe_stored). */
static void note_stored(app_t *app, const char *client_id, bool stored)
{
    if (app->prefs_stored == NULL)
        return;
    if (stored)
        hint_add(app->prefs_stored, client_id);
    else
        hint_drop(app->prefs_stored, client_id);
}

bool prefs_maybe_stored(app_t *app, const char *client_id)
{
    return app->prefs_stored == NULL || hint_has(app->prefs_stored, client_id);
}

/* The cached copy when current allows it (see prefs_load), else the
 * database's row, which refreshes the cache. */
static int load_row(app_t *app, const char *client_id, const prefs_version_t *current,
                    prefs_row_t *row, hd_err_t *err)
{
    /* The claim read, in its own statement, that the client has no row:
     * the message is sent as that snapshot saw the client (its own
     * recipient), as a claimed version is trusted, without asking again. */
    if (current != NULL && !current->exists) {
        memset(row, 0, sizeof(*row));
        return PREFS_NOT_FOUND;
    }
    if ((current == NULL || current->exists) &&
        pcache_get(app->redis, app->keyring, client_id, row)) {
        if (current == NULL || row->version == current->version) {
            note_stored(app, client_id, true);
            return PREFS_OK;
        }
        /* Older: a save whose cache write failed. Newer: a change since the
         * claim. Not the row the claim saw either way: the database says. */
        if (row->version < current->version)
            log_info("cached preferences are older than the row; reading the database", "client_id",
                     client_id);
        prefs_row_free(row);
    }
    int rc = repo_row(app, client_id, row, err);
    if (rc == PREFS_OK)
        pcache_put(app->redis, app->keyring, row);
    if (rc == PREFS_OK || rc == PREFS_NOT_FOUND)
        note_stored(app, client_id, rc == PREFS_OK);
    return rc;
}

int prefs_get(app_t *app, const char *client_id, prefs_row_t *out, hd_err_t *err)
{
    return load_row(app, client_id, NULL, out, err);
}

int prefs_save(app_t *app, const prefs_patch_t *patch, const char *actor, bool *created,
               prefs_row_t *out, hd_err_t *err)
{
    int rc = prefs_repo_save(app->db, app->keyring, patch, actor, created, out, err);
    if (rc == PREFS_OK) {
        pcache_put(app->redis, app->keyring, out);
        note_stored(app, patch->client_id, true);
    } else if (rc == PREFS_ERR_CRYPTO || rc == PREFS_ERR_DB)
        /* the row may have changed (a committed change whose row does not
         * decrypt, a commit whose answer was lost): the copy may be stale */
        pcache_forget(app->redis, patch->client_id);
    return rc;
}

cJSON *prefs_policy_shape(const prefs_row_t *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "timezone", row->timezone);
    cJSON_AddStringToObject(o, "locale", row->locale);
    cJSON_AddStringToObject(o, "digest_time", row->digest_time);
    if (row->channels_stated) {
        cJSON *ch = cJSON_AddArrayToObject(o, "channels");
        for (int i = 0; i < row->nchannels; i++)
            cJSON_AddItemToArray(ch, cJSON_CreateString(row->channels[i]));
    }
    cJSON *opted = cJSON_AddObjectToObject(o, "opted_out");
    for (int i = 0; i < row->nopted_out; i++)
        cJSON_AddTrueToObject(opted, row->opted_out[i]);
    cJSON *consent = cJSON_AddObjectToObject(o, "consent");
    cJSON_AddBoolToObject(consent, "given", row->consent_given);
    cJSON_AddItemToObject(consent, "at",
                          row->consent_at[0] ? cJSON_CreateString(row->consent_at)
                                             : cJSON_CreateNull());
    if (row->name)
        cJSON_AddStringToObject(o, "name", row->name);
    if (row->email)
        cJSON_AddStringToObject(o, "email", row->email);
    if (row->phone)
        cJSON_AddStringToObject(o, "phone", row->phone);
    if (row->quiet_start[0] && row->quiet_end[0]) {
        cJSON *q = cJSON_AddObjectToObject(o, "quiet_hours");
        cJSON_AddStringToObject(q, "start", row->quiet_start);
        cJSON_AddStringToObject(q, "end", row->quiet_end);
    }
    return o;
}

int prefs_load(app_t *app, const char *client_id, const prefs_version_t *current, cJSON **out,
               hd_err_t *err)
{
    *out = NULL;
    prefs_row_t row;
    int rc = load_row(app, client_id, current, &row, err);
    if (rc == PREFS_NOT_FOUND)
        return 0;
    if (rc != PREFS_OK)
        return -1;
    *out = prefs_policy_shape(&row);
    prefs_row_free(&row);
    return 0;
}

void prefs_cache_forget(app_t *app, const char *client_id)
{
    pcache_forget(app->redis, client_id);
}
