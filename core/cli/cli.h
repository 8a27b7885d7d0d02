/*
 * cli.h - the `herald` sub-commands and what they share: option parsing
 * conventions (one-line error, exit 2) and configuration loading.
 */
#ifndef HERALD_CLI_CLI_H
#define HERALD_CLI_CLI_H

#include "base/config.h"

#include <getopt.h>
#include <stdbool.h>

/* Exit codes: 0 ok, 1 the command failed, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_token(int argc, char **argv);
/* `herald token revoke` (cmd_token.c); argv[0] is "revoke". */
int cmd_token_revoke(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_types(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_deliver(int argc, char **argv);
int cmd_rekey(int argc, char **argv);
int cmd_whatif(int argc, char **argv);

/* The stored encrypted values counted by key id (cmd_rekey.c), printed for
 * `herald check`; returns the number of problems: keys the keyring lacks. */
int cli_check_keys(const cfg_t *cfg);

/* The keyring serve builds (the current key and the old ones), and a
 * one-connection pool to cfg's database (cli_db.c); NULL with a message
 * printed, naming cmd. */
struct fe_keyring;
struct pg_pool;
struct fe_keyring *cli_keyring(const cfg_t *cfg, const char *cmd);
struct pg_pool *cli_pool(const cfg_t *cfg, const char *cmd);

/* The policy runtime as the engine would build it from cfg (cmd_policy.c). */
struct lrt;
struct lrt *cli_policy(const cfg_t *cfg, hd_err_t *err);
/* The same, with herald.limit answered by limit (lua/state.h). */
struct lrt *cli_policy_hooked(const cfg_t *cfg,
                              int (*limit)(void *, const char *, double, double, int, double *),
                              void *limit_arg, hd_err_t *err);
/* Loads scripts and templates and renders every example context on every
 * channel, printing each problem; returns the number of problems. */
int cli_check_policy(const cfg_t *cfg);
/* Every declared message type's example (types.list): {type: context}. */
struct cJSON *cli_examples(struct lrt *rt, hd_err_t *err);

/* Prints "herald <cmd>: <message> (see herald <cmd> --help)" and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long wrapper: returns the option, -1 at the end, or '?' after
 * printing the one-line error for an unknown flag or a missing value. */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Parses a whole decimal number in [min, max]; -1 when s is not one. */
int cli_parse_long(const char *s, long min, long max, long *out);

/* Reads HERALD_JWT_SECRET, HERALD_ENCRYPTION_KEY, HERALD_ENCRYPTION_OLD_KEYS
 * (comma-separated), HERALD_BLIND_INDEX_KEY and the provider secrets from the
 * environment into cfg (secrets.c). An absent JWT secret or encryption key
 * is read from (or generated into) var_dir/dev-keys/ when allow_dev_keys is
 * set, with a loud warning; otherwise it is an error. */
int cli_load_secrets(cfg_t *cfg, hd_err_t *err);

/* Validates the secrets as cli_load_secrets does, without generating or
 * writing development keys (values generated later are not checked). */
int cli_check_secrets(cfg_t *cfg, hd_err_t *err);

/* Loads the config (and, when secrets is set, the secrets), applies its log
 * level and prints any error as "herald: <message>". */
int cli_load_config(const char *path_flag, cfg_t *cfg, bool secrets);

#endif
