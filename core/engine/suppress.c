/* suppress.c - see suppress.h. */
#include "engine/suppress.h"
#include "base/log.h"
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

void suppress_address(app_t *app, tr_channel_t ch, const char *address, const char *reason,
                      const char *comm_id)
{
    char idx[65];
    if (address == NULL ||
        fe_blind_index(app->keyring, ch == TR_EMAIL ? "email" : "phone", address, idx) != 0)
        return;
    int64_t id = 0;
    bool created = false;
    hd_err_t err;
    if (supp_add(app->db, tr_channel_name(ch), idx, reason, "classify", "system", &id, &created,
                 &err) != 0)
        log_warn("cannot add an address to the suppression list", "comm_id", comm_id, "reason",
                 err.msg);
    else if (created)
        log_info("address suppressed", "comm_id", comm_id, "channel", tr_channel_name(ch), "why",
                 reason);
}
