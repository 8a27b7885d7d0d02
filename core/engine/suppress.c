/* suppress.c - see suppress.h. */
#include "engine/suppress.h"
#include "store/repo_suppress.h"

#include <string.h>

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

int suppress_facts(app_t *app, cJSON *who, hd_err_t *err)
{
    char ei[65], pi[65];
    const char *email = str_of(who, "email"), *phone = str_of(who, "phone");
    bool has_e = email && fe_blind_index(app->keyring, "email", email, ei) == 0;
    bool has_p = phone && fe_blind_index(app->keyring, "phone", phone, pi) == 0;
    cJSON_DeleteItemFromObjectCaseSensitive(who, "suppressed");
    cJSON *s = cJSON_AddObjectToObject(who, "suppressed");
    return supp_facts(app->db, has_e ? ei : NULL, has_p ? pi : NULL, s, err);
}
