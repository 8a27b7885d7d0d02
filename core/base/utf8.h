/*
 * utf8.h - UTF-8 well-formedness (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF), shared by the MIME builder and the engine.
 */
#ifndef HERALD_BASE_UTF8_H
#define HERALD_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed sequence at s (n bytes available), or 0. */
size_t utf8_seq(const unsigned char *s, size_t n);

bool utf8_valid(const char *s, size_t n);

/* Makes the NUL-terminated s well-formed in place: every byte that does not
 * start a well-formed sequence becomes '?' (so a reply cut mid-character by
 * a fixed buffer, or a provider's stray Latin-1, can still be stored). */
void utf8_scrub(char *s);

#endif
