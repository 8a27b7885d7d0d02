/*
 * preview.h - a stored message rendered again, for the dashboard (issue 15
 * item 4): its stored context through today's templates on a channel, as
 * the worker builds it (the client's name for the greeting, the plan id),
 * without tracking and with the placeholder unsubscribe link. Messages are
 * stored with their context, not their text (docs/compliance.md), so this
 * is what the client saw unless a template changed since. Uses engine.
 */
#ifndef HERALD_ENGINE_PREVIEW_H
#define HERALD_ENGINE_PREVIEW_H

#include "base/err.h"
#include "engine/app.h"
#include "transport/transport.h"

#include <cjson/cJSON.h>

enum { PREVIEW_OK = 0, PREVIEW_NOT_FOUND = 1, PREVIEW_NO_CONTEXT = 2, PREVIEW_RENDER = 3 };

/* *out: content.render's answer ({subject, html, text} for email, {text}
 * otherwise). PREVIEW_NO_CONTEXT: erased, or its key is gone; PREVIEW_RENDER:
 * the templates cannot render it (err says why); -1 with err. */
int preview_message(app_t *app, const char *id, tr_channel_t ch, cJSON **out, hd_err_t *err);

#endif
