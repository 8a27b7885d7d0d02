"""Bad input gets a clear 400 and changes nothing (issue 17, items 7-10):
a NUL hidden in a JSON string, a NUL or invalid UTF-8 in a query parameter,
a malformed cursor, and a token whose time claim is out of range."""

import json
import uuid

import harness
from harness import HeraldCase, claims, make_jwt

COMMS = "/api/crm/communications"
PREFS = "/api/crm/preferences"


class BadInputTest(HeraldCase):
    start_server = True

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()

    def auth(self, scope="send read"):
        return {"Authorization": "Bearer " + make_jwt(claims(scope=scope))}

    def post_raw(self, path, body):
        hdr = dict(self.auth(), **{"Content-Type": "application/json"})
        return self.server.request("POST", path, body=body, headers=hdr)

    def test_nul_in_a_json_string_is_refused_naming_the_field(self):
        cid = "nul-" + uuid.uuid4().hex[:8]
        body = ('{"client_id": "%s\\u0000x", "email": "a@example.com"}' % cid)
        r = self.post_raw(PREFS, body)
        self.assertError(r, 400, "invalid_json")
        self.assertIn("client_id", r.json["error"]["message"])
        self.assertIn("\\u0000", r.json["error"]["message"])
        # nothing was stored under the cut-short id
        got = self.server.get(PREFS + "/" + cid, headers=self.auth())
        self.assertEqual(got.status, 404, got)
        # an escaped backslash followed by u0000 is text, not a NUL
        ok = self.post_raw(PREFS, '{"client_id": "%s", "name": "a\\\\u0000b"}' % cid)
        self.assertIn(ok.status, (200, 201), ok)
        got = self.server.get(PREFS + "/" + cid, headers=self.auth())
        self.assertEqual(got.json["name"], "a\\u0000b")

    def test_nul_in_a_message_request_stores_nothing(self):
        plan = "nul-plan-" + uuid.uuid4().hex[:8]
        body = json.dumps({"plan_id": plan, "client_id": "c-42", "message_type": "welcome",
                           "recipient": {"email": "a@example.com"}}).replace("c-42", "c-42\\u0000x")
        r = self.post_raw(COMMS, body)
        self.assertError(r, 400, "invalid_json")
        self.assertIn("client_id", r.json["error"]["message"])
        listed = self.server.get(COMMS + "?plan_id=" + plan, headers=self.auth())
        self.assertEqual(listed.status, 200, listed)
        self.assertEqual(listed.json["items"], [])

    def test_context_strings_and_depth_are_bounded_at_acceptance(self):
        plan = "big-ctx-" + uuid.uuid4().hex[:8]
        base = {"plan_id": plan, "client_id": "c-big", "message_type": "welcome",
                "recipient": {"email": "a@example.com"}}
        cases = [
            ({"event_type": "wedding", "event_date": "2" * 65000}, "context.event_date"),
            ({"vendors": [{"name": "a"}, {"name": "b", "url": "x" * 5000}]},
             "context.vendors[1].url"),
            ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": "deep"}}}}}}}}}},
             "context.a.b.c.d.e.f.g.h"),
        ]
        for ctx, path in cases:
            with self.subTest(path=path):
                r = self.post_raw(COMMS, json.dumps(dict(base, context=ctx)))
                self.assertError(r, 400, "invalid_request")
                self.assertIn(path, r.json["error"]["message"])
                self.assertNotIn("x" * 50, r.json["error"]["message"])  # never echoed
        # at the bound: an undeclared field is kept (and named in the warnings)
        ctx = dict(harness.required_contexts()["welcome"], notes="w" * 4096)
        ok = self.post_raw(COMMS, json.dumps(dict(base, context=ctx)))
        self.assertEqual(ok.status, 202, ok)
        self.assertEqual([w["path"] for w in ok.json["warnings"]], ["notes"])
        listed = self.server.get(COMMS + "?plan_id=" + plan, headers=self.auth())
        self.assertEqual(len(listed.json["items"]), 1, listed)

    def test_nul_or_bad_utf8_in_a_query_is_400_never_an_unfiltered_answer(self):
        for query, why in [("client_id=abc%00def", "NUL"), ("status=sent%00", "NUL"),
                           ("plan_id=%ff%fe", "UTF-8"), ("a%00b=1", "NUL")]:
            with self.subTest(query=query):
                r = self.server.get(COMMS + "?" + query, headers=self.auth())
                self.assertError(r, 400, "invalid_query")
                self.assertIn(why, r.json["error"]["message"])

    def test_malformed_cursor_is_400_with_the_reason(self):
        for cursor in ["x", "%2F%2F%2F", "MTIz", "OTk5OTk5OTk5OTk5OTk5OTk5OTksMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"]:
            with self.subTest(cursor=cursor):
                r = self.server.get(COMMS + "?cursor=" + cursor, headers=self.auth())
                self.assertError(r, 400, "invalid_request")
                self.assertIn("cursor", r.json["error"]["message"])

    def test_out_of_range_time_claims_are_401(self):
        # json.dumps cannot write 1e999: the payload is written as text (make_jwt
        # signs a raw str payload as is)
        good = json.dumps(claims(scope="read"), separators=(",", ":"))
        r = self.server.get(COMMS + "?limit=1", headers={"Authorization": "Bearer " +
                                                          make_jwt(good)})
        self.assertEqual(r.status, 200, r)
        exp = json.loads(good)["exp"]
        for bad in ["1e999", "-1e999", "9.3e18", "4102444800.5", "-1"]:
            with self.subTest(exp=bad):
                token = make_jwt(good.replace('"exp":%d' % exp, '"exp":%s' % bad))
                r = self.server.get(COMMS, headers={"Authorization": "Bearer " + token})
                self.assertError(r, 401)


if __name__ == "__main__":
    harness.main()
