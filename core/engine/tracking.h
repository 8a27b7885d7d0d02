/*
 * tracking.h - open and click tracking for email (DESIGN.md §5: /t/o, /t/c).
 *
 * A token is base64url(payload || mac), 70 characters: payload = version 2,
 * kind ('o' open pixel, 'c' click, 'u' unsubscribe: index 0, never expiring), the id of the key
 * that signed it (4 bytes: the encryption key's id, crypto/field.h fe_key_id), expiry (Unix
 * seconds, 4 bytes big-endian), the communication id (16 bytes), the link
 * index (2 bytes) and the first 8 bytes of SHA-256 of the target URL (zero
 * for the pixel); mac = the first 16 bytes of HMAC-SHA256 over the payload
 * under a key derived from that encryption key ("herald/tracking/v1").
 *
 * Every key of the keyring verifies (the current encryption key and
 * HERALD_ENCRYPTION_OLD_KEYS), so rotating the encryption key keeps links
 * already sent working for as long as the old key stays configured; a
 * token naming a key no longer configured is invalid. Version 1 tokens (64
 * characters, issued before key ids: the same fields without the key id)
 * name no key; they are checked against every key of the ring, since the
 * key that made them cannot be told from the token.
 *
 * The URLs themselves are stored with the
 * message (crm_communications.tracked_links): a click redirects only to the
 * stored URL whose hash the token carries. So a token can be neither guessed
 * nor enumerated, and a tampered or expired one never redirects.
 */
#ifndef HERALD_ENGINE_TRACKING_H
#define HERALD_ENGINE_TRACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct track_key {
    uint8_t k[32];
    uint8_t id[4]; /* the encryption key's id (fe_key_id), carried by tokens */
} track_key_t;

void track_key_derive(const uint8_t enc_key[32], track_key_t *out);

/* At most the current key and HERALD_ENCRYPTION_OLD_KEYS (CFG_MAX_OLD_KEYS). */
#define TRACK_MAX_KEYS 9

/* The tracking keys of a keyring: keys[0] (from the current encryption key)
 * signs, all of them verify. */
typedef struct track_keys {
    track_key_t keys[TRACK_MAX_KEYS];
    int n;
} track_keys_t;

/* Derives the ring from the current encryption key and nold older ones
 * (those past TRACK_MAX_KEYS - 1 are ignored; the configuration refuses
 * more). */
void track_keys_init(track_keys_t *ring, const uint8_t current[32], const uint8_t (*old)[32],
                     int nold);

/* A new token (caller frees). url only for kind 'c' (its hash is bound). */
char *track_token(const track_key_t *key, char kind, const char *comm_id, int index,
                  int64_t expires, const char *url);

typedef struct track_claim {
    char kind;
    char comm_id[37];
    int index;
    int64_t expires;
    uint8_t url_hash[8]; /* 'c': the first 8 bytes of SHA-256 of the URL */
} track_claim_t;

typedef enum { TRACK_OK = 0, TRACK_INVALID, TRACK_EXPIRED } track_check_t;

/* Checks a token against one key (MAC in constant time, then expiry
 * against now): a version 2 token must name key's id. */
track_check_t track_verify(const track_key_t *key, const char *token, int64_t now,
                           track_claim_t *out);

/* Checks a token against a ring: a version 2 token with the key its id
 * names (TRACK_INVALID when that key is not in the ring), a version 1
 * token with each key in turn. */
track_check_t track_verify_ring(const track_keys_t *ring, const char *token, int64_t now,
                                track_claim_t *out);

/* Whether url is the one a click claim was made for. */
bool track_url_matches(const track_claim_t *c, const char *url);

/* A URL fit to track and to put in a Location header: http(s), no
 * whitespace or control characters, at most 2,000 bytes. */
bool track_url_ok(const char *url);

/* An email's HTML with every <a href> whose scheme is not http, https,
 * mailto or tel (javascript:, data:, vbscript:, ... however spelled: case,
 * entities, embedded whitespace) replaced by "#", so it is never a link.
 * A URL without a scheme stays. *dropped: how many were replaced. Caller
 * frees. */
char *track_safe_links(const char *html, int *dropped);

/* Rewrites an email's HTML: every <a href="http(s)://..."> (except links
 * under skip_prefix, the unsubscribe page) goes through base/t/c/{token},
 * and a 1x1 pixel base/t/o/{token}.gif goes before </body>. Returns the new
 * HTML (caller frees); *links_json gets the JSON array of the original URLs
 * by link index (caller frees), to be stored with the message. */
char *track_rewrite_html(const track_key_t *key, const char *html, const char *base,
                         const char *comm_id, int64_t expires, const char *skip_prefix,
                         char **links_json);

#endif
