/*
 * sms.h - SMS encoding and segment counting (3GPP TS 23.038 / 23.040).
 *
 * Text that fits the GSM 03.38 default alphabet (plus its extension table,
 * whose characters take two septets) is GSM-7: 160 septets in one segment,
 * 153 per segment when concatenated. Anything else is UCS-2: 70 UTF-16 code
 * units, 67 per segment (characters outside the BMP take two).
 *
 * A concatenated message never splits a two-septet character (escape +
 * character) or a surrogate pair across segments: one that does not fit
 * whole starts the next segment, as carriers and Twilio count.
 */
#ifndef HERALD_BASE_SMS_H
#define HERALD_BASE_SMS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sms_info {
    bool gsm7;       /* false: UCS-2 */
    size_t units;    /* septets (GSM-7) or UTF-16 code units (UCS-2) */
    int segments;    /* 0 for empty text; may exceed ceil(units / per_segment) */
    int per_segment; /* capacity of each segment for this text */
} sms_info_t;

/* Measures UTF-8 text. Invalid UTF-8 bytes count as UCS-2 replacement
 * characters. */
void sms_measure(const char *utf8, size_t len, sms_info_t *out);

#endif
