/*
 * err.h - the error out-parameter used across Herald.
 *
 * Functions that can fail return 0 / -1 and, when given an hd_err_t, leave a
 * one-line human reason in it. The buffer is fixed so filling it never fails.
 */
#ifndef HERALD_BASE_ERR_H
#define HERALD_BASE_ERR_H

#include <stdarg.h>

typedef struct hd_err {
    char msg[512];
} hd_err_t;

/* Writes a printf-style message into err (no-op when err is NULL). Returns -1
 * so callers can write `return hd_err_set(err, "...")`. */
int hd_err_set(hd_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the existing message with "prefix: " (no-op when err is NULL). */
int hd_err_prefix(hd_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
