/* inbound.c - messages clients send us (see inbound.h). */
#include "engine/inbound.h"
#include "base/log.h"
#include "crypto/field.h"
#include "engine/prefs.h"
#include "store/repo_inbound.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int inbound_receive(app_t *app, const inbound_msg_t *m, policy_inbound_t *what, hd_err_t *err)
{
    memset(what, 0, sizeof(*what));
    char index[65];
    if (fe_blind_index(app->keyring, "phone", m->from, index) != 0)
        return hd_err_set(err, "cannot compute the sender's blind index");
    if (policy_inbound(app->policy, m->channel, m->text, what, err) != 0) {
        log_error("inbound.keyword failed; the provider is asked to send the message again",
                  "channel", m->channel, "error", err->msg);
        return -1;
    }
    int64_t now = (int64_t)time(NULL);
    int64_t at = m->at > 0 && m->at <= now ? m->at : now;
    if (inbound_touch(app->db, m->channel, index, at, err) != 0)
        return -1;
    if (what->action == POLICY_INBOUND_NONE)
        return 0;
    inbound_act_t act = what->action == POLICY_INBOUND_OPT_OUT  ? INBOUND_OPT_OUT
                        : what->action == POLICY_INBOUND_OPT_IN ? INBOUND_OPT_IN
                                                                : INBOUND_NOTE;
    char **clients = NULL;
    int n = 0;
    if (inbound_apply(app->db, index, m->channel, act, what->keyword, m->source, &clients, &n,
                      err) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        prefs_cache_forget(app, clients[i]);
        free(clients[i]);
    }
    free(clients);
    log_info("inbound keyword recorded", "keyword", what->keyword, "channel", m->channel);
    return 0;
}

void inbound_window_closed_for(app_t *app, tr_channel_t ch, const char *phone, const char *comm_id)
{
    char index[65];
    hd_err_t err;
    if (ch == TR_EMAIL || phone == NULL || fe_blind_index(app->keyring, "phone", phone, index) != 0)
        return;
    if (inbound_window_closed(app->db, tr_channel_name(ch), index, &err) != 0)
        log_warn("cannot record that the provider's window is closed", "comm_id", comm_id, "reason",
                 err.msg);
}
