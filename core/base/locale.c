/*
 * locale.c - the shape of a locale tag (see locale.h). Depends on nothing.
 */
#include "base/locale.h"

#include <ctype.h>
#include <string.h>

bool locale_tag_ok(const char *s)
{
    size_t n = strlen(s), i = 0;
    if (n > LOCALE_TAG_MAX)
        return false;
    while (isalpha((unsigned char)s[i]))
        i++;
    if (i < 2 || i > 3)
        return false;
    while (s[i]) {
        if (s[i] != '_' && s[i] != '-')
            return false;
        size_t j = ++i;
        while (isalnum((unsigned char)s[i]))
            i++;
        if (i - j < 2 || i - j > 8)
            return false;
    }
    return true;
}
