/* export.c - a client's data as one streamed JSON document (see export.h). */
#include "engine/export.h"
#include "base/buf.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

struct client_export {
    app_t *app;
    char *client_id;
    export_cursor_t cur;
    buf_t out;  /* produced, not yet read */
    size_t off; /* read so far from out */
    int pages;  /* read from the database */
    long items; /* messages written */
    bool done;  /* the last page was read and the document closed */
};

int client_export_open(app_t *app, const char *client_id, client_export_t **out, hd_err_t *err)
{
    *out = NULL;
    size_t n = client_id ? strlen(client_id) : 0;
    if (n == 0 || n > 200)
        return EXPORT_NOT_FOUND;
    cJSON *head = NULL;
    int rc = export_head(app->db, app->keyring, client_id, &head, err);
    if (rc != EXPORT_OK)
        return rc;
    client_export_t *ex = xcalloc(1, sizeof(*ex));
    ex->app = app;
    ex->client_id = xstrdup(client_id);
    buf_init(&ex->out);
    char *s = cJSON_PrintUnformatted(head);
    cJSON_Delete(head);
    size_t len = strlen(s);
    /* the head is an object with members: drop its "}" and go on */
    buf_append(&ex->out, s, len - 1);
    free(s);
    buf_puts(&ex->out, ",\"communications\":[");
    *out = ex;
    return EXPORT_OK;
}

/* Produces the next page, or the end of the document. */
static int refill(client_export_t *ex)
{
    buf_reset(&ex->out);
    ex->off = 0;
    cJSON *items = NULL;
    hd_err_t err;
    int n = export_page(ex->app->db, ex->app->keyring, ex->client_id, &ex->cur, EXPORT_PAGE, &items,
                        &err);
    if (n < 0) {
        log_error("export failed", "error", err.msg);
        return -1;
    }
    ex->pages++;
    const cJSON *m;
    cJSON_ArrayForEach(m, items)
    {
        char *s = cJSON_PrintUnformatted(m);
        if (ex->items++ > 0)
            buf_putc(&ex->out, ',');
        buf_puts(&ex->out, s);
        free(s);
    }
    cJSON_Delete(items);
    if (n < EXPORT_PAGE) {
        char tail[64];
        snprintf(tail, sizeof(tail), "],\"communications_count\":%ld}", ex->items);
        buf_puts(&ex->out, tail);
        ex->done = true;
    }
    return 0;
}

ssize_t client_export_read(client_export_t *ex, char *buf, size_t max)
{
    while (ex->off >= ex->out.len) {
        if (ex->done)
            return 0;
        if (refill(ex) != 0)
            return -1;
    }
    size_t n = ex->out.len - ex->off;
    if (n > max)
        n = max;
    memcpy(buf, ex->out.data + ex->off, n);
    ex->off += n;
    return (ssize_t)n;
}

void client_export_free(client_export_t *ex)
{
    if (ex == NULL)
        return;
    char pages[16];
    snprintf(pages, sizeof(pages), "%d", ex->pages);
    log_info("client export", "pages", pages);
    buf_free(&ex->out);
    free(ex->client_id);
    free(ex);
}
