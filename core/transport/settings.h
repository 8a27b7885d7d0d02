/* settings.h - building the transport's settings from config.lua's values. */
#ifndef HERALD_TRANSPORT_SETTINGS_H
#define HERALD_TRANSPORT_SETTINGS_H

#include "base/config.h"
#include "transport/transport.h"

/* Fills c from cfg (secrets included, as cli_load_secrets read them). The
 * pointers in c point into cfg; tr_new copies them. */
void tr_config_from(const cfg_t *cfg, tr_config_t *c);

#endif
