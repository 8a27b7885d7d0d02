/*
 * cmd_policy.c - the commands an operator uses on scripts and templates:
 *   herald check    config, scripts, templates, every example rendered
 *   herald render   what one message would look like on one channel
 *   herald console  a Lua REPL in the scripts' sandbox, with helpers
 * Uses lua/runtime for the same sandboxed states the engine runs.
 */
#include "base/buf.h"
#include "base/locale.h"
#include "base/log.h"
#include "cli/cli.h"
#include "engine/policy.h"
#include "lua/convert.h"
#include "lua/runtime.h"
#include "lua/state.h"

#include <editline/readline.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const channels[] = {"email", "sms", "whatsapp"};

lrt_t *cli_policy_hooked(const cfg_t *cfg,
                         int (*limit)(void *, const char *, double, double, int, double *),
                         void *limit_arg, hd_err_t *err)
{
    lrt_opts_t lo = {
        .scripts_dir = cfg->scripts_dir,
        .templates_dir = cfg->templates_dir,
        .limits = {.instruction_limit = cfg->lua_instruction_limit,
                   .memory_limit = (size_t)cfg->lua_memory_limit_mb << 20,
                   .deadline_ms = cfg->lua_load_ms,
                   .pattern_max = (size_t)cfg->lua_pattern_max_bytes,
                   .retry_scale = cfg->retry_scale,
                   .default_timezone = cfg->default_timezone,
                   .public_url = cfg->public_url,
                   .limit = limit,
                   .limit_arg = limit_arg},
        .decision_ms = cfg->lua_decision_ms,
        .render_ms = cfg->lua_render_ms,
    };
    return lrt_new(&lo, err);
}

lrt_t *cli_policy(const cfg_t *cfg, hd_err_t *err)
{
    return cli_policy_hooked(cfg, NULL, NULL, err);
}

static cJSON *read_json_file(const char *path, hd_err_t *err)
{
    buf_t b;
    buf_init(&b);
    if (buf_read_file(&b, path) != 0) {
        buf_free(&b);
        hd_err_set(err, "%s: cannot read", path);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(b.data ? b.data : "", b.len, &end, false);
    if (j == NULL || !cJSON_IsObject(j)) {
        hd_err_set(err, "%s: %s at byte %zu", path, j ? "expected a JSON object" : "malformed JSON",
                   end && b.data ? (size_t)(end - b.data) : 0);
        cJSON_Delete(j);
        j = NULL;
    }
    buf_free(&b);
    return j;
}

/* Renders one message for a client of locale (NULL: none given); on
 * success *out is the content object. */
static int render(lrt_t *rt, const char *type, const char *channel, const cJSON *ctx,
                  const char *locale, cJSON **out, hd_err_t *err)
{
    *out = NULL;
    tr_channel_t ch;
    if (tr_channel_parse(channel, &ch) != 0)
        return hd_err_set(err, "%s: not a channel (email, sms or whatsapp)", channel);
    policy_content_t c;
    if (policy_render(rt, type, ch, ctx, locale, &c, err) != 0)
        return -1;
    *out = c.doc;
    c.doc = NULL;
    policy_content_free(&c);
    return 0;
}

/* Every declared type's example (types.list), by name: {type: context}.
 * NULL and err when the scripts cannot say. Caller frees. */
cJSON *cli_examples(lrt_t *rt, hd_err_t *err)
{
    cJSON *list = NULL;
    if (policy_types(rt, &list, err) != 0)
        return NULL;
    cJSON *all = cJSON_CreateObject();
    const cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(t, "example");
        if (cJSON_IsString(name))
            cJSON_AddItemToObject(all, name->valuestring,
                                  cJSON_IsObject(ex) ? cJSON_Duplicate(ex, true)
                                                     : cJSON_CreateObject());
    }
    cJSON_Delete(list);
    return all;
}

/* With HERALD_ENV=production, the company identity every footer names
 * must be the operator's own, not the shipped placeholder (CAN-SPAM asks
 * for a valid postal address). The rule is content.identity's. */
static int check_identity(lrt_t *rt)
{
    const char *env = getenv("HERALD_ENV");
    if (env == NULL || strcmp(env, "production") != 0)
        return 0;
    hd_err_t err;
    cJSON *list = NULL;
    if (policy_identity(rt, &list, &err) != 0) {
        fprintf(stderr, "herald: HERALD_ENV=production: %s\n", err.msg);
        return 1;
    }
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, list)
    {
        fprintf(stderr, "herald: HERALD_ENV=production: %s\n",
                cJSON_IsString(p) ? p->valuestring : "content.identity: a problem that is no text");
        n++;
    }
    cJSON_Delete(list);
    return n;
}

