/*
 * policy_strategy.c - strategy.decide, strategy.when, strategy.explain and
 * strategy.refusal in the typed policy layer (see policy.h); the shared
 * helpers are policy.c's (engine/policy_call.h).
 */
#include "engine/policy.h"
#include "base/buf.h"
#include "base/timefmt.h"
#include "engine/policy_call.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    cJSON *args[] = {req, pol_prefs_arg(prefs), cJSON_CreateNumber((double)now)};
    cJSON *d = NULL;
    /* the client's row is personal: a script error never quotes it */
    if (pol_call_private(rt, LRT_DECISION, "strategy", "decide", args, 3, 1u << 1, &d, err) != 0)
        return -1;
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return pol_bad_answer(rt, "strategy", "decide", err, "returned no table");
    }
    out->doc = d;
    const cJSON *p = pol_member(d, "primary_channel");
    const cJSON *fb = pol_member(d, "fallback_channels");
    const cJSON *at = pol_member(d, "send_at"), *pr = pol_member(d, "priority");
    const cJSON *batch = pol_member(d, "batch");
    const char *urgency = pol_str_member(d, "urgency");
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
        return pol_bad_answer(rt, "strategy", "decide", err, "%s", why);
    }
    out->nchain = cJSON_IsString(p) ? 1 : 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, fb)
    {
        tr_channel_t ch;
        if (!cJSON_IsString(e) || tr_channel_parse(e->valuestring, &ch) != 0) {
            policy_decision_free(out);
            return pol_bad_answer(rt, "strategy", "decide", err,
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
    const cJSON *reasons = pol_member(d->doc, "reasons");
    if (cJSON_IsArray(reasons))
        cJSON_AddItemToObject(o, "reasons", cJSON_Duplicate(reasons, true));
    /* an A/B experiment's arm (experiments.lua): the render reads it back */
    const char *exp = pol_str_member(d->doc, "experiment"),
               *var = pol_str_member(d->doc, "variant");
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
    if (pol_call(rt, LRT_DECISION, "strategy", "explain", args, 1, &out, err) != 0)
        return -1;
    if (!cJSON_IsString(out)) {
        cJSON_Delete(out);
        return pol_bad_answer(rt, "strategy", "explain", err, "returned no string");
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
    cJSON *args[] = {req, pol_prefs_arg(prefs), cJSON_CreateNumber((double)now)};
    cJSON *out = NULL;
    if (pol_call_private(rt, LRT_DECISION, "strategy", "when", args, 3, 1u << 1, &out, err) != 0)
        return -1;
    const cJSON *at = cJSON_IsObject(out) ? pol_member(out, "send_at") : NULL;
    if (!cJSON_IsNumber(at) || !isfinite(at->valuedouble)) {
        cJSON_Delete(out);
        return pol_bad_answer(rt, "strategy", "when", err, "returned no send_at (Unix seconds)");
    }
    *send_at = (int64_t)at->valuedouble;
    buf_t b;
    buf_init(&b);
    const cJSON *r;
    cJSON_ArrayForEach(r, pol_member(out, "reasons"))
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
    cJSON *args[] = {cJSON_CreateString(tr_channel_name(ch)), pol_prefs_arg(prefs)};
    cJSON *out = NULL;
    if (pol_call_private(rt, LRT_DECISION, "strategy", "refusal", args, 2, 1u << 1, &out, err) != 0)
        return -1;
    int rc = 0;
    if (cJSON_IsString(out) && out->valuestring[0])
        *reason = xstrdup(out->valuestring);
    else if (!cJSON_IsNull(out))
        rc = pol_bad_answer(rt, "strategy", "refusal", err,
                            "returned neither nil (the channel may be used) nor a reason");
    cJSON_Delete(out);
    return rc;
}
