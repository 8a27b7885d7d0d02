/* erase.c - GDPR erasure of one client (see erase.h). */
#include "engine/erase.h"
#include "base/log.h"
#include "cache/prefs_cache.h"

#include <string.h>

int client_erase(app_t *app, const char *client_id, const char *actor, erase_counts_t *out,
                 hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    size_t n = client_id ? strlen(client_id) : 0;
    if (n == 0 || n > 200)
        return ERASE_NOT_FOUND;
    int rc = erase_client(app->db, client_id, actor ? actor : "unknown", out, err);
    /* after the commit: a reader cannot reload the row from the database */
    if (rc == ERASE_OK)
        pcache_forget(app->redis, client_id);
    else if (rc < 0)
        log_error("client erasure failed", "error", err->msg);
    return rc;
}
