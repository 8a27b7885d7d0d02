/* process.c - this process's CPU, memory and descriptors from /proc/self
 * (see process.h). Uses base/buf. */
#include "obs/process.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The whole of a small /proc file into buf (NUL-terminated); bytes read or -1. */
static long read_small(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

/* Seconds since the epoch at boot ("btime" of /proc/stat), or -1. */
static double boot_time(void)
{
    char buf[8192];
    if (read_small("/proc/stat", buf, sizeof(buf)) < 0)
        return -1;
    const char *p = strstr(buf, "\nbtime ");
    return p ? strtod(p + 7, NULL) : -1;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the descriptor opendir itself holds */
}

int proc_sample(proc_sample_t *out)
{
    memset(out, 0, sizeof(*out));
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof(buf)) < 0)
        return -1;
    /* "pid (comm) state ...": comm may hold spaces and parentheses, so the
     * fields are counted from the last ')'. Field 3 is the state. */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0, threads = 0;
    int got = sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u " /* fields 3-13 */
                     "%llu %llu %*d %*d %*d %*d %lld %*d %llu %llu %lld",
                     &utime, &stime, &threads, &start, &vsize, &rss);
    if (got != 6)
        return -1;
    double hz = (double)sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (hz <= 0 || page <= 0)
        return -1;
    out->cpu_seconds = (double)(utime + stime) / hz;
    out->threads = (long)threads;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)rss * (double)page;
    double boot = boot_time();
    out->start_time_s = boot >= 0 ? boot + (double)start / hz : 0;
    out->open_fds = count_fds();
    struct rlimit rl;
    out->max_fds =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : -1;
    return 0;
}

void proc_render(const proc_sample_t *s, buf_t *out)
{
    buf_printf(out,
               "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
               "seconds.\n# TYPE process_cpu_seconds_total counter\n"
               "process_cpu_seconds_total %.2f\n"
               "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\n"
               "process_resident_memory_bytes %.0f\n"
               "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
               "# TYPE process_virtual_memory_bytes gauge\n"
               "process_virtual_memory_bytes %.0f\n"
               "# HELP process_start_time_seconds Start time of the process since unix epoch "
               "in seconds.\n# TYPE process_start_time_seconds gauge\n"
               "process_start_time_seconds %.2f\n"
               "# HELP process_threads Threads of the process.\n"
               "# TYPE process_threads gauge\nprocess_threads %ld\n",
               s->cpu_seconds, s->resident_bytes, s->virtual_bytes, s->start_time_s, s->threads);
    if (s->open_fds >= 0)
        buf_printf(out,
                   "# HELP process_open_fds Number of open file descriptors.\n"
                   "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                   s->open_fds);
    if (s->max_fds >= 0)
        buf_printf(out,
                   "# HELP process_max_fds Maximum number of open file descriptors.\n"
                   "# TYPE process_max_fds gauge\nprocess_max_fds %ld\n",
                   s->max_fds);
}
