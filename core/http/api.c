/* api.c - the route table of the HTTP API (see api.h, DESIGN.md §5). */
#include "http/api.h"

int api_register(app_t *app)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
        unsigned scope;
        body_kind_t body;
    } routes[] = {
        {"GET", "/api/crm/health", api_health, 0, BODY_NONE},
        {"GET", "/metrics", api_metrics, 0, BODY_NONE},
        {"POST", "/api/crm/auth/token", api_auth_token, 0, BODY_JSON},
        {"POST", "/api/crm/auth/refresh", api_auth_refresh, 0, BODY_JSON},
        {"GET", "/api/crm/auth/me", api_auth_me, ROUTE_AUTH, BODY_NONE},
        {"POST", "/api/crm/auth/revoke", api_auth_revoke, ROUTE_AUTH | SCOPE_ADMIN, BODY_JSON},
        {"GET", "/api/crm/apikeys", api_apikeys_list, ROUTE_AUTH | SCOPE_ADMIN, BODY_NONE},
        {"POST", "/api/crm/scripts/reload", api_scripts_reload, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        {"POST", "/api/crm/strategy/preview", api_strategy_preview, ROUTE_AUTH | SCOPE_READ,
         BODY_JSON},
        {"GET", "/api/crm/message-types", api_types_list, ROUTE_AUTH | SCOPE_READ, BODY_NONE},
        {"GET", "/api/crm/message-types/{name}", api_types_get, ROUTE_AUTH | SCOPE_READ, BODY_NONE},
        {"POST", "/api/crm/message-types/{name}/validate", api_types_validate,
         ROUTE_AUTH | SCOPE_READ, BODY_JSON},
        {"POST", "/api/crm/communications", api_comms_create, ROUTE_AUTH | SCOPE_SEND, BODY_JSON},
        {"GET", "/api/crm/communications", api_comms_list, ROUTE_AUTH | SCOPE_READ, BODY_NONE},
        {"GET", "/api/crm/communications/{id}", api_comms_get, ROUTE_AUTH | SCOPE_READ, BODY_NONE},
        {"DELETE", "/api/crm/communications/{id}", api_comms_cancel, ROUTE_AUTH | SCOPE_SEND,
         BODY_NONE},
        {"POST", "/api/crm/communications/{id}/retry", api_comms_retry, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        {"GET", "/api/crm/communications/{id}/preview", api_comms_preview, ROUTE_AUTH | SCOPE_READ,
         BODY_NONE},
        /* the operator's web pages (http/api_dashboard.c); they sign in with an API key */
        {"GET", "/dashboard", api_dashboard_index, 0, BODY_NONE},
        {"GET", "/dashboard/{file}", api_dashboard_file, 0, BODY_NONE},
        {"POST", "/api/crm/preferences", api_prefs_put, ROUTE_AUTH | SCOPE_SEND, BODY_JSON},
        {"GET", "/api/crm/preferences/{client_id}", api_prefs_get, ROUTE_AUTH | SCOPE_READ,
         BODY_NONE},
        {"GET", "/api/crm/clients/{client_id}/export", api_client_export, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        {"DELETE", "/api/crm/clients/{client_id}", api_client_erase, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        {"GET", "/api/crm/analytics", api_analytics, ROUTE_AUTH | SCOPE_READ, BODY_NONE},
        /* the operator's desk (http/api_ops.c) */
        {"GET", "/api/crm/admin/queue", api_ops_queue, ROUTE_AUTH | SCOPE_ADMIN, BODY_NONE},
        {"GET", "/api/crm/admin/providers", api_ops_providers, ROUTE_AUTH | SCOPE_ADMIN, BODY_NONE},
        {"GET", "/api/crm/admin/clients/{client_id}/why", api_ops_why, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        {"POST", "/api/crm/admin/channels/{channel}/pause", api_ops_pause, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_JSON_OPT},
        {"POST", "/api/crm/admin/channels/{channel}/resume", api_ops_resume,
         ROUTE_AUTH | SCOPE_ADMIN, BODY_JSON_OPT},
        {"GET", "/api/crm/suppressions", api_suppressions_list, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        {"POST", "/api/crm/suppressions", api_suppressions_add, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_JSON},
        {"DELETE", "/api/crm/suppressions/{id}", api_suppressions_lift, ROUTE_AUTH | SCOPE_ADMIN,
         BODY_NONE},
        /* providers authenticate by signature, not by token */
        {"POST", "/api/crm/webhooks/twilio", api_webhook_twilio, 0, BODY_FORM},
        {"POST", "/api/crm/webhooks/twilio/inbound", api_webhook_twilio_inbound, 0, BODY_FORM},
        {"GET", "/api/crm/webhooks/whatsapp", api_webhook_whatsapp_verify, 0, BODY_NONE},
        {"POST", "/api/crm/webhooks/whatsapp", api_webhook_whatsapp, 0, BODY_RAW},
        /* recipients' mail clients: the signed token is the authority */
        {"GET", "/t/o/{token}", api_track_open, 0, BODY_NONE},
        {"GET", "/t/c/{token}", api_track_click, 0, BODY_NONE},
        {"GET", "/u/{token}", api_unsub_page, 0, BODY_NONE},
        {"POST", "/u/{token}", api_unsub_post, 0, BODY_RAW},
    };
    if (app->router == NULL)
        app->router = xcalloc(1, sizeof(router_t));
    router_init(app->router);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (router_add(app->router, routes[i].method, routes[i].pattern, (void *)routes[i].fn,
                       routes[i].scope, routes[i].body) != 0)
            return -1;
    return 0;
}
