/*
 * locale.h - the shape of a client's locale tag, as the API accepts it
 * (preferences, a request's recipient.locale) and `herald render --locale`:
 * 2-3 letters, then subtags of 2-8 letters or digits after '_' or '-'
 * ("en", "fr_FR", "pt-BR", "zh-Hant-TW"), at most LOCALE_TAG_MAX bytes.
 * Which templates a tag reads is the policy's (scripts/content.lua).
 */
#ifndef HERALD_BASE_LOCALE_H
#define HERALD_BASE_LOCALE_H

#include <stdbool.h>

#define LOCALE_TAG_MAX 35

/* Whether s has the shape of a locale tag. */
bool locale_tag_ok(const char *s);

#endif
