/* settings.c - the transport's settings from the loaded configuration. */
#include "transport/settings.h"

#include <string.h>

static tr_driver_t driver_of(const char *name)
{
    if (name == NULL)
        return TR_DRIVER_OUTBOX;
    if (strcmp(name, "smtp") == 0)
        return TR_DRIVER_SMTP;
    if (strcmp(name, "twilio") == 0)
        return TR_DRIVER_TWILIO;
    if (strcmp(name, "whatsapp") == 0)
        return TR_DRIVER_WHATSAPP;
    return TR_DRIVER_OUTBOX;
}

void tr_config_from(const cfg_t *cfg, tr_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->driver[TR_EMAIL] = driver_of(cfg->email_driver);
    c->driver[TR_SMS] = driver_of(cfg->sms_driver);
    c->driver[TR_WHATSAPP] = driver_of(cfg->wa_driver);
    c->timeout_ms[TR_EMAIL] = cfg->email_timeout_ms;
    c->timeout_ms[TR_SMS] = cfg->sms_timeout_ms;
    c->timeout_ms[TR_WHATSAPP] = cfg->wa_timeout_ms;
    c->in_flight[TR_EMAIL] = cfg->email_connections;
    c->in_flight[TR_SMS] = cfg->sms_in_flight;
    c->in_flight[TR_WHATSAPP] = cfg->wa_in_flight;
    c->outbox_dir = cfg->outbox_dir;
    c->public_url = cfg->public_url;
    c->smtp_url = cfg->smtp_url;
    c->smtp_username = cfg->smtp_username;
    c->smtp_password = cfg->smtp_password;
    c->smtp_starttls = cfg->smtp_starttls == NULL                    ? 1
                       : strcmp(cfg->smtp_starttls, "off") == 0      ? 0
                       : strcmp(cfg->smtp_starttls, "required") == 0 ? 2
                                                                     : 1;
    c->email_from = cfg->email_from;
    c->email_reply_to = cfg->email_reply_to;
    c->dkim_domain = cfg->dkim_domain;
    c->dkim_selector = cfg->dkim_selector;
    c->dkim_key_file = cfg->dkim_key_file;
    c->twilio_base_url = cfg->twilio_base_url;
    c->twilio_sid = cfg->twilio_sid;
    c->twilio_token = cfg->twilio_token;
    c->twilio_from = cfg->twilio_from;
    c->wa_base_url = cfg->wa_base_url;
    c->wa_phone_number_id = cfg->wa_phone_number_id;
    c->wa_token = cfg->wa_token;
}
