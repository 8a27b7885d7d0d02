/*
 * policy.h - the typed policy layer: every question the engine asks the
 * operator's scripts, with a C struct in and a C struct out. These are the
 * only callers of lrt_call (tools/check-layers keeps it so), so the shape of
 * each answer is checked in one place.
 *
 * Policy asks, C obeys: an answer that lacks a value the engine needs (a
 * retry without a delay, a decision without a send time) is a script error
 * naming the function's file and line, never filled in with a C default.
 * Every function returns 0, or -1 with err ("scripts/retry.lua:52: ...").
 * Each call runs in the calling thread's Lua state (lua/runtime.h).
 */
#ifndef HERALD_ENGINE_POLICY_H
#define HERALD_ENGINE_POLICY_H

#include "base/err.h"
#include "lua/runtime.h"
#include "transport/transport.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- strategy.decide / strategy.explain ---- */

/* What is asked of strategy.decide; NULL members are absent. */
typedef struct policy_request {
    const char *message_type, *urgency, *channel, *plan_id, *client_id;
    bool has_send_at;
    int64_t send_at; /* Unix seconds, when has_send_at */
} policy_request_t;

typedef struct policy_decision {
    int nchain; /* 0: no channel can reach the client (doc's reasons say why) */
    tr_channel_t chain[TR_NCHANNELS]; /* primary first */
    char fallbacks_csv[32];           /* "sms,whatsapp" or "" */
    int64_t send_at;
    int priority;
    bool batch;
    char urgency[16];
    cJSON *doc; /* the script's whole answer (reasons, timezone...); owned */
} policy_decision_t;

/* strategy.decide(request, prefs, now). prefs: the policy shape of
 * engine/prefs.h, or NULL. A decision with no channel is not an error. */
int policy_decide(lrt_t *rt, const policy_request_t *rq, const cJSON *prefs, int64_t now,
                  policy_decision_t *out, hd_err_t *err);
void policy_decision_free(policy_decision_t *d);

/* The decision as stored with the message and shown by the API:
 * {primary_channel, fallback_channels, send_at (RFC 3339), priority, batch}.
 * Caller frees. */
cJSON *policy_decision_json(const policy_decision_t *d);

/* strategy.explain(decision): one line for a person. Caller frees *text. */
int policy_explain(lrt_t *rt, const policy_decision_t *d, char **text, hd_err_t *err);

/* strategy.when(request, prefs, now): the send time strategy.decide would
 * give now (asked before each attempt; docs/scripting.md), in *send_at, and
 * its reasons joined by "; " in *why (malloc'd). Only rq's message_type,
 * urgency and send_at are asked with. */
int policy_when(lrt_t *rt, const policy_request_t *rq, const cJSON *prefs, int64_t now,
                int64_t *send_at, char **why, hd_err_t *err);

/* ---- strategy.refusal ---- */

/* Why ch may not carry a message to this client now (consent, opt-out,
 * allowed channels, no address: all the script's rule), in *reason (caller
 * frees), or *reason = NULL when it may. */
int policy_refusal(lrt_t *rt, tr_channel_t ch, const cJSON *prefs, char **reason, hd_err_t *err);

/* ---- content.render ---- */

typedef struct policy_content {
    char *subject, *text, *html;    /* owned; NULL when the channel has none */
    bool track;                     /* email: rewrite links, add the open pixel */
    double track_days;              /* the tracked links' life; 0 when not tracked */
    bool unsubscribe;               /* email: List-Unsubscribe headers (settings.unsubscribe) */
    const char *unsubscribe_mailto; /* with unsubscribe: an address for List-Unsubscribe's
                                       mailto (settings.unsubscribe_mailto), or NULL; in doc */
    char *locale;                   /* the locale it is written in ("fr"); NULL if not said */
    char *locale_fallback;          /* why not in the client's language; NULL when it is */
    cJSON *doc;                     /* the script's whole answer (SMS segments...); owned */
} policy_content_t;

/* content.render(type, channel, ctx, {locale}). locale: the client's
 * ("fr-CA", from their preferences or the request's recipient), or NULL;
 * the script chooses what it is written in (its fallback chain). Email
 * needs subject, text and html; sms and whatsapp need text. LRT_TRIPPED
 * (not -1) when the render ran out of its budget or deadline: not the
 * template's fault, try again later. */
int policy_render(lrt_t *rt, const char *type, tr_channel_t ch, const cJSON *ctx,
                  const char *locale, policy_content_t *out, hd_err_t *err);

/* content.locales(): the locales templates/ has, the default first
 * (herald check renders every example in each). Caller frees *out. */
int policy_locales(lrt_t *rt, cJSON **out, hd_err_t *err);
void policy_content_free(policy_content_t *c);

/* ---- types.check / types.list ---- */

/* What types.check says of a request's context. */
typedef struct policy_context_check {
    bool known;      /* the message type is declared */
    cJSON *problems; /* [{path, expected, got}]; empty when the context is fine; owned */
    cJSON *warnings; /* [{path, message}]: undeclared fields, kept; owned */
} policy_context_check_t;