/* Renders every example on every channel in one locale; a render written
 * in another locale than asked is a problem too (the locale's templates
 * would never be used). Prints each problem; returns how many. */
static int check_locale(lrt_t *rt, const cJSON *examples, const char *locale, int *rendered)
{
    int problems = 0;
    const cJSON *ctx;
    cJSON_ArrayForEach(ctx, examples)
    {
        for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++) {
            cJSON *out = NULL;
            hd_err_t err;
            if (render(rt, ctx->string, channels[i], ctx, locale, &out, &err) != 0) {
                fprintf(stderr,
                        "herald: %s on %s in locale %s with its example (scripts/types.lua): %s\n",
                        ctx->string, channels[i], locale, err.msg);
                problems++;
            } else {
                const cJSON *got = cJSON_GetObjectItemCaseSensitive(out, "locale");
                if (cJSON_IsString(got) && strcmp(got->valuestring, locale) != 0) {
                    const cJSON *why = cJSON_GetObjectItemCaseSensitive(out, "locale_fallback");
                    fprintf(stderr, "herald: %s on %s in locale %s is written in %s: %s\n",
                            ctx->string, channels[i], locale, got->valuestring,
                            cJSON_IsString(why) ? why->valuestring : "content.render chose it");
                    problems++;
                } else {
                    (*rendered)++;
                }
            }
            cJSON_Delete(out);
        }
    }
    return problems;
}

/* The policy part of `herald check`: the scripts and templates load (the
 * runtime validates both, and content.compile_all checks every template of
 * every locale against its type's declaration and refuses an incomplete
 * locale) and every declared type's example renders on every channel in
 * every locale. Prints each problem; returns how many. */
int cli_check_policy(const cfg_t *cfg)
{
    hd_err_t err;
    /* Each problem is printed once, below; the log would repeat it. */
    log_set_level(LOG_CRIT);
    lrt_t *rt = cli_policy(cfg, &err);
    if (rt == NULL) {
        fprintf(stderr, "herald: %s\n", err.msg);
        return 1;
    }
    int problems = 0, rendered = 0, nlocales = 0;
    cJSON *examples = cli_examples(rt, &err);
    if (examples == NULL) {
        fprintf(stderr, "herald: %s\n", err.msg);
        problems++;
    }
    cJSON *locales = NULL;
    if (policy_locales(rt, &locales, &err) != 0) {
        fprintf(stderr, "herald: %s\n", err.msg);
        problems++;
    }
    const cJSON *loc;
    cJSON_ArrayForEach(loc, locales)
    {
        problems += check_locale(rt, examples, loc->valuestring, &rendered);
        nlocales++;
    }
    cJSON_Delete(locales);
    cJSON_Delete(examples);
    problems += check_identity(rt);
    lrt_status_t st;
    lrt_status(rt, &st);
    if (problems == 0)
        printf("policy: ok (%d scripts, %d templates, %d locales, %d example renders)\n",
               st.nscripts, st.ntemplates, nlocales, rendered);
    lrt_free(rt);
    return problems;
}

static void print_content(const char *channel, const cJSON *out)
{
    const cJSON *v;
    if (strcmp(channel, "email") == 0) {
        v = cJSON_GetObjectItemCaseSensitive(out, "subject");
        printf("Subject: %s\n\n", cJSON_IsString(v) ? v->valuestring : "");
        v = cJSON_GetObjectItemCaseSensitive(out, "text");
        printf("----- text/plain -----\n%s\n", cJSON_IsString(v) ? v->valuestring : "");
        v = cJSON_GetObjectItemCaseSensitive(out, "html");
        printf("----- text/html -----\n%s\n", cJSON_IsString(v) ? v->valuestring : "");
        return;
    }
    v = cJSON_GetObjectItemCaseSensitive(out, "text");
    printf("%s\n", cJSON_IsString(v) ? v->valuestring : "");
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(out, "encoding");
    const cJSON *seg = cJSON_GetObjectItemCaseSensitive(out, "segments");
    if (cJSON_IsString(enc) && cJSON_IsNumber(seg))
        printf("----- %s, %d segment%s -----\n", enc->valuestring, seg->valueint,
               seg->valueint == 1 ? "" : "s");
}

