/*
 * api.h - the HTTP API: route table and the handlers of each resource
 * (one file per resource: api_system.c, api_auth.c, ...).
 */
#ifndef HERALD_HTTP_API_H
#define HERALD_HTTP_API_H

#include "http/server.h"
#include "store/repo_auth.h"

/* Registers every route of the API on app->router. */
int api_register(app_t *app);

/* api_system.c */
void api_health(http_req_t *req);
void api_metrics(http_req_t *req);

/* api_auth.c */
void api_auth_token(http_req_t *req);
void api_auth_refresh(http_req_t *req);
void api_auth_me(http_req_t *req);
void api_auth_revoke(http_req_t *req);
void api_apikeys_list(http_req_t *req);
/* The API's shape of a key list (also `herald apikey list --json`). Caller frees. */
cJSON *api_apikeys_json(const apikey_row_t *rows, int n);

/* api_policy.c */
void api_scripts_reload(http_req_t *req);
void api_strategy_preview(http_req_t *req);

/* api_types.c */
void api_types_list(http_req_t *req);
void api_types_get(http_req_t *req);
void api_types_validate(http_req_t *req);

/* api_comms.c */
void api_comms_create(http_req_t *req);
void api_comms_list(http_req_t *req);
void api_comms_get(http_req_t *req);
void api_comms_cancel(http_req_t *req);
void api_comms_retry(http_req_t *req);
void api_comms_preview(http_req_t *req);
void api_dashboard_index(http_req_t *req);
void api_dashboard_file(http_req_t *req);
void api_ops_queue(http_req_t *req);
void api_ops_providers(http_req_t *req);
void api_ops_why(http_req_t *req);
void api_ops_pause(http_req_t *req);
void api_ops_resume(http_req_t *req);

/* The policy runtime's state for health: generation, last error. */
cJSON *api_policy_status(app_t *app);

/* api_prefs.c */
void api_prefs_put(http_req_t *req);
void api_prefs_get(http_req_t *req);
void api_client_erase(http_req_t *req);
void api_client_export(http_req_t *req);

/* api_webhooks.c */
void api_webhook_twilio(http_req_t *req);
void api_webhook_whatsapp_verify(http_req_t *req);
void api_webhook_whatsapp(http_req_t *req);

/* api_analytics.c */
void api_analytics(http_req_t *req);

/* api_tracking.c */
void api_track_open(http_req_t *req);
void api_track_click(http_req_t *req);

/* api_inbound.c */
void api_webhook_twilio_inbound(http_req_t *req);

/* api_suppress.c */
void api_suppressions_list(http_req_t *req);
void api_suppressions_add(http_req_t *req);
void api_suppressions_lift(http_req_t *req);

/* api_unsub.c */
void api_unsub_page(http_req_t *req);
void api_unsub_post(http_req_t *req);

#endif
