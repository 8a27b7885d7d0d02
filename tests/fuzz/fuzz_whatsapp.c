/* fuzz_whatsapp.c - libFuzzer harness: arbitrary bytes as a Meta (WhatsApp)
 * status notification (X-Hub-Signature-256 and the receipts read by
 * http/webhook_parse.c). The signature of the body verifies and one changed
 * byte breaks it; a payload is taken whole or not at all; every receipt has a
 * plain id and status, a time that is not negative, and what is kept of it
 * is a JSON object with its status and never the recipient's number. */
#include "crypto/codec.h"
#include "crypto/hash.h"
#include "http/webhook_parse.h"
#include "http/webhook_sig.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

#define SECRET "fuzz-app-secret"

static void check_signature(const uint8_t *data, size_t size)
{
    uint8_t mac[32];
    hash_hmac_sha256(SECRET, strlen(SECRET), data, size, mac);
    char header[7 + 65] = "sha256=";
    hex_encode(mac, 32, header + 7);
    if (!sig_meta_valid(SECRET, (const char *)data, size, header))
        abort();
    if (sig_meta_valid("another", (const char *)data, size, header) ||
        sig_meta_valid(SECRET, (const char *)data, size, NULL) ||
        sig_meta_valid(SECRET, (const char *)data, size, "sha256="))
        abort();
    if (size == 0)
        return;
    uint8_t *copy = malloc(size);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    copy[size / 2] ^= 0x01;
    if (sig_meta_valid(SECRET, (const char *)copy, size, header))
        abort();
    free(copy);
}

static receipt_kind_t kind_of(const char *s)
{
    return strcmp(s, "sent") == 0        ? RECEIPT_SENT
           : strcmp(s, "delivered") == 0 ? RECEIPT_DELIVERED
           : strcmp(s, "read") == 0      ? RECEIPT_READ
           : strcmp(s, "failed") == 0    ? RECEIPT_FAILED
                                         : RECEIPT_OTHER;
}

static void check_receipt(const receipt_t *r)
{
    if (!wh_plain_token(r->provider_id, 200) || !wh_plain_token(r->raw_status, 32))
        abort();
    if (strcmp(r->provider, "whatsapp") != 0 || strcmp(r->channel, "whatsapp") != 0 ||
        r->kind != kind_of(r->raw_status) || r->occurred_at < 0)
        abort();
    size_t n = strlen(r->provider_id);
    if (strncmp(r->dedup_key, "wa:", 3) != 0 || strncmp(r->dedup_key + 3, r->provider_id, n) != 0 ||
        r->dedup_key[3 + n] != ':' || strcmp(r->dedup_key + 4 + n, r->raw_status) != 0)
        abort();
    if (r->error_code != NULL && (r->error_code[0] == '\0' || strlen(r->error_code) > 31))
        abort();
    cJSON *d = cJSON_Parse(r->details_json);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "status");
    if (!cJSON_IsObject(d) || !cJSON_IsString(st) || strcmp(st->valuestring, r->raw_status) != 0)
        abort();
    const cJSON *it;
    cJSON_ArrayForEach(it, d)
    {
        if (strcmp(it->string, "status") != 0 && strcmp(it->string, "errors") != 0 &&
            strcmp(it->string, "conversation") != 0 && strcmp(it->string, "pricing") != 0)
            abort(); /* never recipient_id (a phone number) */
    }
    cJSON_Delete(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_signature(data, size);
    wh_receipts_t w;
    hd_err_t err;
    wh_status_t st = wh_whatsapp_parse((const char *)data, size, &w, &err);
    if (st != WH_OK) {
        if (w.n != 0 || w.rs != NULL || w.doc != NULL || err.msg[0] == '\0')
            abort(); /* nothing of a refused payload is taken */
        return 0;
    }
    for (int i = 0; i < w.n; i++)
        check_receipt(&w.rs[i]);
    /* the same bytes read the same way again */
    wh_receipts_t again;
    if (wh_whatsapp_parse((const char *)data, size, &again, &err) != WH_OK || again.n != w.n)
        abort();
    for (int i = 0; i < w.n; i++)
        if (strcmp(w.rs[i].dedup_key, again.rs[i].dedup_key) != 0 ||
            w.rs[i].occurred_at != again.rs[i].occurred_at)
            abort();
    wh_receipts_free(&again);
    wh_receipts_free(&w);
    return 0;
}
