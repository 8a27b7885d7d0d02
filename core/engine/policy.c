/*
 * policy.c - the policy's answer to a failed attempt (see policy.h).
 */
#include "engine/policy.h"
#include "base/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_DELAY_S (30.0 * 86400) /* a retry later than this is a policy bug */

static const char *json_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

comm_outcome_t engine_policy_outcome(app_t *app, tr_channel_t channel, int attempt_no,
                                     int channel_index, int chain_len, const tr_result_t *res,
                                     char category[16], bool *may_have_been_sent, double *delay)
{
    *delay = 0;
    snprintf(category, 16, "transient");
    *may_have_been_sent = res->request_sent;
    hd_err_t err;
    cJSON *raw = tr_result_to_json(res), *ch = cJSON_CreateString(tr_channel_name(channel));
    cJSON *cls = NULL, *action = NULL;
    cJSON *cargs[] = {ch, raw};
    if (lrt_call(app->policy, "classify", "classify", cargs, 2, &cls, &err) == 0) {
        const char *cat = json_str(cls, "category");
        if (cat)
            snprintf(category, 16, "%s", cat);
        *may_have_been_sent =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cls, "may_have_been_sent"));
    } else {
        log_error("classify failed; treating the failure as transient", "error", err.msg);
        cls = cJSON_CreateObject();
    }
    cJSON *cat = cJSON_CreateString(category), *att = cJSON_CreateNumber(attempt_no);
    cJSON *rargs[] = {cat, att, cls};
    comm_outcome_t o = OUTCOME_NEXT;
    if (lrt_call(app->policy, "retry", "policy", rargs, 3, &action, &err) == 0) {
        const char *a = json_str(action, "action");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(action, "delay");
        if (a && strcmp(a, "retry") == 0) {
            o = OUTCOME_RETRY;
            *delay = cJSON_IsNumber(d) ? d->valuedouble : 60;
            /* a script's math.huge or a negative number must not become an
             * interval PostgreSQL refuses, or a retry due at once */
            if (!isfinite(*delay) || *delay < 0)
                *delay = 60;
            if (*delay > MAX_DELAY_S)
                *delay = MAX_DELAY_S;
        } else if (a && strcmp(a, "give_up") == 0) {
            o = OUTCOME_FAILED;
        }
    } else {
        log_error("retry.policy failed; moving to the next channel", "error", err.msg);
    }
    cJSON_Delete(raw);
    cJSON_Delete(ch);
    cJSON_Delete(cls);
    cJSON_Delete(cat);
    cJSON_Delete(att);
    cJSON_Delete(action);
    if (o == OUTCOME_NEXT && channel_index + 1 >= chain_len)
        o = OUTCOME_FAILED;
    return o;
}
