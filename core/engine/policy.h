/*
 * policy.h - what the policy says about a failed attempt: classify.classify
 * names the category, retry.policy the action (retry after a delay, the next
 * channel of the chain, or give up). Asked by the workers for a send that
 * failed, and by the webhooks for a receipt that reports a failure.
 */
#ifndef HERALD_ENGINE_POLICY_H
#define HERALD_ENGINE_POLICY_H

#include "engine/app.h"
#include "store/repo_comms.h"
#include "transport/transport.h"

#include <stdbool.h>

/* attempt_no: 1 for the first attempt on this channel. OUTCOME_NEXT past
 * the end of the chain (channel_index + 1 >= chain_len) is OUTCOME_FAILED.
 * A script error is logged and read as "next channel". */
comm_outcome_t engine_policy_outcome(app_t *app, tr_channel_t channel, int attempt_no,
                                     int channel_index, int chain_len, const tr_result_t *res,
                                     char category[16], bool *may_have_been_sent, double *delay);

#endif
