/* preview.c - a stored message rendered again (see preview.h). */
#include "engine/preview.h"
#include "engine/policy.h"
#include "engine/prefs.h"
#include "store/repo_comms.h"

#include <stdlib.h>
#include <string.h>

int preview_message(app_t *app, const char *id, tr_channel_t ch, cJSON **out, hd_err_t *err)
{
    *out = NULL;
    comm_row_t row;
    int rc = comms_get(app->db, app->keyring, id, &row, err);
    if (rc != 0)
        return rc == 1 ? PREVIEW_NOT_FOUND : -1;
    cJSON *ctx = row.context_json ? cJSON_Parse(row.context_json) : NULL;
    if (!cJSON_IsObject(ctx) || (ctx->child == NULL && strcmp(row.message_type, "digest") != 0)) {
        cJSON_Delete(ctx);
        comm_row_free(&row);
        hd_err_set(err, "the message's context is gone (erased, or its key left the keyring)");
        return PREVIEW_NO_CONTEXT;
    }
    /* what the worker adds: the greeting's name and the plan id; and the
     * client's locale, which the render chooses the language from */
    cJSON *prefs = NULL;
    hd_err_t perr;
    if (prefs_load(app, row.client_id, NULL, &prefs, &perr) == 0 && prefs) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(prefs, "name");
        if (cJSON_IsString(name) && !cJSON_GetObjectItemCaseSensitive(ctx, "client_name"))
            cJSON_AddStringToObject(ctx, "client_name", name->valuestring);
    }
    const cJSON *locale = cJSON_GetObjectItemCaseSensitive(prefs, "locale");
    if (row.plan_id && !cJSON_GetObjectItemCaseSensitive(ctx, "plan_id"))
        cJSON_AddStringToObject(ctx, "plan_id", row.plan_id);
    cJSON *strategy = row.strategy_json ? cJSON_Parse(row.strategy_json) : NULL;
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(strategy, "experiment");
    const cJSON *var = cJSON_GetObjectItemCaseSensitive(strategy, "variant");
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "experiment");
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "variant");
    if (cJSON_IsString(exp) && cJSON_IsString(var)) {
        cJSON_AddStringToObject(ctx, "experiment", exp->valuestring);
        cJSON_AddStringToObject(ctx, "variant", var->valuestring);
    }
    cJSON_Delete(strategy);
    policy_content_t c;
    rc = policy_render(app->policy, row.message_type, ch, ctx,
                       cJSON_IsString(locale) ? locale->valuestring : NULL, &c, err);
    cJSON_Delete(prefs);
    cJSON_Delete(ctx);
    comm_row_free(&row);
    if (rc != 0)
        return PREVIEW_RENDER;
    *out = c.doc;
    c.doc = NULL;
    policy_content_free(&c);
    return PREVIEW_OK;
}
