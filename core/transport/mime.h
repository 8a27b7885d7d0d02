/*
 * mime.h - builds the complete email (RFC 5322 headers + MIME body) that the
 * SMTP transport hands to libcurl and the outbox writes as a .eml file.
 *
 * Header values are checked before anything is written: CR, LF or NUL in any
 * of them is refused, so header injection cannot happen here. Non-ASCII text
 * goes out as RFC 2047 encoded-words (subject, names) or RFC 2231 parameters
 * (file names); bodies as quoted-printable (text, HTML) or base64
 * (attachments), so the whole message is 7-bit ASCII with CRLF line endings.
 */
#ifndef HERALD_TRANSPORT_MIME_H
#define HERALD_TRANSPORT_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* One attachment; the builder only reads it (nothing is copied or kept). */
typedef struct mime_attachment {
    const char *filename;     /* required, UTF-8; non-ASCII goes out per RFC 2231 */
    const char *content_type; /* required, bare "type/subtype" tokens, no parameters;
                                 not multipart/ or message/ (those cannot be base64) */
    const uint8_t *data;      /* may be NULL when len is 0 */
    size_t len;
} mime_attachment_t;

/* The message to build. Optional strings may be NULL or "" (both mean absent).
 * The builder only reads the struct; the caller keeps ownership of everything. */
typedef struct mime_email {
    const char *from_name; /* display name, may be NULL or UTF-8 */
    const char *from_addr; /* required */
    const char *to_name;   /* may be NULL or UTF-8 */
    const char *to_addr;   /* required */
    const char *reply_to;  /* address, may be NULL */
    const char *subject;   /* UTF-8, may be empty (NULL is taken as empty) */
    const char *text;      /* text/plain body (UTF-8), may be NULL */
    const char *html;      /* text/html body (UTF-8), may be NULL; at least one of text/html */
    const mime_attachment_t *attachments;
    int nattachments;
    const char *comm_id; /* our communication id -> Message-ID: <comm_id@domain> (stable across
                            retries); required, dot-atom text (a UUID, for instance) */
    const char *domain;  /* sending domain for Message-ID; when NULL, the domain of from_addr */
    int64_t date;        /* Unix seconds for the Date header (RFC 5322 format, +0000) */
    const char *unsubscribe_url;     /* https URL, may be NULL; also adds List-Unsubscribe-Post */
    const char *unsubscribe_mailto;  /* address, may be NULL */
    const char *unsubscribe_subject; /* with unsubscribe_mailto: the mailto's subject, so the
                                        mailbox can tell whose request it is; 1 to 200 of
                                        [A-Za-z0-9._~-]; may be NULL */
    const char *extra_header_name, *extra_header_value; /* optional, e.g. "X-Herald-Attempt" */
} mime_email_t;

/* Builds the whole message (headers + body) with CRLF line endings and
 * appends it to out. Does NOT dot-stuff (libcurl does that). Header lines are
 * folded under 78 characters (a single unbreakable item such as a 254-char
 * address may stand alone on a longer line); no line exceeds 998.
 * Returns 0, or -1 with a precise err and nothing appended, on: CR, LF or NUL
 * in any value that goes into a header (subject, names, addresses, filenames,
 * urls, comm_id, domain, extra header) - "subject: contains a line break
 * (header injection refused)"; a malformed address ("to_addr: not an email
 * address (...)"); neither text nor html; invalid UTF-8 in a text value; an
 * attachment without filename/content_type or with a content_type that is not
 * type/subtype token syntax; an unsubscribe URL that is not https or is over
 * 900 characters; an extra header name that is not a field name or names a
 * header the builder writes itself; a date outside years 1970..9999; the
 * random generator failing (boundaries). */
int mime_build(const mime_email_t *m, buf_t *out, hd_err_t *err);

#endif