/* types.check(type, context): the context against the type's declaration
 * (scripts/types.lua). Problems are not an error of the call. */
int policy_check_context(lrt_t *rt, const char *type, const cJSON *context,
                         policy_context_check_t *out, hd_err_t *err);
void policy_context_check_free(policy_context_check_t *c);

/* types.list(): [{name, description, channels, strict, schema, example}]
 * (GET /api/crm/message-types, herald check, herald render). Caller frees. */
int policy_types(lrt_t *rt, cJSON **out, hd_err_t *err);

/* content.identity(): what is wrong with the company identity every email
 * footer names (settings.company) for a production deployment. *problems is
 * an array of sentences, empty when nothing is (herald check). Caller frees. */
int policy_identity(lrt_t *rt, cJSON **problems, hd_err_t *err);

/* ---- classify.classify / retry.policy / retry.no_receipt ---- */

typedef struct policy_class {
    char category[16]; /* transient permanent rate_limit auth_failure invalid */
    bool may_have_been_sent;
    cJSON *doc; /* the whole classification (retry_after, opted_out, reason); owned */
} policy_class_t;

int policy_classify(lrt_t *rt, tr_channel_t ch, const tr_result_t *res, policy_class_t *out,
                    hd_err_t *err);
void policy_class_free(policy_class_t *c);

typedef enum { POLICY_RETRY, POLICY_NEXT_CHANNEL, POLICY_GIVE_UP } policy_action_t;

typedef struct policy_step {
    policy_action_t action;
    double delay_s; /* POLICY_RETRY: seconds, finite, 0 .. 30 days */
    char reason[256];
} policy_step_t;

/* retry.policy(category, attempt, classification). attempt: 1 after the
 * first failure on this channel. */
int policy_retry(lrt_t *rt, const policy_class_t *cls, int attempt, policy_step_t *out,
                 hd_err_t *err);

/* retry.no_receipt(type, urgency, channel): seconds to wait for a delivery
 * receipt before the next channel, or 0 for no timer. */
int policy_no_receipt(lrt_t *rt, const char *type, const char *urgency, tr_channel_t ch,
                      double *seconds, hd_err_t *err);

/* retry.alert(attempt, result): after a failed delivery of an operations
 * alert (attempt 1 after the first failure): POLICY_RETRY with a delay or
 * POLICY_GIVE_UP. */
int policy_alert_retry(lrt_t *rt, int attempt, const tr_result_t *res, policy_step_t *out,
                       hd_err_t *err);

/* inbound.keyword: what a text a client sent us on a channel means. */
typedef enum {
    POLICY_INBOUND_NONE = 0,
    POLICY_INBOUND_OPT_OUT,
    POLICY_INBOUND_OPT_IN,
    POLICY_INBOUND_HELP
} policy_inbound_act_t;
typedef struct policy_inbound {
    policy_inbound_act_t action;
    char keyword[33]; /* upper case; "" for NONE */
} policy_inbound_t;
/* text is the client's own words: never quoted in an error. */
int policy_inbound(lrt_t *rt, const char *channel, const char *text, policy_inbound_t *out,
                   hd_err_t *err);

/* whatsapp.choose: free-form text or an approved template, from the
 * window facts in who (last_inbound, window_closed). */
typedef struct policy_whatsapp {
    bool template_;        /* false: send content.render's text */
    char reason[400];      /* for the message's events */
    char *name, *language; /* owned; the template's, when template_ */
    char *components;      /* owned JSON array of Meta template components */
} policy_whatsapp_t;
/* ctx: the render context; who: the client with its facts (personal: never
 * quoted in an error). */
int policy_whatsapp(lrt_t *rt, const char *type, const cJSON *ctx, const cJSON *who, int64_t now,
                    policy_whatsapp_t *out, hd_err_t *err);
void policy_whatsapp_free(policy_whatsapp_t *w);

/* limits.buckets: the provider buckets a send draws from (at most
 * POLICY_MAX_BUCKETS; key owned by the caller's array), with how a
 * provider's rate_limit answer slows each down (engine/pace.c). */
#define POLICY_MAX_BUCKETS 4
typedef struct policy_bucket {
    char key[160];
    double rate, per;
    int burst;
    double slow_factor; /* the rate is multiplied by it at a rate_limit answer (0..1) */
    double slow_floor;  /* never below this share of rate (0..1] */
    double recover_s;   /* the share doubles back every recover_s seconds (> 0) */
} policy_bucket_t;
int policy_buckets(lrt_t *rt, tr_channel_t ch, const char *sender, const char *type,
                   const char *urgency, policy_bucket_t *out, int *n, hd_err_t *err);

/* limits.cap: at most count messages per per_s seconds to one client on
 * ch (count 0: no cap); over it, the message waits for its slot, or, with
 * fold, joins the client's digest (over = "digest"). */
typedef struct policy_cap {
    int count;
    double per_s;
    bool fold;
} policy_cap_t;
int policy_cap(lrt_t *rt, tr_channel_t ch, const char *type, const char *urgency, policy_cap_t *out,
               hd_err_t *err);

#endif
