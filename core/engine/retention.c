/* retention.c - see retention.h. */
#include "engine/retention.h"
#include "base/log.h"
#include "store/repo_retention.h"

#include <stdio.h>
#include <unistd.h>

typedef int (*batch_fn)(pg_pool_t *, int, int, int *, bool *, hd_err_t *);

static void purge(app_t *app, const char *what, batch_fn fn, int days, bool (*stop)(void *),
                  void *arg)
{
    const cfg_t *cfg = app->cfg;
    long total = 0;
    int batches = 0;
    for (;;) {
        int n = 0;
        bool skipped = false;
        hd_err_t err;
        if (fn(app->db, days, cfg->retention_batch, &n, &skipped, &err) != 0) {
            log_warn("retention: cannot delete a batch; the next run goes on", "what", what,
                     "reason", err.msg);
            break;
        }
        if (skipped) /* another process is deleting */
            break;
        total += n;
        batches++;
        if (n < cfg->retention_batch || stop(arg))
            break;
        if (cfg->retention_pause_ms > 0)
            usleep((useconds_t)cfg->retention_pause_ms * 1000u);
    }
    if (total > 0) {
        char t[24], b[16], d[16];
        snprintf(t, sizeof(t), "%ld", total);
        snprintf(b, sizeof(b), "%d", batches);
        snprintf(d, sizeof(d), "%d", days);
        log_info("retention: deleted what is past its period", "what", what, "rows", t, "batches",
                 b, "older_than_days", d);
    }
}

void retention_run(app_t *app, bool (*stop)(void *), void *arg)
{
    const cfg_t *cfg = app->cfg;
    if (cfg->retention_comms_days > 0)
        purge(app, "communications", retention_comms_batch, cfg->retention_comms_days, stop, arg);
    if (cfg->retention_events_days > 0 && !stop(arg))
        purge(app, "events", retention_events_batch, cfg->retention_events_days, stop, arg);
    /* Expired Idempotency-Key records answer nothing: they go whatever the
     * retention periods (0 days: as soon as they expire). */
    if (!stop(arg))
        purge(app, "idempotency keys", retention_idem_batch, 0, stop, arg);
}
