/*
 * cmd_deliver.c - `herald deliver`: sends messages given as JSON lines on
 * stdin through the configured drivers, all concurrently, and prints one
 * JSON line per outcome, classified by the policy's classify script. An
 * operator's check that a provider account works, and the transport
 * benchmark's driver (--stats).
 */
#include "base/buf.h"
#include "base/log.h"
#include "cli/cli.h"
#include "crypto/codec.h"
#include "crypto/hash.h"
#include "engine/policy.h"
#include "lua/runtime.h"
#include "transport/settings.h"
#include "transport/transport.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct outcome {
    tr_message_t *msg;
    tr_result_t res;
    struct outcome *next;
} outcome_t;

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    outcome_t *head, *tail;
} sink_t;

/* Runs on the transport thread: queue the outcome for the main thread,
 * which owns the Lua state that classifies it. */
static void on_done(void *ctx, tr_message_t *msg, const tr_result_t *res)
{
    sink_t *s = ctx;
    outcome_t *o = xcalloc(1, sizeof(*o));
    o->msg = msg;
    o->res = *res;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = o;
    else
        s->head = o;
    s->tail = o;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static char *dup_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
}

/* One input line into a message; NULL with err naming the field. */
static tr_message_t *parse_message(const char *line, size_t len, hd_err_t *err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(line, len, &end, false);
    if (j == NULL || !cJSON_IsObject(j)) {
        hd_err_set(err, "%s", j ? "expected a JSON object" : "malformed JSON");
        cJSON_Delete(j);
        return NULL;
    }
    tr_message_t *m = tr_message_new();
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "channel");
    if (!cJSON_IsString(ch) || tr_channel_parse(ch->valuestring, &m->channel) != 0) {
        hd_err_set(err, "channel: expected email, sms or whatsapp");
        goto fail;
    }
    m->to = dup_str(j, "to");
    if (m->to == NULL) {
        hd_err_set(err, "to: expected an address or phone number");
        goto fail;
    }
    m->comm_id = dup_str(j, "comm_id");
    if (m->comm_id == NULL)
        m->comm_id = hash_uuid4();
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "attempt");
    m->attempt = cJSON_IsNumber(at) ? at->valueint : 1;
    m->to_name = dup_str(j, "to_name");
    m->subject = dup_str(j, "subject");
    m->text = dup_str(j, "text");
    m->html = dup_str(j, "html");
    m->unsubscribe_url = dup_str(j, "unsubscribe_url");
    m->traceparent = dup_str(j, "traceparent");
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(j, "attachments");
    if (cJSON_IsArray(atts) && cJSON_GetArraySize(atts) > 0) {
        m->attachments = xcalloc((size_t)cJSON_GetArraySize(atts), sizeof(tr_attachment_t));
        const cJSON *a;
        cJSON_ArrayForEach(a, atts)
        {
            tr_attachment_t *t = &m->attachments[m->nattachments++];
            t->filename = dup_str(a, "filename");
            t->content_type = dup_str(a, "content_type");
            const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(a, "content_base64");
            if (!cJSON_IsString(b64) ||
                b64_decode(b64->valuestring, strlen(b64->valuestring), &t->data, &t->len) != 0) {
                hd_err_set(err, "attachments[%d].content_base64: expected base64",
                           m->nattachments - 1);
                goto fail;
            }
        }
    }
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(j, "template");
    if (cJSON_IsObject(tpl)) {
        m->wa_template = dup_str(tpl, "name");
        m->wa_language = dup_str(tpl, "language");
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(tpl, "parameters");
        if (cJSON_IsArray(ps) && cJSON_GetArraySize(ps) > 0) {
            m->wa_params = xcalloc((size_t)cJSON_GetArraySize(ps), sizeof(char *));
            const cJSON *p;
            cJSON_ArrayForEach(p, ps)
            {
                m->wa_params[m->nwa_params++] = xstrdup(cJSON_IsString(p) ? p->valuestring : "");
            }
        }
    }
    cJSON_Delete(j);
    return m;
fail:
    cJSON_Delete(j);
    tr_message_free(m);
    return NULL;
}

static void print_outcome(lrt_t *rt, outcome_t *o, long *ok, long *failed)
{
    cJSON *raw = tr_result_to_json(&o->res);
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "comm_id", o->msg->comm_id);
    cJSON_AddStringToObject(line, "channel", tr_channel_name(o->msg->channel));
    cJSON_AddNumberToObject(line, "attempt", o->msg->attempt);
    cJSON_AddBoolToObject(line, "ok", o->res.ok);
    if (o->res.provider_id[0])
        cJSON_AddStringToObject(line, "provider_id", o->res.provider_id);
    if (!o->res.ok && rt != NULL) {
        policy_class_t cls;
        hd_err_t err;
        if (policy_classify(rt, o->msg->channel, &o->res, &cls, &err) == 0) {
            cJSON_AddStringToObject(line, "category", cls.category);
            cJSON_AddBoolToObject(line, "may_have_been_sent", cls.may_have_been_sent);
            cJSON_AddItemToObject(line, "classification", cls.doc);
            cls.doc = NULL;
            policy_class_free(&cls);
        } else {
            cJSON_AddStringToObject(line, "classify_error", err.msg);
        }
    }
    cJSON_AddItemToObject(line, "result", raw);
    char *s = cJSON_PrintUnformatted(line);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(line);
    (o->res.ok ? (*ok)++ : (*failed)++);
}

