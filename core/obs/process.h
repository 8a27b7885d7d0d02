/*
 * process.h - this process as the operating system sees it (CPU time,
 * memory, file descriptors, threads), read from /proc/self on Linux, for
 * /metrics (the standard process_* names every Prometheus client exports)
 * and the admin view of /api/crm/health. Uses base/buf only.
 */
#ifndef HERALD_OBS_PROCESS_H
#define HERALD_OBS_PROCESS_H

#include "base/buf.h"

typedef struct proc_sample {
    double cpu_seconds;    /* user + system CPU time */
    double resident_bytes; /* resident set size */
    double virtual_bytes;  /* address space */
    double start_time_s;   /* Unix seconds when the process started */
    long open_fds;         /* entries in /proc/self/fd */
    long max_fds;          /* the soft RLIMIT_NOFILE */
    long threads;          /* threads of the process */
} proc_sample_t;

/* Reads the process's figures. Returns 0, or -1 when /proc/self cannot be
 * read (not Linux, /proc not mounted): *out is then zeroed. */
int proc_sample(proc_sample_t *out);

/* Appends the process_* series (text format 0.0.4) for s to out. */
void proc_render(const proc_sample_t *s, buf_t *out);

#endif
