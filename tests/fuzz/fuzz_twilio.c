/* fuzz_twilio.c - libFuzzer harness: arbitrary bytes as a Twilio status
 * callback body (form decoding, X-Twilio-Signature, and the receipt read
 * from it by http/webhook_parse.c). The signature over the form verifies and
 * one changed byte of a value breaks it; a receipt has a plain provider id
 * and status, and what is kept of it never holds a phone number. */
#include "http/form.h"
#include "http/webhook_parse.h"
#include "http/webhook_sig.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

#define TOKEN "fuzz-auth-token-0123456789abcdef"
#define URL   "https://herald.example/api/crm/webhooks/twilio?comm_id=x"

static void check_signature(form_t *f)
{
    char sig[32];
    sig_twilio(TOKEN, URL, f, sig);
    if (!sig_twilio_valid(TOKEN, URL, f, sig))
        abort();
    if (sig_twilio_valid("another-token", URL, f, sig) || sig_twilio_valid(TOKEN, URL, f, NULL) ||
        sig_twilio_valid(TOKEN, URL, f, ""))
        abort();
    if (f->n == 0)
        return;
    /* every posted value is covered: one more byte in the last one fails */
    form_pair_t *p = &f->pairs[f->n - 1];
    size_t n = strlen(p->value);
    char *v = malloc(n + 2);
    if (v == NULL)
        abort();
    memcpy(v, p->value, n);
    v[n] = 'x', v[n + 1] = '\0';
    char *orig = p->value;
    p->value = v;
    if (sig_twilio_valid(TOKEN, URL, f, sig))
        abort();
    p->value = orig;
    free(v);
}

static void check_receipt(const form_t *f, const receipt_t *r)
{
    if (!wh_plain_token(r->provider_id, 64) || !wh_plain_token(r->raw_status, 32))
        abort();
    if (strcmp(r->provider, "twilio") != 0 || strcmp(r->channel, "sms") != 0)
        abort();
    size_t n = strlen(r->provider_id), m = strlen(r->raw_status);
    if (strncmp(r->dedup_key, "twilio:", 7) != 0 ||
        strncmp(r->dedup_key + 7, r->provider_id, n) != 0 || r->dedup_key[7 + n] != ':' ||
        strcmp(r->dedup_key + 8 + n, r->raw_status) != 0 || strlen(r->dedup_key) != 8 + n + m)
        abort();
    if (r->error_code != NULL && r->error_code[0] == '\0')
        abort();
    cJSON *d = cJSON_Parse(r->details_json);
    if (!cJSON_IsObject(d))
        abort();
    static const char *const kept[] = {"MessageStatus", "SmsStatus",      "ErrorCode",
                                       "ErrorMessage",  "RawDlrDoneDate", "ApiVersion"};
    const cJSON *it;
    cJSON_ArrayForEach(it, d)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
            known |= strcmp(it->string, kept[i]) == 0;
        if (!known) /* never From, To or anything else a sender posts */
            abort();
        if (!cJSON_IsString(it) || strcmp(it->valuestring, form_get(f, it->string)) != 0)
            abort();
    }
    cJSON_Delete(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    form_t f;
    hd_err_t err;
    if (form_parse((const char *)data, size, &f, &err) != 0)
        return 0;
    check_signature(&f);
    wh_receipts_t w;
    if (wh_twilio_parse(&f, NULL, &w, &err) == 0) {
        if (w.n != 1)
            abort();
        check_receipt(&f, &w.rs[0]);
    } else if (w.n != 0 || w.rs != NULL ||
               (strncmp(err.msg, "MessageSid:", 11) != 0 &&
                strncmp(err.msg, "MessageStatus:", 14) != 0)) {
        abort();
    }
    wh_receipts_free(&w);
    form_free(&f);
    return 0;
}
