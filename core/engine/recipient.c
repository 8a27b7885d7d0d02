/*
 * recipient.c - one message's recipient (see recipient.h). Uses the
 * preference reader and the field keyring.
 */
#include "engine/recipient.h"
#include "engine/prefs.h"

#include <stdlib.h>

void recipient_merge(cJSON *prefs, const cJSON *override)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, override)
    {
        if (!cJSON_IsString(f) || f->valuestring[0] == '\0')
            continue;
        if (cJSON_GetObjectItemCaseSensitive(prefs, f->string))
            cJSON_ReplaceItemInObjectCaseSensitive(prefs, f->string,
                                                   cJSON_CreateString(f->valuestring));
        else
            cJSON_AddStringToObject(prefs, f->string, f->valuestring);
    }
}

cJSON *recipient_load(app_t *app, const char *client_id, const prefs_version_t *current,
                      const char *recipient_enc, hd_err_t *err)
{
    cJSON *prefs = NULL;
    if (prefs_load(app, client_id, current, &prefs, err) != 0)
        return NULL;
    if (prefs == NULL)
        prefs = cJSON_CreateObject();
    if (recipient_enc == NULL)
        return prefs;
    char *plain = NULL;
    size_t n = 0;
    if (fe_decrypt(app->keyring, "recipient", recipient_enc, &plain, &n, err) != 0) {
        cJSON_Delete(prefs);
        return NULL;
    }
    cJSON *over = cJSON_ParseWithLength(plain, n);
    free(plain);
    recipient_merge(prefs, over);
    cJSON_Delete(over);
    return prefs;
}
