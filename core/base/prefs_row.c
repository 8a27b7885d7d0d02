/* prefs_row.c - the preferences row's few helpers (see prefs_row.h). */
#include "base/prefs_row.h"

#include <stdlib.h>
#include <string.h>

static const char *const CHANNELS[] = {"email", "sms", "whatsapp"};
_Static_assert(sizeof(CHANNELS) / sizeof(CHANNELS[0]) == PREFS_MAX_CHANNELS,
               "a list of distinct channels must fit PREFS_MAX_CHANNELS");

void prefs_row_free(prefs_row_t *row)
{
    free(row->client_id);
    free(row->name);
    free(row->email);
    free(row->phone);
    free(row->timezone);
    free(row->locale);
    free(row->consent_source);
    memset(row, 0, sizeof(*row));
}

const char *prefs_channel(const char *s)
{
    for (size_t i = 0; i < sizeof(CHANNELS) / sizeof(CHANNELS[0]); i++)
        if (strcmp(s, CHANNELS[i]) == 0)
            return CHANNELS[i];
    return NULL;
}

int prefs_channel_add(const char **list, int *n, const char *s)
{
    const char *ch = prefs_channel(s);
    if (ch == NULL)
        return -1;
    for (int i = 0; i < *n; i++)
        if (list[i] == ch)
            return 0;
    /* distinct names out of PREFS_MAX_CHANNELS: the list always has room */
    list[(*n)++] = ch;
    return 0;
}
