/* sms.c - GSM-7 / UCS-2 detection and segment counting (see sms.h). */
#include "base/sms.h"

#include <stdint.h>

/* The GSM 03.38 basic character set, as Unicode code points. */
static const uint16_t basic[] = {
    '@',   0xA3, '$',  0xA5,  0xE8, 0xE9,  0xF9,  0xEC,  0xF2,  0xC7,  '\n',  0xD8,  0xF8,
    '\r',  0xC5, 0xE5, 0x394, '_',  0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398,
    0x39E, 0xC6, 0xE6, 0xDF,  0xC9, ' ',   '!',   '"',   '#',   0xA4,  '%',   '&',   '\'',
    '(',   ')',  '*',  '+',   ',',  '-',   '.',   '/',   '0',   '1',   '2',   '3',   '4',
    '5',   '6',  '7',  '8',   '9',  ':',   ';',   '<',   '=',   '>',   '?',   0xA1,  'A',
    'B',   'C',  'D',  'E',   'F',  'G',   'H',   'I',   'J',   'K',   'L',   'M',   'N',
    'O',   'P',  'Q',  'R',   'S',  'T',   'U',   'V',   'W',   'X',   'Y',   'Z',   0xC4,
    0xD6,  0xD1, 0xDC, 0xA7,  0xBF, 'a',   'b',   'c',   'd',   'e',   'f',   'g',   'h',
    'i',   'j',  'k',  'l',   'm',  'n',   'o',   'p',   'q',   'r',   's',   't',   'u',
    'v',   'w',  'x',  'y',   'z',  0xE4,  0xF6,  0xF1,  0xFC,  0xE0};

/* The extension table: each costs an escape plus the character. */
static const uint16_t extension[] = {'\f', '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC};

/* Septets for code point cp in GSM-7, or 0 when it has none. */
static int gsm_septets(uint32_t cp)
{
    for (size_t i = 0; i < sizeof(basic) / sizeof(basic[0]); i++)
        if (basic[i] == cp)
            return 1;
    for (size_t i = 0; i < sizeof(extension) / sizeof(extension[0]); i++)
        if (extension[i] == cp)
            return 2;
    return 0;
}

/* Decodes one UTF-8 sequence at s (len bytes left); returns bytes used and
 * the code point, U+FFFD for an invalid sequence (one byte consumed). */
static size_t next_cp(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        v = c & 0x07;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if (n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return n;
}

/* Segments of a concatenated message: characters packed in order, `multi`
 * units a segment, and a character that does not fit whole in what is left
 * (a GSM-7 escape sequence, a UTF-16 surrogate pair) starts the next one:
 * carriers never split them (3GPP TS 23.040 9.2.3.24.1; Twilio counts the
 * same way), so 153 euros (306 septets) take 3 segments, not 2. */
static int pack(const unsigned char *s, size_t len, bool gsm, size_t multi)
{
    int segments = 1;
    size_t used = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += next_cp(s + i, len - i, &cp);
        size_t cost = gsm ? (size_t)gsm_septets(cp) : (cp > 0xFFFF ? 2 : 1);
        if (used + cost > multi) {
            segments++;
            used = 0;
        }
        used += cost;
    }
    return segments;
}

void sms_measure(const char *utf8, size_t len, sms_info_t *out)
{
    const unsigned char *s = (const unsigned char *)utf8;
    size_t septets = 0, utf16 = 0;
    bool gsm = true;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += next_cp(s + i, len - i, &cp);
        int sep = gsm_septets(cp);
        if (sep == 0)
            gsm = false;
        septets += (size_t)sep;
        utf16 += cp > 0xFFFF ? 2 : 1;
    }
    out->gsm7 = gsm;
    out->units = gsm ? septets : utf16;
    size_t single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    if (out->units == 0) {
        out->segments = 0;
        out->per_segment = (int)single;
    } else if (out->units <= single) {
        out->segments = 1;
        out->per_segment = (int)single;
    } else {
        out->segments = pack(s, len, gsm, multi);
        out->per_segment = (int)multi;
    }
}
