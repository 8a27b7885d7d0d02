/*
 * policy.c - the typed policy layer (see policy.h). Builds each call's
 * plain-data arguments, calls the script through lua/runtime, and checks the
 * answer's shape: what is missing or malformed is the script's error, with
 * the file and line of the function that answered.
 */
#include "engine/policy.h"
#include "engine/policy_call.h"
#include "base/addr.h"
#include "base/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DELAY_S (30.0 * 86400) /* a retry later than this is a policy bug */

/* A script answered with the wrong shape (engine/policy_call.h). */
int pol_bad_answer(lrt_t *rt, const char *module, const char *fn, hd_err_t *err, const char *fmt,
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

const cJSON *pol_member(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

const char *pol_str_member(const cJSON *o, const char *k)
{
    const cJSON *v = pol_member(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A number member of o; NaN when o or the member is not one (every
 * comparison with it fails). */
double pol_num_member(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_IsObject(o) ? pol_member(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Calls module.fn with args (each deleted after the call) within the
 * decision or the render deadline (lua.decision_ms, lua.render_ms); the
 * values of the args named by private_args never appear in an error. */
int pol_call_private(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                     cJSON **args, int nargs, unsigned private_args, cJSON **out, hd_err_t *err)
{
    int rc = lrt_call_private(rt, within, module, fn, args, nargs, private_args, out, err);
    for (int i = 0; i < nargs; i++)
        cJSON_Delete(args[i]);
    return rc;
}

int pol_call(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn, cJSON **args,
             int nargs, cJSON **out, hd_err_t *err)
{
    return pol_call_private(rt, within, module, fn, args, nargs, 0, out, err);
}

cJSON *pol_prefs_arg(const cJSON *prefs)
{
    return prefs ? cJSON_Duplicate(prefs, true) : cJSON_CreateObject();
}

/* ---- content ---- */

static char *dup_member(const cJSON *o, const char *k)
{
    const cJSON *v = pol_member(o, k);
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
    if (pol_call_private(rt, LRT_DECISION, "types", "check", args, 2, 1u << 1, &r, err) != 0)
        return -1;
    const cJSON *known = pol_member(r, "known"), *pr = pol_member(r, "problems"),
                *wa = pol_member(r, "warnings");
    if (!cJSON_IsBool(known) || !list_like(pr) || !list_like(wa)) {
        cJSON_Delete(r);
        return pol_bad_answer(rt, "types", "check", err,
                              "returned no {known, problems, warnings} table");
    }
    out->known = cJSON_IsTrue(known);
    out->problems = cJSON_CreateArray();
    out->warnings = cJSON_CreateArray();
    const cJSON *e;
    cJSON_ArrayForEach(e, pr)
    {
        if (!cJSON_IsString(pol_member(e, "path")) || !cJSON_IsString(pol_member(e, "expected")) ||
            !cJSON_IsString(pol_member(e, "got"))) {
            cJSON_Delete(r);
            policy_context_check_free(out);
            return pol_bad_answer(rt, "types", "check", err,
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
    if (pol_call(rt, LRT_RENDER, "types", "list", NULL, 0, &r, err) != 0)
        return -1;
    if (!list_like(r)) {
        cJSON_Delete(r);
        return pol_bad_answer(rt, "types", "list", err, "returned no list");
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
    if (pol_call(rt, LRT_RENDER, "content", "locales", NULL, 0, &r, err) != 0)
        return -1;
    bool ok = cJSON_IsArray(r) && cJSON_GetArraySize(r) > 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, r) ok = ok && cJSON_IsString(t) && t->valuestring[0];
    if (!ok) {
        cJSON_Delete(r);
        return pol_bad_answer(rt, "content", "locales", err, "returned no list of locale tags");
    }
    *out = r;
    return 0;
}

int policy_identity(lrt_t *rt, cJSON **problems, hd_err_t *err)
{
    *problems = NULL;
    cJSON *r = NULL;
    if (pol_call(rt, LRT_RENDER, "content", "identity", NULL, 0, &r, err) != 0)
        return -1;
    cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(r, "problems");
    cJSON_Delete(r);
    if (!list_like(p)) {
        cJSON_Delete(p);
        return pol_bad_answer(rt, "content", "identity", err, "returned no problems list");
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
    int rc = pol_call_private(rt, LRT_RENDER, "content", "render", args, 4, 1u << 2, &r, err);
    if (rc != 0)
        return rc; /* LRT_TRIPPED stays distinguishable */
    out->subject = dup_member(r, "subject");
    out->text = dup_member(r, "text");
    out->html = dup_member(r, "html");
    out->locale = dup_member(r, "locale");
    out->locale_fallback = dup_member(r, "locale_fallback");
    const cJSON *days = pol_member(r, "track_days");
    out->track = cJSON_IsTrue(pol_member(r, "track"));
    out->unsubscribe = cJSON_IsTrue(pol_member(r, "unsubscribe"));
    const cJSON *mailto = pol_member(r, "unsubscribe_mailto");
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
        return pol_bad_answer(rt, "content", "render", err, "%s (message type %s, %s)", why, type,
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
    if (pol_call(rt, LRT_DECISION, "classify", "classify", args, 2, &c, err) != 0)
        return -1;
    const char *cat = pol_str_member(c, "category");
    const cJSON *mhbs = pol_member(c, "may_have_been_sent");
    if (cat == NULL || strlen(cat) >= sizeof(out->category) || !cJSON_IsBool(mhbs)) {
        cJSON_Delete(c);
        return pol_bad_answer(rt, "classify", "classify", err,
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
    const char *act = pol_str_member(a, "action");
    const cJSON *d = pol_member(a, "delay");
    const char *reason = pol_str_member(a, "reason");
    snprintf(out->reason, sizeof(out->reason), "%s", reason ? reason : "");
    int rc = 0;
    if (act && strcmp(act, "retry") == 0) {
        out->action = POLICY_RETRY;
        /* math.huge, NaN or a negative delay would be a retry never or at once */
        if (!cJSON_IsNumber(d) || !isfinite(d->valuedouble) || d->valuedouble < 0)
            rc = pol_bad_answer(rt, module, fn, err,
                                "returned action \"retry\" without a delay in seconds (a finite "
                                "number >= 0)");
        else
            out->delay_s = d->valuedouble < MAX_DELAY_S ? d->valuedouble : MAX_DELAY_S;
    } else if (act && next_ok && strcmp(act, "next_channel") == 0) {
        out->action = POLICY_NEXT_CHANNEL;
    } else if (act && strcmp(act, "give_up") == 0) {
        out->action = POLICY_GIVE_UP;
    } else {
        rc = pol_bad_answer(rt, module, fn, err, "returned no action (%s)",
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
    if (pol_call(rt, LRT_DECISION, "retry", "policy", args, 3, &a, err) != 0)
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
    if (pol_call(rt, LRT_DECISION, "retry", "no_receipt", args, 3, &out, err) != 0)
        return -1;
    int rc = 0;
    if (cJSON_IsNumber(out) && isfinite(out->valuedouble) && out->valuedouble >= 0)
        *seconds = out->valuedouble < MAX_DELAY_S ? out->valuedouble : MAX_DELAY_S;
    else if (!cJSON_IsNull(out))
        rc = pol_bad_answer(rt, "retry", "no_receipt", err,
                            "returned neither nil (no timer) nor seconds");
    cJSON_Delete(out);
    return rc;
}

int policy_alert_retry(lrt_t *rt, int attempt, const tr_result_t *res, policy_step_t *out,
                       hd_err_t *err)
{
    cJSON *args[] = {cJSON_CreateNumber(attempt), tr_result_to_json(res)};
    cJSON *a = NULL;
    if (pol_call(rt, LRT_DECISION, "retry", "alert", args, 2, &a, err) != 0)
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
    if (pol_call_private(rt, LRT_DECISION, "inbound", "keyword", args, 2, 1u << 1, &r, err) != 0)
        return -1;
    static const char *const names[] = {"none", "opt_out", "opt_in", "help"};
    const char *action = pol_str_member(r, "action");
    const cJSON *kw = pol_member(r, "keyword");
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
        return pol_bad_answer(rt, "inbound", "keyword", err, "%s", why);
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
    const char *type = pol_str_member(c, "type");
    if (!cJSON_IsObject(c) || type == NULL ||
        (strcmp(type, "header") != 0 && strcmp(type, "body") != 0 && strcmp(type, "button") != 0))
        return "returned a component that is not {type = header, body or button, parameters}";
    if (strcmp(type, "button") == 0) {
        const char *sub = pol_str_member(c, "sub_type"), *index = pol_str_member(c, "index");
        if (sub == NULL || strcmp(sub, "url") != 0 || index == NULL || strlen(index) != 1 ||
            index[0] < '0' || index[0] > '9')
            return "returned a button component without sub_type \"url\" and an index 0 to 9";
    }
    const cJSON *params = pol_member(c, "parameters"), *p;
    if (!cJSON_IsArray(params) || cJSON_GetArraySize(params) == 0)
        return "returned a component without parameters";
    cJSON_ArrayForEach(p, params)
    {
        const char *t = pol_str_member(p, "type"), *text = pol_str_member(p, "text");
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
                     ctx ? cJSON_Duplicate(ctx, true) : cJSON_CreateObject(), pol_prefs_arg(who),
                     cJSON_CreateNumber((double)now)};
    cJSON *r = NULL;
    /* the context and the client are personal: never quoted */
    if (pol_call_private(rt, LRT_RENDER, "whatsapp", "choose", args, 4, (1u << 1) | (1u << 2), &r,
                         err) != 0)
        return -1;
    const char *mode = pol_str_member(r, "mode"), *reason = pol_str_member(r, "reason");
    const cJSON *t = pol_member(r, "template");
    const char *why = NULL;
    if (!cJSON_IsObject(r) || mode == NULL || reason == NULL)
        why = "returned no table with mode and reason";
    else if (strcmp(mode, "text") == 0)
        ;
    else if (strcmp(mode, "template") != 0)
        why = "returned a mode that is neither text nor template";
    else if (!cJSON_IsObject(t) || pol_str_member(t, "name") == NULL ||
             pol_str_member(t, "language") == NULL || strlen(pol_str_member(t, "name")) > 512 ||
             strlen(pol_str_member(t, "language")) > 15)
        why = "returned mode template without template = {name, language, components}";
    else {
        const cJSON *comps = pol_member(t, "components"), *c;
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
        return pol_bad_answer(rt, "whatsapp", "choose", err, "%s (message type %s)", why, type);
    }
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    if (strcmp(mode, "template") == 0) {
        out->template_ = true;
        out->name = xstrdup(pol_str_member(t, "name"));
        out->language = xstrdup(pol_str_member(t, "language"));
        const cJSON *comps = pol_member(t, "components");
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
    if (pol_call(rt, LRT_DECISION, "limits", "buckets", args, 4, &r, err) != 0)
        return -1;
    const char *why = NULL;
    if (!cJSON_IsArray(r) && !(cJSON_IsObject(r) && r->child == NULL))
        why = "returned no list";
    const cJSON *b;
    const cJSON *list = cJSON_IsArray(r) ? r : NULL;
    cJSON_ArrayForEach(b, list)
    {
        const char *key = pol_str_member(b, "key");
        const cJSON *rate = pol_member(b, "rate"), *per = pol_member(b, "per"),
                    *burst = pol_member(b, "burst");
        const cJSON *sl = pol_member(b, "slow");
        double sf = pol_num_member(sl, "factor"), fl = pol_num_member(sl, "floor"),
               rs = pol_num_member(sl, "recover_seconds");
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
        return pol_bad_answer(rt, "limits", "buckets", err, "%s", why);
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
    if (pol_call(rt, LRT_DECISION, "limits", "cap", args, 3, &r, err) != 0)
        return -1;
    int rc = 0;
    if (!cJSON_IsNull(r) && r != NULL) {
        const cJSON *c = pol_member(r, "count"), *p = pol_member(r, "per"),
                    *o = pol_member(r, "over");
        const char *over = cJSON_IsString(o) ? o->valuestring : o ? "" : "wait";
        if (!cJSON_IsNumber(c) || c->valuedouble < 1 || c->valuedouble > 1e6 ||
            !cJSON_IsNumber(p) || !(p->valuedouble > 0) ||
            (strcmp(over, "wait") != 0 && strcmp(over, "digest") != 0))
            rc = pol_bad_answer(rt, "limits", "cap", err,
                                "returned neither nil nor {count = 1..1000000, per = seconds > 0, "
                                "over = \"wait\" or \"digest\"}");
        else
            *out = (policy_cap_t){(int)c->valuedouble, p->valuedouble, over[0] == 'd'};
    }
    cJSON_Delete(r);
    return rc;
}
