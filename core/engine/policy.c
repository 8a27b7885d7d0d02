/*
 * policy.c - the typed policy layer (see policy.h). Builds each call's
 * plain-data arguments, calls the script through lua/runtime, and checks the
 * answer's shape: what is missing or malformed is the script's error, with
 * the file and line of the function that answered.
 */
#include "engine/policy.h"
#include "base/addr.h"
#include "base/buf.h"
#include "base/timefmt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DELAY_S (30.0 * 86400) /* a retry later than this is a policy bug */

/* A script answered with the wrong shape: "file:line: module.fn: ...". */
static int bad_answer(lrt_t *rt, const char *module, const char *fn, hd_err_t *err, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static int bad_answer(lrt_t *rt, const char *module, const char *fn, hd_err_t *err, const char *fmt,
                      ...)
{
    char where[300], what[400];
    lrt_where(rt, module, fn, where, sizeof(where));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return hd_err_set(err, "%s: %s.%s %s", where, module, fn, what);
}

static const cJSON *member(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *str_member(const cJSON *o, const char *k)
{
    const cJSON *v = member(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A number member of o; NaN when o or the member is not one (every
 * comparison with it fails). */
static double num_member(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_IsObject(o) ? member(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Calls module.fn with args (each deleted after the call) within the
 * decision or the render deadline (lua.decision_ms, lua.render_ms); the
 * values of the args named by private_args never appear in an error. */
static int call_private(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                        cJSON **args, int nargs, unsigned private_args, cJSON **out, hd_err_t *err)
{
    int rc = lrt_call_private(rt, within, module, fn, args, nargs, private_args, out, err);
    for (int i = 0; i < nargs; i++)
        cJSON_Delete(args[i]);
    return rc;
}

static int call(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn, cJSON **args,
                int nargs, cJSON **out, hd_err_t *err)
{
    return call_private(rt, within, module, fn, args, nargs, 0, out, err);
}

static cJSON *prefs_arg(const cJSON *prefs)
{
    return prefs ? cJSON_Duplicate(prefs, true) : cJSON_CreateObject();
}

/* ---- strategy ---- */

int policy_decide(lrt_t *rt, const policy_request_t *rq, const cJSON *prefs, int64_t now,
                  policy_decision_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "message_type", rq->message_type ? rq->message_type : "");
    if (rq->urgency)
        cJSON_AddStringToObject(req, "urgency", rq->urgency);
    if (rq->channel)
        cJSON_AddStringToObject(req, "channel", rq->channel);
    if (rq->has_send_at)
        cJSON_AddNumberToObject(req, "send_at", (double)rq->send_at);
    if (rq->plan_id)
        cJSON_AddStringToObject(req, "plan_id", rq->plan_id);
    if (rq->client_id)
        cJSON_AddStringToObject(req, "client_id", rq->client_id);
    cJSON *args[] = {req, prefs_arg(prefs), cJSON_CreateNumber((double)now)};
    cJSON *d = NULL;
    /* the client's row is personal: a script error never quotes it */
    if (call_private(rt, LRT_DECISION, "strategy", "decide", args, 3, 1u << 1, &d, err) != 0)
        return -1;
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return bad_answer(rt, "strategy", "decide", err, "returned no table");
    }
    out->doc = d;
    const cJSON *p = member(d, "primary_channel");
    const cJSON *fb = member(d, "fallback_channels");
    const cJSON *at = member(d, "send_at"), *pr = member(d, "priority");
    const cJSON *batch = member(d, "batch");
    const char *urgency = str_member(d, "urgency");
    const char *why = NULL;
    if (p && !cJSON_IsNull(p) &&
        (!cJSON_IsString(p) || tr_channel_parse(p->valuestring, &out->chain[0])))
        why = "returned a primary_channel that is not email, sms or whatsapp";
    /* an empty Lua table crosses as {} */
    else if (fb && !cJSON_IsArray(fb) && !(cJSON_IsObject(fb) && fb->child == NULL))
        why = "returned fallback_channels that is not a list";
    else if (!cJSON_IsNumber(at) || !isfinite(at->valuedouble))
        why = "returned no send_at (Unix seconds)";
    else if (!cJSON_IsNumber(pr) || pr->valuedouble < 0 || pr->valuedouble > 100)
        why = "returned no priority from 0 to 100";
    else if (!cJSON_IsBool(batch))
        why = "returned no batch (true or false)";
    else if (urgency == NULL || strlen(urgency) >= sizeof(out->urgency))
        why = "returned no urgency";
    if (why) {
        policy_decision_free(out);
        return bad_answer(rt, "strategy", "decide", err, "%s", why);
    }
    out->nchain = cJSON_IsString(p) ? 1 : 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, fb)
    {
        tr_channel_t ch;
        if (!cJSON_IsString(e) || tr_channel_parse(e->valuestring, &ch) != 0) {
            policy_decision_free(out);
            return bad_answer(rt, "strategy", "decide", err,
                              "returned a fallback channel that is not email, sms or whatsapp");
        }
        if (out->nchain == 0 || out->nchain >= TR_NCHANNELS)
            continue; /* no primary: nothing to fall back from; duplicates past the cap */
        out->chain[out->nchain++] = ch;
        size_t len = strlen(out->fallbacks_csv);
        snprintf(out->fallbacks_csv + len, sizeof(out->fallbacks_csv) - len, "%s%s", len ? "," : "",
                 tr_channel_name(ch));
    }
    out->send_at = (int64_t)at->valuedouble;
    out->priority = (int)pr->valuedouble;
    out->batch = cJSON_IsTrue(batch);
    snprintf(out->urgency, sizeof(out->urgency), "%s", urgency);
    return 0;
}

void policy_decision_free(policy_decision_t *d)
{
    cJSON_Delete(d->doc);
    d->doc = NULL;
}

cJSON *policy_decision_json(const policy_decision_t *d)
{
    cJSON *o = cJSON_CreateObject();
    if (d->nchain > 0)
        cJSON_AddStringToObject(o, "primary_channel", tr_channel_name(d->chain[0]));
    else
        cJSON_AddNullToObject(o, "primary_channel");
    cJSON *fb = cJSON_AddArrayToObject(o, "fallback_channels");
    for (int i = 1; i < d->nchain; i++)
        cJSON_AddItemToArray(fb, cJSON_CreateString(tr_channel_name(d->chain[i])));
    char ts[32];
    timefmt_format(d->send_at, ts);
    cJSON_AddStringToObject(o, "send_at", ts);
    cJSON_AddNumberToObject(o, "priority", d->priority);
    cJSON_AddBoolToObject(o, "batch", d->batch);
    /* why, in the policy's words: kept with the message for the console's
     * why() and message(), and the dashboard */
    const cJSON *reasons = member(d->doc, "reasons");
    if (cJSON_IsArray(reasons))
        cJSON_AddItemToObject(o, "reasons", cJSON_Duplicate(reasons, true));
    /* an A/B experiment's arm (experiments.lua): the render reads it back */
    const char *exp = str_member(d->doc, "experiment"), *var = str_member(d->doc, "variant");
    if (exp && var && strlen(exp) <= 64 && strlen(var) <= 64) {
        cJSON_AddStringToObject(o, "experiment", exp);
        cJSON_AddStringToObject(o, "variant", var);
    }
    return o;
}

int policy_explain(lrt_t *rt, const policy_decision_t *d, char **text, hd_err_t *err)
{
    *text = NULL;
    cJSON *args[] = {cJSON_Duplicate(d->doc, true)};
    cJSON *out = NULL;
    if (call(rt, LRT_DECISION, "strategy", "explain", args, 1, &out, err) != 0)
        return -1;
    if (!cJSON_IsString(out)) {
        cJSON_Delete(out);
        return bad_answer(rt, "strategy", "explain", err, "returned no string");
    }
    *text = xstrdup(out->valuestring);
    cJSON_Delete(out);
    return 0;
}

int policy_when(lrt_t *rt, const policy_request_t *rq, const cJSON *prefs, int64_t now,
                int64_t *send_at, char **why, hd_err_t *err)
{
    *why = NULL;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "message_type", rq->message_type ? rq->message_type : "");
    if (rq->urgency)
        cJSON_AddStringToObject(req, "urgency", rq->urgency);
    if (rq->has_send_at)
        cJSON_AddNumberToObject(req, "send_at", (double)rq->send_at);
    cJSON *args[] = {req, prefs_arg(prefs), cJSON_CreateNumber((double)now)};
    cJSON *out = NULL;
    if (call_private(rt, LRT_DECISION, "strategy", "when", args, 3, 1u << 1, &out, err) != 0)
        return -1;
    const cJSON *at = cJSON_IsObject(out) ? member(out, "send_at") : NULL;
    if (!cJSON_IsNumber(at) || !isfinite(at->valuedouble)) {
        cJSON_Delete(out);
        return bad_answer(rt, "strategy", "when", err, "returned no send_at (Unix seconds)");
    }
    *send_at = (int64_t)at->valuedouble;
    buf_t b;
    buf_init(&b);
    const cJSON *r;
    cJSON_ArrayForEach(r, member(out, "reasons"))
    {
        if (cJSON_IsString(r))
            buf_printf(&b, "%s%s", b.len ? "; " : "", r->valuestring);
    }
    if (b.len == 0)
        buf_puts(&b, "the policy gives a later time");
    *why = buf_steal(&b);
    cJSON_Delete(out);
    return 0;
}

int policy_refusal(lrt_t *rt, tr_channel_t ch, const cJSON *prefs, char **reason, hd_err_t *err)
{
    *reason = NULL;
    cJSON *args[] = {cJSON_CreateString(tr_channel_name(ch)), prefs_arg(prefs)};
    cJSON *out = NULL;
    if (call_private(rt, LRT_DECISION, "strategy", "refusal", args, 2, 1u << 1, &out, err) != 0)
        return -1;
    int rc = 0;
    if (cJSON_IsString(out) && out->valuestring[0])
        *reason = xstrdup(out->valuestring);
    else if (!cJSON_IsNull(out))
        rc = bad_answer(rt, "strategy", "refusal", err,
                        "returned neither nil (the channel may be used) nor a reason");
    cJSON_Delete(out);
    return rc;
}

/* ---- content ---- */

static char *dup_member(const cJSON *o, const char *k)
{
    const cJSON *v = member(o, k);
    return cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
}

/* ---- types ---- */

/* An empty Lua list may cross as {}: either is an empty list here. */
static bool list_like(const cJSON *v)
{
    return cJSON_IsArray(v) || (cJSON_IsObject(v) && v->child == NULL);
}

int policy_check_context(lrt_t *rt, const char *type, const cJSON *context,
                         policy_context_check_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *args[] = {cJSON_CreateString(type ? type : ""),
                     context ? cJSON_Duplicate(context, true) : cJSON_CreateObject()};
    cJSON *r = NULL;
    /* the context is personal: a script error never quotes it */
    if (call_private(rt, LRT_DECISION, "types", "check", args, 2, 1u << 1, &r, err) != 0)
        return -1;
    const cJSON *known = member(r, "known"), *pr = member(r, "problems"),
                *wa = member(r, "warnings");
    if (!cJSON_IsBool(known) || !list_like(pr) || !list_like(wa)) {
        cJSON_Delete(r);
        return bad_answer(rt, "types", "check", err,
                          "returned no {known, problems, warnings} table");
    }
    out->known = cJSON_IsTrue(known);
    out->problems = cJSON_CreateArray();
    out->warnings = cJSON_CreateArray();
    const cJSON *e;
    cJSON_ArrayForEach(e, pr)
    {
        if (!cJSON_IsString(member(e, "path")) || !cJSON_IsString(member(e, "expected")) ||
            !cJSON_IsString(member(e, "got"))) {
            cJSON_Delete(r);
            policy_context_check_free(out);
            return bad_answer(rt, "types", "check", err,
                              "returned a problem without path, expected and got");
        }
        cJSON_AddItemToArray(out->problems, cJSON_Duplicate(e, true));
    }
    cJSON_ArrayForEach(e, wa) cJSON_AddItemToArray(out->warnings, cJSON_Duplicate(e, true));
    cJSON_Delete(r);
    return 0;
}

void policy_context_check_free(policy_context_check_t *c)
{
    cJSON_Delete(c->problems);
    cJSON_Delete(c->warnings);
    c->problems = c->warnings = NULL;
}

int policy_types(lrt_t *rt, cJSON **out, hd_err_t *err)
{
    *out = NULL;
    cJSON *r = NULL;
    if (call(rt, LRT_RENDER, "types", "list", NULL, 0, &r, err) != 0)
        return -1;
    if (!list_like(r)) {
        cJSON_Delete(r);
        return bad_answer(rt, "types", "list", err, "returned no list");
    }
    if (!cJSON_IsArray(r)) { /* {} : no types */
        cJSON_Delete(r);
        r = cJSON_CreateArray();
    }
    *out = r;
    return 0;
}

int policy_locales(lrt_t *rt, cJSON **out, hd_err_t *err)
{
    *out = NULL;
    cJSON *r = NULL;
    if (call(rt, LRT_RENDER, "content", "locales", NULL, 0, &r, err) != 0)
        return -1;
    bool ok = cJSON_IsArray(r) && cJSON_GetArraySize(r) > 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, r) ok = ok && cJSON_IsString(t) && t->valuestring[0];
    if (!ok) {
        cJSON_Delete(r);
        return bad_answer(rt, "content", "locales", err, "returned no list of locale tags");
    }
    *out = r;
    return 0;
}

int policy_identity(lrt_t *rt, cJSON **problems, hd_err_t *err)
{
    *problems = NULL;
    cJSON *r = NULL;
    if (call(rt, LRT_RENDER, "content", "identity", NULL, 0, &r, err) != 0)
        return -1;
    cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(r, "problems");
    cJSON_Delete(r);
    if (!list_like(p)) {
        cJSON_Delete(p);
        return bad_answer(rt, "content", "identity", err, "returned no problems list");
    }
    if (!cJSON_IsArray(p)) { /* {} : none */
        cJSON_Delete(p);
        p = cJSON_CreateArray();
    }
    *problems = p;
    return 0;
}

int policy_render(lrt_t *rt, const char *type, tr_channel_t ch, const cJSON *ctx,
                  const char *locale, policy_content_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *opts = cJSON_CreateObject();
    if (locale && locale[0])
        cJSON_AddStringToObject(opts, "locale", locale);
    cJSON *args[] = {cJSON_CreateString(type), cJSON_CreateString(tr_channel_name(ch)),
                     ctx ? cJSON_Duplicate(ctx, true) : cJSON_CreateObject(), opts};
    cJSON *r = NULL;
    /* the context (names, budgets, vendors) never appears in a render error */
    int rc = call_private(rt, LRT_RENDER, "content", "render", args, 4, 1u << 2, &r, err);
    if (rc != 0)
        return rc; /* LRT_TRIPPED stays distinguishable */
    out->subject = dup_member(r, "subject");
    out->text = dup_member(r, "text");
    out->html = dup_member(r, "html");
    out->locale = dup_member(r, "locale");
    out->locale_fallback = dup_member(r, "locale_fallback");
    const cJSON *days = member(r, "track_days");
    out->track = cJSON_IsTrue(member(r, "track"));
    out->unsubscribe = cJSON_IsTrue(member(r, "unsubscribe"));
    const cJSON *mailto = member(r, "unsubscribe_mailto");
    out->unsubscribe_mailto =
        out->unsubscribe && cJSON_IsString(mailto) ? mailto->valuestring : NULL;
    out->doc = r;
    hd_err_t addr_err;
    const char *why = NULL;
    if (ch == TR_EMAIL && (out->subject == NULL || out->text == NULL || out->html == NULL))
        why = "returned an email without subject, text and html";
    else if (ch != TR_EMAIL && (out->text == NULL || out->text[0] == '\0'))
        why = "returned no text";
    else if (out->track &&
             !(cJSON_IsNumber(days) && days->valuedouble > 0 && isfinite(days->valuedouble)))
        why = "returned track = true without track_days (settings.tracking.link_days)";
    else if ((mailto && !cJSON_IsNull(mailto) && !cJSON_IsString(mailto)) ||
             (out->unsubscribe_mailto && addr_check_email(out->unsubscribe_mailto, &addr_err) != 0))
        why = "returned an unsubscribe_mailto that is not an email address "
              "(settings.unsubscribe_mailto)";
    if (why) {
        policy_content_free(out);
        return bad_answer(rt, "content", "render", err, "%s (message type %s, %s)", why, type,
                          tr_channel_name(ch));
    }
    out->track_days = out->track ? days->valuedouble : 0;
    return 0;
}

void policy_content_free(policy_content_t *c)
{
    free(c->subject);
    free(c->text);
    free(c->html);
    free(c->locale);
    free(c->locale_fallback);
    cJSON_Delete(c->doc);
    memset(c, 0, sizeof(*c));
}

/* ---- classify and retry ---- */

int policy_classify(lrt_t *rt, tr_channel_t ch, const tr_result_t *res, policy_class_t *out,
                    hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *args[] = {cJSON_CreateString(tr_channel_name(ch)), tr_result_to_json(res)};
    cJSON *c = NULL;
    if (call(rt, LRT_DECISION, "classify", "classify", args, 2, &c, err) != 0)
        return -1;
    const char *cat = str_member(c, "category");
    const cJSON *mhbs = member(c, "may_have_been_sent");
    if (cat == NULL || strlen(cat) >= sizeof(out->category) || !cJSON_IsBool(mhbs)) {
        cJSON_Delete(c);
        return bad_answer(rt, "classify", "classify", err,
                          "returned no category or no may_have_been_sent");
    }
    snprintf(out->category, sizeof(out->category), "%s", cat);
    out->may_have_been_sent = cJSON_IsTrue(mhbs);
    out->doc = c;
    return 0;
}

void policy_class_free(policy_class_t *c)
{
    cJSON_Delete(c->doc);
    c->doc = NULL;
}

/* {action = "retry", delay} | {action = "next_channel"} | {action = "give_up"} */
static int read_step(lrt_t *rt, const char *module, const char *fn, cJSON *a, bool next_ok,
                     policy_step_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *act = str_member(a, "action");
    const cJSON *d = member(a, "delay");
    const char *reason = str_member(a, "reason");
    snprintf(out->reason, sizeof(out->reason), "%s", reason ? reason : "");
    int rc = 0;
    if (act && strcmp(act, "retry") == 0) {
        out->action = POLICY_RETRY;
        /* math.huge, NaN or a negative delay would be a retry never or at once */
        if (!cJSON_IsNumber(d) || !isfinite(d->valuedouble) || d->valuedouble < 0)
            rc = bad_answer(rt, module, fn, err,
                            "returned action \"retry\" without a delay in seconds (a finite "
                            "number >= 0)");
        else
            out->delay_s = d->valuedouble < MAX_DELAY_S ? d->valuedouble : MAX_DELAY_S;
    } else if (act && next_ok && strcmp(act, "next_channel") == 0) {
        out->action = POLICY_NEXT_CHANNEL;
    } else if (act && strcmp(act, "give_up") == 0) {
        out->action = POLICY_GIVE_UP;
    } else {
        rc = bad_answer(rt, module, fn, err, "returned no action (%s)",
                        next_ok ? "retry, next_channel or give_up" : "retry or give_up");
    }
    cJSON_Delete(a);
    return rc;
}

int policy_retry(lrt_t *rt, const policy_class_t *cls, int attempt, policy_step_t *out,
                 hd_err_t *err)
{
    cJSON *args[] = {cJSON_CreateString(cls->category), cJSON_CreateNumber(attempt),
                     cls->doc ? cJSON_Duplicate(cls->doc, true) : cJSON_CreateObject()};
    cJSON *a = NULL;
    if (call(rt, LRT_DECISION, "retry", "policy", args, 3, &a, err) != 0)
        return -1;
    return read_step(rt, "retry", "policy", a, true, out, err);
}

int policy_no_receipt(lrt_t *rt, const char *type, const char *urgency, tr_channel_t ch,
                      double *seconds, hd_err_t *err)
{
    *seconds = 0;
    cJSON *args[] = {cJSON_CreateString(type ? type : ""),
                     cJSON_CreateString(urgency ? urgency : ""),
                     cJSON_CreateString(tr_channel_name(ch))};
    cJSON *out = NULL;
    if (call(rt, LRT_DECISION, "retry", "no_receipt", args, 3, &out, err) != 0)
        return -1;
    int rc = 0;
    if (cJSON_IsNumber(out) && isfinite(out->valuedouble) && out->valuedouble >= 0)
        *seconds = out->valuedouble < MAX_DELAY_S ? out->valuedouble : MAX_DELAY_S;
    else if (!cJSON_IsNull(out))
        rc = bad_answer(rt, "retry", "no_receipt", err,
                        "returned neither nil (no timer) nor seconds");
    cJSON_Delete(out);
    return rc;
}

int policy_alert_retry(lrt_t *rt, int attempt, const tr_result_t *res, policy_step_t *out,
                       hd_err_t *err)
{
    cJSON *args[] = {cJSON_CreateNumber(attempt), tr_result_to_json(res)};
    cJSON *a = NULL;
    if (call(rt, LRT_DECISION, "retry", "alert", args, 2, &a, err) != 0)
        return -1;
    return read_step(rt, "retry", "alert", a, false, out, err);
}

/* ---- inbound ---- */

int policy_inbound(lrt_t *rt, const char *channel, const char *text, policy_inbound_t *out,
                   hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *args[] = {cJSON_CreateString(channel), cJSON_CreateString(text ? text : "")};
    cJSON *r = NULL;
    if (call_private(rt, LRT_DECISION, "inbound", "keyword", args, 2, 1u << 1, &r, err) != 0)
        return -1;
    static const char *const names[] = {"none", "opt_out", "opt_in", "help"};
    const char *action = str_member(r, "action");
    const cJSON *kw = member(r, "keyword");
    int found = -1;
    for (int i = 0; action && i < 4; i++)
        if (strcmp(action, names[i]) == 0)
            found = i;
    const char *why = NULL;
    if (!cJSON_IsObject(r))
        why = "returned no table";
    else if (found < 0)
        why = "returned no action (none, opt_out, opt_in or help)";
    else if (found > 0 && (!cJSON_IsString(kw) || kw->valuestring[0] == '\0' ||
                           strlen(kw->valuestring) >= sizeof(out->keyword)))
        why = "returned an action without a keyword (1 to 32 characters)";
    if (why) {
        cJSON_Delete(r);
        return bad_answer(rt, "inbound", "keyword", err, "%s", why);
    }
    out->action = (policy_inbound_act_t)found;
    if (found > 0)
        snprintf(out->keyword, sizeof(out->keyword), "%s", kw->valuestring);
    cJSON_Delete(r);
    return 0;
}

/* ---- whatsapp ---- */

/* A Meta template component as whatsapp.choose builds it: header, body or a
 * URL button, each parameter {type = "text", text = 1..1024 bytes}. */
static const char *bad_component(const cJSON *c)
{
    const char *type = str_member(c, "type");
    if (!cJSON_IsObject(c) || type == NULL ||
        (strcmp(type, "header") != 0 && strcmp(type, "body") != 0 && strcmp(type, "button") != 0))
        return "returned a component that is not {type = header, body or button, parameters}";
    if (strcmp(type, "button") == 0) {
        const char *sub = str_member(c, "sub_type"), *index = str_member(c, "index");
        if (sub == NULL || strcmp(sub, "url") != 0 || index == NULL || strlen(index) != 1 ||
            index[0] < '0' || index[0] > '9')
            return "returned a button component without sub_type \"url\" and an index 0 to 9";
    }
    const cJSON *params = member(c, "parameters"), *p;
    if (!cJSON_IsArray(params) || cJSON_GetArraySize(params) == 0)
        return "returned a component without parameters";
    cJSON_ArrayForEach(p, params)
    {
        const char *t = str_member(p, "type"), *text = str_member(p, "text");
        if (t == NULL || strcmp(t, "text") != 0 || text == NULL || strlen(text) > 1024)
            return "returned a parameter that is not {type = \"text\", text = 1 to 1024 bytes}";
    }
    return NULL;
}

int policy_whatsapp(lrt_t *rt, const char *type, const cJSON *ctx, const cJSON *who, int64_t now,
                    policy_whatsapp_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *args[] = {cJSON_CreateString(type),
                     ctx ? cJSON_Duplicate(ctx, true) : cJSON_CreateObject(), prefs_arg(who),
                     cJSON_CreateNumber((double)now)};
    cJSON *r = NULL;
    /* the context and the client are personal: never quoted */
    if (call_private(rt, LRT_RENDER, "whatsapp", "choose", args, 4, (1u << 1) | (1u << 2), &r,
                     err) != 0)
        return -1;
    const char *mode = str_member(r, "mode"), *reason = str_member(r, "reason");
    const cJSON *t = member(r, "template");
    const char *why = NULL;
    if (!cJSON_IsObject(r) || mode == NULL || reason == NULL)
        why = "returned no table with mode and reason";
    else if (strcmp(mode, "text") == 0)
        ;
    else if (strcmp(mode, "template") != 0)
        why = "returned a mode that is neither text nor template";
    else if (!cJSON_IsObject(t) || str_member(t, "name") == NULL ||
             str_member(t, "language") == NULL || strlen(str_member(t, "name")) > 512 ||
             strlen(str_member(t, "language")) > 15)
        why = "returned mode template without template = {name, language, components}";
    else {
        const cJSON *comps = member(t, "components"), *c;
        if (comps && !cJSON_IsArray(comps) && !(cJSON_IsObject(comps) && comps->child == NULL))
            why = "returned template components that are not a list";
        const cJSON *list = cJSON_IsArray(comps) ? comps : NULL;
        cJSON_ArrayForEach(c, list)
        {
            if (why == NULL)
                why = bad_component(c);
        }
    }
    if (why) {
        cJSON_Delete(r);
        return bad_answer(rt, "whatsapp", "choose", err, "%s (message type %s)", why, type);
    }
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    if (strcmp(mode, "template") == 0) {
        out->template_ = true;
        out->name = xstrdup(str_member(t, "name"));
        out->language = xstrdup(str_member(t, "language"));
        const cJSON *comps = member(t, "components");
        out->components = cJSON_IsArray(comps) ? cJSON_PrintUnformatted(comps) : xstrdup("[]");
    }
    cJSON_Delete(r);
    return 0;
}

void policy_whatsapp_free(policy_whatsapp_t *w)
{
    free(w->name);
    free(w->language);
    free(w->components);
    memset(w, 0, sizeof(*w));
}

/* ---- limits ---- */

int policy_buckets(lrt_t *rt, tr_channel_t ch, const char *sender, const char *type,
                   const char *urgency, policy_bucket_t *out, int *n, hd_err_t *err)
{
    *n = 0;
    cJSON *args[] = {cJSON_CreateString(tr_channel_name(ch)), cJSON_CreateString(sender),
                     cJSON_CreateString(type ? type : ""),
                     cJSON_CreateString(urgency ? urgency : "")};
    cJSON *r = NULL;
    if (call(rt, LRT_DECISION, "limits", "buckets", args, 4, &r, err) != 0)
        return -1;
    const char *why = NULL;
    if (!cJSON_IsArray(r) && !(cJSON_IsObject(r) && r->child == NULL))
        why = "returned no list";
    const cJSON *b;
    const cJSON *list = cJSON_IsArray(r) ? r : NULL;
    cJSON_ArrayForEach(b, list)
    {
        const char *key = str_member(b, "key");
        const cJSON *rate = member(b, "rate"), *per = member(b, "per"), *burst = member(b, "burst");
        const cJSON *sl = member(b, "slow");
        double sf = num_member(sl, "factor"), fl = num_member(sl, "floor"),
               rs = num_member(sl, "recover_seconds");
        if (why == NULL &&
            (key == NULL || strlen(key) >= sizeof(out->key) || !cJSON_IsNumber(rate) ||
             !(rate->valuedouble > 0) || !cJSON_IsNumber(per) || !(per->valuedouble > 0) ||
             !cJSON_IsNumber(burst) || burst->valuedouble < 1 || burst->valuedouble > 1e6))
            why = "returned a bucket without key, rate, per and burst";
        else if (why == NULL && !(sf > 0 && sf < 1 && fl > 0 && fl <= 1 && rs > 0 && rs < 1e7))
            why = "returned a bucket without slow = {factor = 0..1, floor = 0..1, "
                  "recover_seconds > 0}";
        else if (why == NULL && *n < POLICY_MAX_BUCKETS) {
            policy_bucket_t *o = &out[(*n)++];
            snprintf(o->key, sizeof(o->key), "%s", key);
            o->rate = rate->valuedouble;
            o->per = per->valuedouble;
            o->burst = (int)burst->valuedouble;
            o->slow_factor = sf;
            o->slow_floor = fl;
            o->recover_s = rs;
        }
    }
    cJSON_Delete(r);
    if (why) {
        *n = 0;
        return bad_answer(rt, "limits", "buckets", err, "%s", why);
    }
    return 0;
}

int policy_cap(lrt_t *rt, tr_channel_t ch, const char *type, const char *urgency, policy_cap_t *out,
               hd_err_t *err)
{
    *out = (policy_cap_t){0};
    cJSON *args[] = {cJSON_CreateString(tr_channel_name(ch)), cJSON_CreateString(type ? type : ""),
                     cJSON_CreateString(urgency ? urgency : "")};
    cJSON *r = NULL;
    if (call(rt, LRT_DECISION, "limits", "cap", args, 3, &r, err) != 0)
        return -1;
    int rc = 0;
    if (!cJSON_IsNull(r) && r != NULL) {
        const cJSON *c = member(r, "count"), *p = member(r, "per"), *o = member(r, "over");
        const char *over = cJSON_IsString(o) ? o->valuestring : o ? "" : "wait";
        if (!cJSON_IsNumber(c) || c->valuedouble < 1 || c->valuedouble > 1e6 ||
            !cJSON_IsNumber(p) || !(p->valuedouble > 0) ||
            (strcmp(over, "wait") != 0 && strcmp(over, "digest") != 0))
            rc = bad_answer(rt, "limits", "cap", err,
                            "returned neither nil nor {count = 1..1000000, per = seconds > 0, "
                            "over = \"wait\" or \"digest\"}");
        else
            *out = (policy_cap_t){(int)c->valuedouble, p->valuedouble, over[0] == 'd'};
    }
    cJSON_Delete(r);
    return rc;
}
