/*
 * test_webhook_parse.c - unit tests for http/webhook_parse: the receipts read
 * from a Twilio form and a Meta notification without a server (what the
 * webhooks do between the signature and the engine), and the payloads the
 * fuzz harnesses found wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/webhook_parse.h"

#include <stdio.h>
#include <string.h>

static void test_twilio_receipt(void **state)
{
    (void)state;
    static const char body[] = "MessageSid=SM99aa&MessageStatus=undelivered&ErrorCode=30003"
                               "&ErrorMessage=Unreachable&To=%2B447700900123&From=Herald";
    form_t f;
    hd_err_t err;
    assert_int_equal(form_parse(body, strlen(body), &f, &err), 0);
    wh_receipts_t w;
    assert_int_equal(wh_twilio_parse(&f, "c-1", &w, &err), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.rs[0].provider_id, "SM99aa");
    assert_int_equal(w.rs[0].kind, RECEIPT_FAILED);
    assert_string_equal(w.rs[0].dedup_key, "twilio:SM99aa:undelivered");
    assert_string_equal(w.rs[0].error_code, "30003");
    assert_string_equal(w.rs[0].comm_hint, "c-1");
    /* the event keeps what the receipt says about delivery, not the numbers */
    assert_null(strstr(w.rs[0].details_json, "447700900123"));
    assert_null(strstr(w.rs[0].details_json, "From"));
    wh_receipts_free(&w);
    form_free(&f);
}

static void test_twilio_refusals(void **state)
{
    (void)state;
    static const char *const bodies[] = {"MessageStatus=sent",
                                         "MessageSid=SM%20x&MessageStatus=sent", "MessageSid=SM1",
                                         "MessageSid=SM1&MessageStatus=s%3Ct"};
    static const char *const fields[] = {
        "MessageSid:", "MessageSid:", "MessageStatus:", "MessageStatus:"};
    for (int i = 0; i < 4; i++) {
        form_t f;
        hd_err_t err;
        assert_int_equal(form_parse(bodies[i], strlen(bodies[i]), &f, &err), 0);
        wh_receipts_t w;
        assert_int_equal(wh_twilio_parse(&f, NULL, &w, &err), -1);
        assert_int_equal(strncmp(err.msg, fields[i], strlen(fields[i])), 0);
        assert_null(w.rs);
        form_free(&f);
    }
}

static void test_whatsapp_receipts(void **state)
{
    (void)state;
    static const char body[] =
        "{\"entry\":[{\"changes\":[{\"value\":{\"statuses\":["
        "{\"id\":\"wamid.1\",\"status\":\"read\",\"timestamp\":\"1795856400\","
        "\"recipient_id\":\"16505551234\",\"biz_opaque_callback_data\":\"c-9\"},"
        "{\"id\":\"wamid.2\",\"status\":\"failed\",\"timestamp\":1795856401,"
        "\"errors\":[{\"code\":131026,\"title\":\"Message undeliverable\"}]}]}}]}]}";
    wh_receipts_t w;
    hd_err_t err;
    assert_int_equal(wh_whatsapp_parse(body, strlen(body), &w, &err), WH_OK);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.rs[0].kind, RECEIPT_READ);
    assert_int_equal(w.rs[0].occurred_at, 1795856400);
    assert_string_equal(w.rs[0].comm_hint, "c-9");
    assert_string_equal(w.rs[0].dedup_key, "wa:wamid.1:read");
    assert_null(strstr(w.rs[0].details_json, "16505551234"));
    assert_int_equal(w.rs[1].kind, RECEIPT_FAILED);
    assert_int_equal(w.rs[1].occurred_at, 1795856401);
    assert_string_equal(w.rs[1].error_code, "131026");
    assert_string_equal(w.rs[1].error_text, "Message undeliverable");
    wh_receipts_free(&w);
}

/* A timestamp number out of int64_t's range was converted as it came:
 * undefined behaviour (UBSan stops on it). Now it is no time: 0, "now". */
static void test_whatsapp_timestamp_out_of_range(void **state)
{
    (void)state;
    static const char *const ts[] = {"1e300", "-1e300", "9.3e18", "0.5", "-5"};
    for (int i = 0; i < 5; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"entry\":[{\"changes\":[{\"value\":{\"statuses\":[{\"id\":\"w\","
                 "\"status\":\"sent\",\"timestamp\":%s}]}}]}]}",
                 ts[i]);
        wh_receipts_t w;
        hd_err_t err;
        assert_int_equal(wh_whatsapp_parse(body, strlen(body), &w, &err), WH_OK);
        assert_int_equal(w.n, 1);
        assert_int_equal(w.rs[0].occurred_at, 0);
        wh_receipts_free(&w);
    }
}

static void test_whatsapp_refusals(void **state)
{
    (void)state;
    wh_receipts_t w;
    hd_err_t err;
    assert_int_equal(wh_whatsapp_parse("[1]", 3, &w, &err), WH_INVALID_JSON);
    assert_null(w.rs);
    /* checked whole: a bad second status takes nothing of the first */
    static const char body[] = "{\"entry\":[{\"changes\":[{\"value\":{\"statuses\":["
                               "{\"id\":\"w1\",\"status\":\"sent\"},{\"id\":\"w 2\",\"status\":"
                               "\"sent\"}]}}]}]}";
    assert_int_equal(wh_whatsapp_parse(body, strlen(body), &w, &err), WH_INVALID_FIELD);
    assert_non_null(strstr(err.msg, "entry[0].changes[0].value.statuses[1]"));
    assert_null(w.rs);
    assert_int_equal(w.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twilio_receipt),
        cmocka_unit_test(test_twilio_refusals),
        cmocka_unit_test(test_whatsapp_receipts),
        cmocka_unit_test(test_whatsapp_timestamp_out_of_range),
        cmocka_unit_test(test_whatsapp_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
