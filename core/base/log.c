/* log.c - JSON-lines logger (see log.h). Uses buf for line assembly. */
#include "base/log.h"
#include "base/buf.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error", "crit"};

void log_set_level(log_level_t level)
{
    atomic_store(&min_level, (int)level);
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (int i = 0; i <= LOG_CRIT; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

static void begin(buf_t *b, log_level_t level, const char *msg)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"", ts,
               (long)(tv.tv_usec / 1000), names[level]);
    buf_json_escape(b, msg);
    buf_putc(b, '"');
}

static void finish(buf_t *b)
{
    buf_puts(b, "}\n");
    /* One write per line: lines of concurrent threads never interleave. */
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(STDERR_FILENO, b->data + off, b->len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    buf_free(b);
}

void log_write(log_level_t level, const char *msg, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    buf_t b;
    buf_init(&b);
    begin(&b, level, msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        if (v == NULL)
            continue;
        buf_puts(&b, ",\"");
        buf_json_escape(&b, k);
        buf_puts(&b, "\":\"");
        buf_json_escape(&b, v);
        buf_putc(&b, '"');
    }
    va_end(ap);
    finish(&b);
}

void log_write_raw(log_level_t level, const char *msg, const char *json_fields)
{
    if ((int)level < atomic_load(&min_level))
        return;
    buf_t b;
    buf_init(&b);
    begin(&b, level, msg);
    if (json_fields && *json_fields) {
        buf_putc(&b, ',');
        buf_puts(&b, json_fields);
    }
    finish(&b);
}