int cmd_deliver(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"no-classify", no_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'},        {"stats", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    bool classify = true, quiet = false, stats = false;
    int o;
    optind = 1;
    while ((o = cli_getopt("deliver", argc, argv, "c:nqsh", opts)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            classify = false;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            stats = true;
            break;
        case 'h':
            printf("usage: herald deliver [--config FILE] [--no-classify] [--quiet] [--stats]\n\n"
                   "Sends the messages given as JSON lines on stdin through the configured\n"
                   "drivers (channels.* in config.lua), all concurrently, and prints one JSON\n"
                   "line per outcome with the provider's answer and its classification.\n"
                   "A line: {\"channel\":\"email\",\"to\":\"a@b.example\",\"subject\":\"Hi\",\n"
                   "  \"text\":\"...\",\"html\":\"...\",\"comm_id\":\"...\",\"attachments\":\n"
                   "  [{\"filename\",\"content_type\",\"content_base64\"}]}\n"
                   "or {\"channel\":\"sms\",\"to\":\"+14155550100\",\"text\":\"...\"}\n"
                   "(WhatsApp may give \"template\":{\"name\",\"language\",\"parameters\":[]}).\n\n"
                   "  --no-classify  skip the classify script\n"
                   "  --quiet        print no outcome lines\n"
                   "  --stats        print messages/s, CPU and memory on stderr at the end\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("deliver", "unexpected argument %s", argv[optind]);
    cfg_t cfg;
    if (cli_load_config(config, &cfg, false) != 0)
        return CLI_FAIL;
    hd_err_t err;
    /* Provider secrets only: deliver signs no token and decrypts nothing, so
     * it neither needs nor generates the development keys. */
    if (cli_check_secrets(&cfg, &err) != 0) {
        fprintf(stderr, "herald deliver: %s\n", err.msg);
        cfg_free(&cfg);
        return CLI_FAIL;
    }
    log_set_level(LOG_ERROR);
    lrt_t *rt = classify ? cli_policy(&cfg, &err) : NULL;
    if (classify && rt == NULL) {
        fprintf(stderr, "herald deliver: %s\n", err.msg);
        cfg_free(&cfg);
        return CLI_FAIL;
    }
    tr_config_t tc;
    tr_config_from(&cfg, &tc);
    tr_engine_t *t = tr_new(&tc, &err);
    if (t == NULL) {
        fprintf(stderr, "herald deliver: %s\n", err.msg);
        lrt_free(rt);
        cfg_free(&cfg);
        return CLI_FAIL;
    }
    sink_t sink = {.head = NULL, .tail = NULL};
    pthread_mutex_init(&sink.mu, NULL);
    pthread_cond_init(&sink.cv, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long submitted = 0, bad = 0, ok = 0, failed = 0, lineno = 0;
    buf_t line;
    buf_init(&line);
    int c;
    bool eof = false;
    while (!eof) {
        buf_reset(&line);
        while ((c = getchar()) != EOF && c != '\n')
            buf_putc(&line, (char)c);
        eof = c == EOF;
        lineno++;
        if (line.len == 0)
            continue;
        tr_message_t *m = parse_message(line.data, line.len, &err);
        if (m == NULL) {
            fprintf(stderr, "herald deliver: line %ld: %s\n", lineno, err.msg);
            bad++;
            continue;
        }
        tr_send(t, m, on_done, &sink);
        submitted++;
    }
    buf_free(&line);
    for (long done = 0; done < submitted;) {
        pthread_mutex_lock(&sink.mu);
        while (sink.head == NULL)
            pthread_cond_wait(&sink.cv, &sink.mu);
        outcome_t *list = sink.head;
        sink.head = sink.tail = NULL;
        pthread_mutex_unlock(&sink.mu);
        while (list) {
            outcome_t *n = list->next;
            if (quiet)
                (list->res.ok ? ok++ : failed++);
            else
                print_outcome(rt, list, &ok, &failed);
            tr_message_free(list->msg);
            free(list);
            list = n;
            done++;
        }
        fflush(stdout); /* a reader sees each outcome as it happens */
    }
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tr_free(t);
    if (stats) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        fprintf(stderr,
                "deliver: %ld messages (%ld ok, %ld failed) in %.3f s = %.0f msgs/s; "
                "cpu %.3f s = %.3f s per 1000; peak rss %ld KiB\n",
                submitted, ok, failed, secs, secs > 0 ? (double)submitted / secs : 0, cpu,
                submitted ? cpu * 1000.0 / (double)submitted : 0, ru.ru_maxrss);
    }
    pthread_mutex_destroy(&sink.mu);
    pthread_cond_destroy(&sink.cv);
    lrt_free(rt);
    cfg_free(&cfg);
    return bad ? CLI_FAIL : CLI_OK;
}
