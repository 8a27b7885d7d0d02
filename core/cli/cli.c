/* cli.c - shared helpers of the sub-commands (see cli.h). */
#include "cli/cli.h"
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "herald %s: %s (see herald %s --help)\n", cmd, msg, cmd);
    return CLI_USAGE;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char spec[64];
    /* Leading ':' so a missing value is reported as ':' not '?'. */
    snprintf(spec, sizeof(spec), ":%s", shortopts);
    opterr = 0;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == '?') {
        if (optopt)
            cli_usage_error(cmd, "unknown flag -%c", optopt);
        else
            cli_usage_error(cmd, "unknown flag %s", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        cli_usage_error(cmd, "flag %s needs a value", argv[optind - 1]);
        return '?';
    }
    return c;
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_load_config(const char *path_flag, cfg_t *cfg, bool secrets)
{
    hd_err_t err;
    if (cfg_load(cfg_default_path(path_flag), cfg, &err) != 0) {
        fprintf(stderr, "herald: %s\n", err.msg);
        return -1;
    }
    log_level_t lv;
    if (log_level_parse(cfg->log_level, &lv) == 0)
        log_set_level(lv);
    if (secrets && cli_load_secrets(cfg, &err) != 0) {
        fprintf(stderr, "herald: %s\n", err.msg);
        cfg_free(cfg);
        return -1;
    }
    return 0;
}
