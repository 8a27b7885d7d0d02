/*
 * log.h - structured JSON-lines logging to stderr.
 *
 * Each line is one JSON object: {"ts","level","msg", ...fields}. Fields are
 * given as key/value string pairs and are JSON-escaped here, so callers never
 * build JSON by hand. Secrets and full addresses must never be passed in.
 * A line is written with a single write(2), so lines from threads never mix.
 */
#ifndef HERALD_BASE_LOG_H
#define HERALD_BASE_LOG_H

#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_CRIT } log_level_t;

/* Sets the minimum level written (default LOG_INFO). */
void log_set_level(log_level_t level);

/* Parses "debug|info|warn|error|crit"; -1 when unknown. */
int log_level_parse(const char *s, log_level_t *out);

/* Writes one line. The variadic part is a NULL-terminated list of
 * (const char *key, const char *value) pairs; a NULL value is skipped. */
void log_write(log_level_t level, const char *msg, ...);

/* Like log_write, with fields already encoded as a JSON object body
 * (`"k":"v","n":1`, no braces) - used by the access log for numbers. */
void log_write_raw(log_level_t level, const char *msg, const char *json_fields);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__, (const char *)NULL)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__, (const char *)NULL)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__, (const char *)NULL)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__, (const char *)NULL)
#define log_crit(...)  log_write(LOG_CRIT, __VA_ARGS__, (const char *)NULL)

#endif
