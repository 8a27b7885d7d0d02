/*
 * prefs_row.h - one client's preferences as plain data: the stored row
 * (prefs_row_t), a change to it (prefs_patch_t) and the outcomes of reading
 * and writing them. Shared by the repository (store/repo_prefs), its cache
 * (cache/prefs_cache), the composition (engine/prefs) and the API
 * (http/api_prefs), none of which sees the others' encodings. Uses nothing.
 */
#ifndef HERALD_BASE_PREFS_ROW_H
#define HERALD_BASE_PREFS_ROW_H

#include <stdbool.h>
#include <stdint.h>

#define PREFS_MAX_CHANNELS 3
#define PREFS_CLOCK_SIZE   6  /* "HH:MM" and its NUL */
#define PREFS_TIME_SIZE    32 /* "YYYY-MM-DDTHH:MM:SSZ" and room to spare */

/* Outcomes of reading and writing preferences. */
enum {
    PREFS_OK = 0,
    PREFS_NOT_FOUND = 1,
    PREFS_ERR_DB = -1,      /* database unreachable or failing: 503 */
    PREFS_ERR_CRYPTO = -2,  /* a stored value cannot be decrypted: 500 */
    PREFS_ERR_INVALID = -3, /* a value the schema refuses: 400 */
};

/* A client's stored preferences, addresses in clear. The strings are owned
 * by the row (prefs_row_free); channel names are the static strings of
 * prefs_channel, so a row can be read without knowing who filled it. */
typedef struct prefs_row {
    char *client_id;
    char *name, *email, *phone; /* NULL: none */
    char *timezone;             /* IANA zone */
    char *locale;
    bool channels_stated; /* false: no stated order (every channel allowed) */
    int nchannels;
    const char *channels[PREFS_MAX_CHANNELS]; /* in the client's order */
    int nopted_out;
    const char *opted_out[PREFS_MAX_CHANNELS];
    char quiet_start[PREFS_CLOCK_SIZE], quiet_end[PREFS_CLOCK_SIZE]; /* both "" : none */
    char digest_time[PREFS_CLOCK_SIZE];                              /* local "HH:MM" */
    bool consent_given;
    char consent_at[PREFS_TIME_SIZE]; /* RFC 3339 UTC; "" : never stated */
    char *consent_source;             /* NULL: none */
    char created_at[PREFS_TIME_SIZE], updated_at[PREFS_TIME_SIZE];
    /* updated_at in microseconds: strictly increasing per row, so it orders
     * copies of the row (the cache keeps only the newest) */
    int64_t version;
} prefs_row_t;

/* Frees the row's strings and zeroes it (a zeroed row may be freed). */
void prefs_row_free(prefs_row_t *row);

/* The static name of the channel s names ("email", "sms", "whatsapp"), or
 * NULL when s is none of them. */
const char *prefs_channel(const char *s);

/* Appends channel s to list (*n entries, room for PREFS_MAX_CHANNELS). A
 * channel already listed is not added again (no writer lists one twice; a
 * list is an order of distinct channels). 0, or -1 when s is not a channel. */
int prefs_channel_add(const char **list, int *n, const char *s);

/* What a write does to a nullable field. */
typedef enum { PREFS_KEEP = 0, PREFS_SET, PREFS_CLEAR } prefs_op_t;

/* A checked change to one client's preferences. Strings are borrowed and
 * must live through the save; values are already valid (the HTTP layer
 * checks them) and the schema's CHECKs are the backstop. */
typedef struct prefs_patch {
    const char *client_id;
    prefs_op_t name_op, email_op, phone_op, quiet_op;
    const char *name, *email, *phone;            /* PREFS_SET: the new value */
    const char *quiet_start, *quiet_end;         /* "HH:MM" */
    const char *timezone, *locale, *digest_time; /* NULL: keep */
    bool set_channels, set_opted_out;
    const char *channels[PREFS_MAX_CHANNELS];
    int nchannels;
    const char *opted_out[PREFS_MAX_CHANNELS];
    int nopted_out;
    /* consent: given is required; at defaults to now when given changes and
     * to the stored time otherwise; source left out keeps the stored source
     * unless given changes (then it is cleared). */
    bool set_consent, consent_given, consent_at_set, consent_source_set;
    int64_t consent_at;         /* Unix seconds, when consent_at_set */
    const char *consent_source; /* NULL: none */
} prefs_patch_t;

#endif
