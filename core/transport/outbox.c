/*
 * outbox.c - the outbox driver: what would have been sent, as files, so a
 * developer sees it exactly. Email is the same MIME the SMTP driver sends
 * (.eml); SMS and WhatsApp are the request the provider would get (.json).
 * Each file is written to a temporary name, flushed and renamed: a reader
 * (or a process killed mid-write) never sees half a message. A directory
 * that cannot take the file (full, read-only, not a directory) is an "io"
 * failure, not a refusal of the message: the policy retries it.
 */
#include "transport/internal.h"
#include "transport/mime.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* The symbol of the errors a full, read-only or misplaced directory gives;
 * others are "errno <n>". */
static void errno_symbol(int e, char *out, size_t n)
{
    static const struct {
        int e;
        const char *name;
    } known[] = {
        {ENOSPC, "ENOSPC"},
        {EDQUOT, "EDQUOT"},
        {EROFS, "EROFS"},
        {EACCES, "EACCES"},
        {EPERM, "EPERM"},
        {EIO, "EIO"},
        {ENOTDIR, "ENOTDIR"},
        {ENOENT, "ENOENT"},
        {EISDIR, "EISDIR"},
        {EMFILE, "EMFILE"},
        {ENFILE, "ENFILE"},
        {ELOOP, "ELOOP"},
        {ENAMETOOLONG, "ENAMETOOLONG"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].e == e) {
            snprintf(out, n, "%s", known[i].name);
            return;
        }
    snprintf(out, n, "errno %d", e);
}

/* Fills res as a local I/O failure (kind "io", io_error the errno symbol)
 * and logs it: the directory and the error, never the message. Returns 1. */
static int io_failed(tr_result_t *res, const char *dir, const char *what, int e)
{
    memset(res, 0, sizeof(*res));
    res->ok = false;
    snprintf(res->kind, sizeof(res->kind), "io");
    errno_symbol(e, res->io_error, sizeof(res->io_error));
    snprintf(res->text, sizeof(res->text), "outbox: cannot %s in %.400s: %s", what, dir,
             strerror(e));
    res->request_sent = false;
    log_warn("outbox: cannot write a message file; it will be retried", "dir", dir, "op", what,
             "error", strerror(e), "errno", res->io_error);
    return 1;
}

/* A file-name-safe copy of an id: anything but [A-Za-z0-9._-] becomes '_'. */
static void safe_name(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; in && *in && o + 1 < n; in++)
        out[o++] = (((*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') ||
                     (*in >= '0' && *in <= '9')) ||
                    *in == '-' || *in == '_' || *in == '.')
                       ? *in
                       : '_';
    out[o] = '\0';
    if (o == 0)
        snprintf(out, n, "message");
}

static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        tr_result_t *res)
{
    char path[1400], tmp[1500];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.%d.tmp", dir, name, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_failed(res, dir, "create a file", errno);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return io_failed(res, dir, "write a file", e);
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return io_failed(res, dir, "store a file", e);
    }
    res->ok = true;
    snprintf(res->kind, sizeof(res->kind), "local");
    snprintf(res->provider_id, sizeof(res->provider_id), "outbox:%.150s", name);
    snprintf(res->text, sizeof(res->text), "written to %.480s", path);
    res->request_sent = true;
    return 0;
}

int tr_outbox_write(const tr_settings_t *s, const tr_message_t *m, tr_result_t *res)
{
    char dir[1024], id[200], name[300];
    snprintf(dir, sizeof(dir), "%s/%s", s->c.outbox_dir, tr_channel_name(m->channel));
    if (mkdirs(dir) != 0)
        return io_failed(res, dir, "create the directory", errno);
    safe_name(m->comm_id, id, sizeof(id));
    hd_err_t err;
    buf_t b;
    buf_init(&b);
    int rc;
    if (m->channel == TR_EMAIL) {
        rc = tr_build_email(s, m, &b, &err);
        if (rc != 0) {
            buf_free(&b);
            return tr_refuse(res, "message refused before sending: %s", err.msg);
        }
        snprintf(name, sizeof(name), "%s-%d.eml", id, m->attempt);
    } else {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "channel", tr_channel_name(m->channel));
        cJSON_AddStringToObject(doc, "comm_id", m->comm_id ? m->comm_id : "");
        cJSON_AddNumberToObject(doc, "attempt", m->attempt);
        cJSON_AddStringToObject(doc, "to", m->to ? m->to : "");
        if (m->wa_template) {
            cJSON_AddStringToObject(doc, "template", m->wa_template);
            if (m->wa_language)
                cJSON_AddStringToObject(doc, "language", m->wa_language);
            cJSON *comps = m->wa_components ? cJSON_Parse(m->wa_components) : NULL;
            if (comps)
                cJSON_AddItemToObject(doc, "components", comps);
            cJSON *p = cJSON_AddArrayToObject(doc, "parameters");
            for (int i = 0; i < m->nwa_params; i++)
                cJSON_AddItemToArray(p, cJSON_CreateString(m->wa_params[i]));
        }
        cJSON_AddStringToObject(doc, "text", m->text ? m->text : "");
        char *json = cJSON_Print(doc);
        cJSON_Delete(doc);
        buf_puts(&b, json ? json : "{}");
        buf_putc(&b, '\n');
        free(json);
        snprintf(name, sizeof(name), "%s-%d.json", id, m->attempt);
    }
    rc = write_atomic(dir, name, b.data, b.len, res);
    buf_free(&b);
    return rc;
}
