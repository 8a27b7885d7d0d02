/*
 * mime_encode.h - the encodings of the email builder, shared by mime.c only:
 * folded header lines, RFC 2047 encoded-words for unstructured text and
 * display names, RFC 2231 parameters, quoted-printable and base64 bodies.
 *
 * Nothing here checks its input: mime_build checks every value (no CR, LF
 * or NUL in a header value, valid UTF-8, well-formed addresses) before it
 * writes a byte, and these functions rely on it.
 */
#ifndef HERALD_TRANSPORT_MIME_ENCODE_H
#define HERALD_TRANSPORT_MIME_ENCODE_H

#include "base/buf.h"

#include <stddef.h>
#include <stdint.h>

/* One header being written: items go after a space, or after CRLF SP when
 * they would pass column 78. Folding only ever replaces a single space that
 * separates items, so unfolding gives back exactly the unfolded header. */
typedef struct mime_hdr {
    buf_t *b;
    size_t col;
    int items;
} mime_hdr_t;

/* Starts "Name:" in b. */
void mime_hdr_begin(mime_hdr_t *h, buf_t *b, const char *name);
/* Adds one unbreakable item of n bytes (or of the C string s); an item too
 * long for any line stays on the "Name:" line. */
void mime_hdr_item(mime_hdr_t *h, const char *s, size_t n);
void mime_hdr_items(mime_hdr_t *h, const char *s);
/* Ends the header line (CRLF). */
void mime_hdr_end(mime_hdr_t *h);

/* Unstructured text (Subject, an extra header): as it is when it is plain
 * ASCII words that fit, otherwise UTF-8 encoded-words. */
void mime_put_unstructured(mime_hdr_t *h, const char *s);

/* A whole "Header: Name <addr>" line (or the bare address without a name),
 * the name's white space normalised. */
void mime_put_mailbox(buf_t *b, const char *header, const char *name, const char *addr);

/* `attr="value"`, or RFC 2231 `attr*=UTF-8''...` segments for long or
 * non-ASCII values (file names). */
void mime_put_param(mime_hdr_t *h, const char *attr, const char *v);

/* Quoted-printable body of n bytes of text, lines under 76, always ending
 * in CRLF (see mime_encode.c for the details). */
void mime_qp_encode(buf_t *b, const char *s, size_t n);

/* Base64 of len bytes in lines of 76 separated by CRLF, with no CRLF after
 * the last line. */
void mime_b64_lines(buf_t *e, const uint8_t *data, size_t len);

#endif
