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
    cJSON_DeleteItemFromObjectCaseSensitive(who, "last_inbound");
    cJSON_DeleteItemFromObjectCaseSensitive(who, "window_closed");
    cJSON *s = cJSON_AddObjectToObject(who, "suppressed");
    cJSON *in = cJSON_AddObjectToObject(who, "last_inbound");
    cJSON *closed = cJSON_AddObjectToObject(who, "window_closed");
    return supp_facts(app->db, has_e ? ei : NULL, has_p ? pi : NULL, s, in, closed, err);
}

int suppress_facts_many(app_t *app, cJSON *const *who, int n, hd_err_t *err)
{
    if (n > SUPPRESS_MANY_MAX)
        return hd_err_set(err, "more than %d recipients in one suppression read",
                          SUPPRESS_MANY_MAX);
    char ei[SUPPRESS_MANY_MAX][65], pi[SUPPRESS_MANY_MAX][65];
    const char *e[SUPPRESS_MANY_MAX], *p[SUPPRESS_MANY_MAX];
    cJSON *s[SUPPRESS_MANY_MAX], *in[SUPPRESS_MANY_MAX], *closed[SUPPRESS_MANY_MAX];
    for (int i = 0; i < n; i++) {
        e[i] = p[i] = NULL;
        s[i] = in[i] = closed[i] = NULL;
        if (who[i] == NULL)
            continue;
        const char *email = str_of(who[i], "email"), *phone = str_of(who[i], "phone");
        if (email && fe_blind_index(app->keyring, "email", email, ei[i]) == 0)
            e[i] = ei[i];
        if (phone && fe_blind_index(app->keyring, "phone", phone, pi[i]) == 0)
            p[i] = pi[i];
        cJSON_DeleteItemFromObjectCaseSensitive(who[i], "suppressed");
        cJSON_DeleteItemFromObjectCaseSensitive(who[i], "last_inbound");
        cJSON_DeleteItemFromObjectCaseSensitive(who[i], "window_closed");
        s[i] = cJSON_AddObjectToObject(who[i], "suppressed");
        in[i] = cJSON_AddObjectToObject(who[i], "last_inbound");
        closed[i] = cJSON_AddObjectToObject(who[i], "window_closed");
    }
    int asked = 0;
    for (int i = 0; i < n; i++)
        asked += e[i] != NULL || p[i] != NULL;
    return asked ? supp_facts_many(app->db, n, e, p, s, in, closed, err) : 0;
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