int cmd_render(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"channel", required_argument, NULL, 'C'},
                                         {"context", required_argument, NULL, 'x'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"locale", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *channel = "email", *context = NULL, *locale = NULL;
    bool json = false;
    int o;
    optind = 1;
    while ((o = cli_getopt("render", argc, argv, "c:C:x:l:jh", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            if (!locale_tag_ok(optarg))
                return cli_usage_error("render",
                                       "--locale: expected a locale tag like fr, fr-CA or pt_BR, "
                                       "got \"%.40s\"",
                                       optarg);
            locale = optarg;
            break;
        case 'C':
            if (strcmp(optarg, "email") && strcmp(optarg, "sms") && strcmp(optarg, "whatsapp"))
                return cli_usage_error("render",
                                       "--channel: expected email, sms or whatsapp, "
                                       "got \"%s\"",
                                       optarg);
            channel = optarg;
            break;
        case 'x':
            context = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            printf("usage: herald render MESSAGE_TYPE [--channel email|sms|whatsapp]\n"
                   "                     [--locale TAG] [--context FILE.json] [--json]\n"
                   "                     [--config FILE]\n\n"
                   "Prints what would be sent: the subject, text and HTML of an email, or the\n"
                   "text of an SMS (with its encoding and segment count) or WhatsApp message.\n"
                   "The context defaults to the type's example in scripts/types.lua.\n"
                   "--locale renders it for a client of that locale (fr, fr-CA): the locale\n"
                   "it is written in, and why when that is not the client's, go to stderr.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("render", "expected exactly one MESSAGE_TYPE");
    const char *type = argv[optind];
    hd_err_t err;
    cJSON *ctx = NULL;
    if (context != NULL && (ctx = read_json_file(context, &err)) == NULL) {
        fprintf(stderr, "herald render: %s\n", err.msg);
        return CLI_FAIL;
    }
    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0) {
        cJSON_Delete(ctx);
        return CLI_FAIL;
    }
    log_set_level(LOG_WARN); /* stdout is the message; keep "policy loaded" out */
    int rc = CLI_FAIL;
    lrt_t *rt = cli_policy(&cfg, &err);
    cJSON *out = NULL;
    if (rt != NULL && ctx == NULL) {
        cJSON *examples = cli_examples(rt, &err);
        ctx = cJSON_DetachItemFromObjectCaseSensitive(examples, type);
        cJSON_Delete(examples);
        if (ctx == NULL && examples != NULL)
            hd_err_set(&err, "%s: not a message type declared in scripts/types.lua", type);
    }
    if (rt == NULL || ctx == NULL) {
        fprintf(stderr, "herald render: %s\n", err.msg);
    } else if (render(rt, type, channel, ctx, locale, &out, &err) != 0) {
        fprintf(stderr, "herald render: %s\n", err.msg);
    } else {
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(out, "locale");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(out, "locale_fallback");
        if (locale && cJSON_IsString(got))
            fprintf(stderr, "herald render: locale %s%s%s\n", got->valuestring,
                    cJSON_IsString(why) ? ": " : "", cJSON_IsString(why) ? why->valuestring : "");
        if (json) {
            char *s = cJSON_Print(out);
            printf("%s\n", s);
            free(s);
        } else {
            print_content(channel, out);
        }
        rc = CLI_OK;
    }
    cJSON_Delete(out);
    cJSON_Delete(ctx);
    lrt_free(rt);
    cfg_free(&cfg);
    return rc;
}

/* The required fields of a JSON Schema object, "a, b, c". */
static void required_of(const cJSON *schema, buf_t *b)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(schema, "required"))
        buf_printf(b, "%s%s", b->len ? ", " : "", cJSON_IsString(r) ? r->valuestring : "?");
}

int cmd_types(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    bool json = false;
    int o;
    optind = 1;
    while ((o = cli_getopt("types", argc, argv, "c:jh", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            printf("usage: herald types [--json] [--config FILE]\n\n"
                   "Lists the message types scripts/types.lua declares, with the fields each\n"
                   "one's context requires. --json prints what GET /api/crm/message-types\n"
                   "answers: every type with its JSON Schema (draft 2020-12) and example.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_usage_error("types", "takes no arguments");
    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0)
        return CLI_FAIL;
    log_set_level(LOG_WARN);
    hd_err_t err;
    int rc = CLI_FAIL;
    cJSON *list = NULL;
    lrt_t *rt = cli_policy(&cfg, &err);
    if (rt == NULL || policy_types(rt, &list, &err) != 0) {
        fprintf(stderr, "herald types: %s\n", err.msg);
    } else if (json) {
        char *s = cJSON_Print(list);
        printf("%s\n", s);
        free(s);
        rc = CLI_OK;
    } else {
        const cJSON *t;
        cJSON_ArrayForEach(t, list)
        {
            buf_t b;
            buf_init(&b);
            required_of(cJSON_GetObjectItemCaseSensitive(t, "schema"), &b);
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
            printf("%-24s requires %s\n", cJSON_IsString(n) ? n->valuestring : "?",
                   b.len ? b.data : "nothing");
            buf_free(&b);
        }
        rc = CLI_OK;
    }
    cJSON_Delete(list);
    lrt_free(rt);
    cfg_free(&cfg);
    return rc;
}
