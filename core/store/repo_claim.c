/*
 * repo_claim.c - taking work from the durable queue of repo_comms.h: the
 * claim of due jobs under a lease (with what the worker needs of each
 * message), lease upkeep, and what the queue holds (next due time, depth).
 * What happens to a claimed job is recorded by repo_queue.c.
 */
#include "store/repo_comms.h"
#include "base/buf.h"
#include "base/log.h"
#include "store/pg_array.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The claim, the lease and what the worker needs of each message, in claim
 * order: crm_claim_jobs() (migration 0019), which finds the jobs by the
 * ordered index scan whatever the queue table's statistics say.
 *
 * Its commit does not wait for the WAL flush (synchronous_commit off, for
 * its own transaction only): a lease lost to a database crash is a claim
 * that never happened, the job is claimed again. No message goes out on a
 * claim alone: a send is marked `sending` first, and that commit is
 * synchronous and flushes the claim's with it (the WAL is one sequence).
 * An alert is not marked: one POSTed after a claim that a database crash
 * then loses is POSTed again when its job is claimed again (alerts are at
 * least once, as when a process dies between the POST and its record).
 * One fsync and its wait less per claim. */
static const pg_stmt_t st_claim = {
    "comms_claim",
    "WITH s AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)) "
    "SELECT c.* FROM s, crm_claim_jobs($1::int, $2::text, $3::int) c",
    3, true};

void comm_job_free(comm_job_t *j)
{
    free(j->client_id);
    free(j->plan_id);
    free(j->message_type);
    free(j->urgency);
    free(j->context_json);
    free(j->recipient_enc);
    free(j->channels_csv);
    free(j->payload_json);
    free(j->tracked_links);
    cJSON_Delete(j->who);
    free(j->experiment);
    free(j->variant);
    memset(j, 0, sizeof(*j));
}

static char *dup_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

int comms_claim(pg_pool_t *db, const fe_keyring_t *kr, const char *owner, int max, int lease_s,
                comm_job_t *jobs, hd_err_t *err)
{
    char m[16], l[16];
    snprintf(m, sizeof(m), "%d", max);
    snprintf(l, sizeof(l), "%d", lease_s);
    const char *p[] = {m, owner, l};
    pg_conn_t *conn = pg_pool_get(db, 5000, err);
    if (conn == NULL)
        return -1;
    PGresult *r = pg_exec(conn, &st_claim, p, err);
    pg_pool_put(db, conn);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        comm_job_t *j = &jobs[i];
        memset(j, 0, sizeof(*j));
        j->job_id = atoll(PQgetvalue(r, i, 0));
        snprintf(j->comm_id, sizeof(j->comm_id), "%s", PQgetvalue(r, i, 1));
        j->attempt = atoi(PQgetvalue(r, i, 2));
        j->channel_index = atoi(PQgetvalue(r, i, 3));
        snprintf(j->status, sizeof(j->status), "%s", PQgetvalue(r, i, 4));
        j->client_id = dup_or_null(r, i, 5);
        j->plan_id = dup_or_null(r, i, 6);
        j->message_type = dup_or_null(r, i, 7);
        j->urgency = dup_or_null(r, i, 8);
        hd_err_t cerr;
        if (comms_context_open(kr, PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9),
                               PQgetisnull(r, i, 18) ? NULL : PQgetvalue(r, i, 18),
                               &j->context_json, &cerr) != 0) {
            /* its key is not in the keyring: the job waits for its lease
             * (dispatch refuses to render without the context) */
            j->context_unreadable = true;
            log_error("cannot decrypt a message's context", "comm_id", j->comm_id, "reason",
                      cerr.msg);
        }
        j->recipient_enc = dup_or_null(r, i, 10);
        j->channels_csv = dup_or_null(r, i, 11);
        j->recovered = PQgetvalue(r, i, 12)[0] == 't';
        snprintf(j->owner, sizeof(j->owner), "%s", owner);
        j->batch = PQgetvalue(r, i, 13)[0] == 't';
        j->payload_json = dup_or_null(r, i, 14);
        j->experiment = dup_or_null(r, i, 19);
        j->variant = dup_or_null(r, i, 20);
        j->priority = atoi(PQgetvalue(r, i, 21));
        j->resend = PQgetvalue(r, i, 15)[0] == 't';
        snprintf(j->kind, sizeof(j->kind), "%s", PQgetvalue(r, i, 16));
        j->has_prefs = !PQgetisnull(r, i, 17);
        j->prefs_version = j->has_prefs ? strtoll(PQgetvalue(r, i, 17), NULL, 10) : 0;
    }
    PQclear(r);
    return n;
}

