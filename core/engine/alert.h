/*
 * alert.h - what happens when a message failed on every channel: a critical
 * log line, a POST to engine.alert_url and an email to engine.alert_email
 * (each when configured). Used by the workers and by the webhooks (a failed
 * receipt can end a chain).
 */
#ifndef HERALD_ENGINE_ALERT_H
#define HERALD_ENGINE_ALERT_H

#include "engine/app.h"
#include "store/repo_comms.h"

/* Best effort and short: an unreachable alert endpoint never holds the
 * caller up for more than about 3 seconds. */
void engine_alert(app_t *app, const comm_job_t *j, const char *category, const char *reason);

#endif
