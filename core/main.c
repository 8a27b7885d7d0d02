/* main.c - command-line dispatch only; each command lives in core/cli/. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "run the HTTP API and the engine"},
    {"migrate", cmd_migrate, "apply pending database migrations"},
    {"check", cmd_check, "load config, scripts and templates; render every example"},
    {"render", cmd_render, "print what a message would look like on a channel"},
    {"types", cmd_types, "list the message types and what each one's context holds"},
    {"console", cmd_console, "a Lua prompt in the policy sandbox"},
    {"deliver", cmd_deliver, "send JSON-line messages through the configured drivers"},
    {"token", cmd_token, "mint an access token (operator tool)"},
    {"apikey", cmd_apikey, "create, list or revoke API keys"},
    {"rekey", cmd_rekey, "re-encrypt stored personal data under the current key"},
    {"whatif", cmd_whatif, "replay stored requests through edited scripts, side by side"},
    {"version", NULL, "print the version"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: herald <command> [flags]\n\n"
                 "Herald carries a business's conversations with its clients over email, SMS\n"
                 "and WhatsApp.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`herald <command> --help` describes each one. The configuration is\n"
                 "config.lua unless --config FILE or HERALD_CONFIG names another.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        if (argc > 2 && strcmp(argv[2], "--help") == 0) {
            printf("usage: herald version\n\nPrints the version of this binary.\n");
            return CLI_OK;
        }
        if (argc > 2)
            return cli_usage_error("version", "unexpected argument %s", argv[2]);
        printf("herald %s\n", HERALD_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].run && strcmp(commands[i].name, name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "herald: unknown command %s (see herald --help)\n", name);
    return CLI_USAGE;
}