static const pg_stmt_t st_extend = {
    "comms_extend",
    "UPDATE crm_jobs SET lease_expires_at = now() + make_interval(secs => $2::int) "
    "WHERE lease_owner = $1 AND id = ANY($3::bigint[])",
    3, true};

int comms_extend(pg_pool_t *db, const char *owner, const long long *job_ids, int n, int lease_s,
                 hd_err_t *err)
{
    if (n <= 0)
        return 0;
    char l[16];
    snprintf(l, sizeof(l), "%d", lease_s);
    buf_t ids;
    buf_init(&ids);
    for (int i = 0; i < n; i++)
        pg_arr_addf(&ids, "%lld", job_ids[i]);
    char *list = pg_arr_end(&ids);
    const char *p[] = {owner, l, list};
    int rc = pg_pool_exec_ok(db, &st_extend, p, err);
    free(list);
    return rc;
}

static const pg_stmt_t st_release = {
    "comms_release",
    "UPDATE crm_jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1", 1,
    false};

int comms_release(pg_pool_t *db, const char *owner, hd_err_t *err)
{
    const char *p[] = {owner};
    return pg_pool_exec_ok(db, &st_release, p, err);
}

static const pg_stmt_t st_next_due = {
    "comms_next_due",
    /* NULL when nothing is waiting (greatest(0, NULL) would say "now" and
     * an idle worker would spin) */
    "SELECT extract(epoch from (min(due_at) - now())) FROM crm_jobs "
    "WHERE kind IN ('send', 'no_receipt', 'receipt', 'alert') "
    "AND (lease_expires_at IS NULL OR lease_expires_at < now())",
    0, false};

double comms_next_due(pg_pool_t *db, double max_s, hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 5000, err);
    if (c == NULL)
        return max_s;
    PGresult *r = pg_exec(c, &st_next_due, NULL, err);
    pg_pool_put(db, c);
    double v = max_s;
    if (r && !PQgetisnull(r, 0, 0))
        v = atof(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (v < 0)
        v = 0;
    return v < max_s ? v : max_s;
}

static const pg_stmt_t st_depth = {
    "comms_depth",
    "SELECT count(*) FILTER (WHERE lease_owner IS NULL AND due_at <= now()), "
    "count(*) FILTER (WHERE lease_owner IS NULL AND due_at > now()), "
    "count(*) FILTER (WHERE lease_owner IS NOT NULL), "
    "COALESCE(EXTRACT(EPOCH FROM now() - min(due_at) FILTER (WHERE lease_owner IS NULL AND "
    "due_at <= now())), 0) FROM crm_jobs",
    0, false};

int comms_queue_depth(pg_pool_t *db, long *due, long *scheduled, long *leased, double *oldest_due_s,
                      hd_err_t *err)
{
    pg_conn_t *c = pg_pool_get(db, 1000, err);
    if (c == NULL)
        return -1;
    PGresult *r = pg_exec(c, &st_depth, NULL, err);
    pg_pool_put(db, c);
    if (r == NULL)
        return -1;
    *due = atol(PQgetvalue(r, 0, 0));
    *scheduled = atol(PQgetvalue(r, 0, 1));
    *leased = atol(PQgetvalue(r, 0, 2));
    if (oldest_due_s)
        *oldest_due_s = atof(PQgetvalue(r, 0, 3));
    PQclear(r);
    return 0;
}
