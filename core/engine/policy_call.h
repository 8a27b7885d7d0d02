/*
 * policy_call.h - what the files of the typed policy layer (policy.c,
 * policy_strategy.c) share: the call into lua/runtime and the checks of an
 * answer's members. Not for other modules: they use policy.h.
 */
#ifndef HERALD_ENGINE_POLICY_CALL_H
#define HERALD_ENGINE_POLICY_CALL_H

#include "engine/policy.h"

#include <cjson/cJSON.h>

/* A script answered with the wrong shape: "file:line: module.fn: ...". */
int pol_bad_answer(lrt_t *rt, const char *module, const char *fn, hd_err_t *err, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

const cJSON *pol_member(const cJSON *o, const char *k);
/* A non-empty string member, or NULL. */
const char *pol_str_member(const cJSON *o, const char *k);
/* A number member of o; NaN when o or the member is not one. */
double pol_num_member(const cJSON *o, const char *k);

/* Calls module.fn with args (each deleted after the call) within the
 * decision or the render deadline; the values of the args named by
 * private_args never appear in an error. */
int pol_call_private(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                     cJSON **args, int nargs, unsigned private_args, cJSON **out, hd_err_t *err);
int pol_call(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn, cJSON **args,
             int nargs, cJSON **out, hd_err_t *err);

/* A copy of the client's preferences for a call ({} when there are none). */
cJSON *pol_prefs_arg(const cJSON *prefs);

#endif
