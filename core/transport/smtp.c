/*
 * smtp.c - the SMTP driver: libcurl's smtp:// and smtps:// with STARTTLS
 * off, opportunistic or required, and AUTH. The message bytes come from
 * transport/mime.c. libcurl keeps the connection in the multi handle's cache,
 * so one connection carries many messages (RSET, MAIL FROM again).
 *
 * libcurl hands SMTP reply lines to the header callback; the last one is the
 * final reply, whose code and enhanced status code (RFC 3463) classify the
 * outcome. The debug callback notes which command was sent last, so a
 * failure is known to be at RCPT or at the end of DATA.
 */
#include "transport/internal.h"
#include "transport/mime.h"
#include "base/addr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t on_read(char *dst, size_t size, size_t n, void *arg)
{
    tr_xfer_t *x = arg;
    size_t want = size * n, left = x->body.len - x->body_off;
    if (want > left)
        want = left;
    memcpy(dst, x->body.data + x->body_off, want);
    x->body_off += want;
    return want;
}

/* Reply lines ("250-..." continuation, "550 5.1.1 ..." final). */
static size_t on_reply(char *data, size_t size, size_t n, void *arg)
{
    tr_xfer_t *x = arg;
    size_t len = size * n;
    if (x->quitting) /* "221 Bye" after a refusal must not hide the refusal */
        return len;
    size_t keep = len < sizeof(x->line) - 1 ? len : sizeof(x->line) - 1;
    memcpy(x->line, data, keep);
    x->line[keep] = '\0';
    x->line[strcspn(x->line, "\r\n")] = '\0';
    return len;
}

/* Notes the verb of each command we send: the stage a failure belongs to. */
static int on_debug(CURL *e, curl_infotype type, char *data, size_t size, void *arg)
{
    (void)e;
    tr_xfer_t *x = arg;
    if (type != CURLINFO_HEADER_OUT || size < 4)
        return 0;
    static const struct {
        const char *verb, *stage;
    } verbs[] = {{"EHLO", "connect"}, {"HELO", "connect"}, {"STAR", "connect"}, {"AUTH", "auth"},
                 {"MAIL", "mail"},    {"RCPT", "rcpt"},    {"DATA", "data"}};
    if (strncasecmp(data, "QUIT", 4) == 0) {
        x->quitting = true;
        return 0;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strncasecmp(data, verbs[i].verb, 4) == 0)
            snprintf(x->stage, sizeof(x->stage), "%s", verbs[i].stage);
    return 0;
}

int tr_smtp_prepare(const tr_settings_t *s, tr_xfer_t *x, tr_result_t *res)
{
    const tr_message_t *m = x->msg;
    if (s->c.smtp_url == NULL || *s->c.smtp_url == '\0')
        return tr_refuse(res, "smtp: no server configured (set HERALD_SMTP_URL)");
    hd_err_t err;
    if (addr_check_email(m->to, &err) != 0)
        return tr_refuse(res, "recipient: %s", err.msg);
    if (tr_build_email(s, m, &x->body, &err) != 0)
        return tr_refuse(res, "message refused before sending: %s", err.msg);

    char from[300], to[300];
    snprintf(from, sizeof(from), "<%s>", s->from_addr);
    snprintf(to, sizeof(to), "<%s>", m->to);
    x->list = curl_slist_append(NULL, to);
    x->easy = curl_easy_init();
    if (x->easy == NULL || x->list == NULL)
        return tr_refuse(res, "smtp: out of memory");
    CURL *h = x->easy;
    tr_easy_common(h, s->c.timeout_ms[TR_EMAIL]);
    curl_easy_setopt(h, CURLOPT_URL, s->c.smtp_url);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, x->list);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_reply);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, x);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* feeds on_debug; nothing is printed */
    static const long tls[] = {CURLUSESSL_NONE, CURLUSESSL_TRY, CURLUSESSL_ALL};
    curl_easy_setopt(h, CURLOPT_USE_SSL, tls[s->c.smtp_starttls]);
    if (s->c.smtp_username && *s->c.smtp_username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, s->c.smtp_username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->c.smtp_password ? s->c.smtp_password : "");
    }
    return 0;
}

/* "550 5.1.1 <x@y>: Recipient address rejected" -> 550, "5.1.1" */
static void parse_reply(const char *line, tr_result_t *res)
{
    if (strlen(line) >= 3 && isdigit((unsigned char)line[0]) && isdigit((unsigned char)line[1]) &&
        isdigit((unsigned char)line[2]))
        res->smtp_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const char *p = line + 3;
    while (*p == ' ' || *p == '-')
        p++;
    size_t n = strspn(p, "0123456789.");
    if (n >= 5 && n < sizeof(res->enhanced_code) && (p[0] == '2' || p[0] == '4' || p[0] == '5') &&
        p[1] == '.')
        snprintf(res->enhanced_code, sizeof(res->enhanced_code), "%.*s", (int)n, p);
    snprintf(res->text, sizeof(res->text), "%s", line);
}

void tr_smtp_finish(const tr_settings_t *s, tr_xfer_t *x, CURLcode rc, tr_result_t *res)
{
    (void)s;
    snprintf(res->kind, sizeof(res->kind), "smtp");
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK) {
        res->ok = true;
        parse_reply(x->line, res);
        /* Our Message-ID is the id a bounce or a reply will quote. */
        snprintf(res->provider_id, sizeof(res->provider_id), "%s", x->msg->comm_id);
        res->request_sent = true;
        return;
    }
    /* A reply-level refusal: the server answered with a code. */
    if (code >= 400 && x->line[0]) {
        parse_reply(x->line, res);
        if (res->smtp_code == 0)
            res->smtp_code = (int)code;
        /* After DATA, a refusal once the body went out is the end-of-data
         * reply (552 there is a size limit, not a full mailbox). */
        curl_off_t up = 0;
        curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &up);
        bool eom = strcmp(x->stage, "data") == 0 && (size_t)up >= x->body.len;
        snprintf(res->smtp_stage, sizeof(res->smtp_stage), "%s", eom ? "eom" : x->stage);
        res->request_sent = false; /* a refusal means it was not taken */
        return;
    }
    if (tr_network_error(x->easy, rc, x->body.len, res)) {
        snprintf(res->smtp_stage, sizeof(res->smtp_stage), "%s", x->stage);
        return;
    }
    if (rc == CURLE_LOGIN_DENIED) {
        res->smtp_code = code ? (int)code : 535;
        snprintf(res->smtp_stage, sizeof(res->smtp_stage), "auth");
        snprintf(res->text, sizeof(res->text), "%s", x->line[0] ? x->line : "login denied");
        return;
    }
    res->smtp_code = (int)code;
    snprintf(res->smtp_stage, sizeof(res->smtp_stage), "%s", x->stage);
    snprintf(res->text, sizeof(res->text), "%.200s%s%.300s", curl_easy_strerror(rc),
             x->line[0] ? ": " : "", x->line);
}
