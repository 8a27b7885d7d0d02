"""HTTP contract of `herald serve`: 404/405/413/415/400 with the JSON error
shape, X-Request-Id, W3C traceparent and the access log line."""

import json
import re
import time
import uuid

import harness
from harness import MAX_BODY, HeraldCase

TOKEN_PATH = "/api/crm/auth/token"
JSON = {"Content-Type": "application/json"}
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class HttpContractTest(HeraldCase):
    start_server = True

    # -- 404 / 405 --------------------------------------------------------------

    def test_unknown_path_is_404_json(self):
        for method, path in [("GET", "/api/crm/nope"), ("GET", "/"),
                             ("GET", "/api/crm/health/extra"), ("DELETE", "/api/crm/nope")]:
            with self.subTest(method=method, path=path):
                r = self.server.request(method, path)
                self.assertError(r, 404, "not_found")

    def test_unknown_path_with_json_body_is_404_not_415_or_401(self):
        r = self.server.request("POST", "/api/crm/does-not-exist", body="{}",
                                headers={"Content-Type": "text/plain"})
        self.assertError(r, 404, "not_found")

    def test_encoded_nul_slash_or_double_encoding_never_reach_a_route(self):
        # The path is decoded once, by the router: %00 must not cut it short,
        # %2F must not add a segment, %2541 must not become "A".
        for path in ["/api/crm/health%00junk", "/api/crm%2Fhealth", "/api/crm/%2568ealth",
                     "/api/crm/health%2F"]:
            with self.subTest(path=path):
                status, headers, body = harness.raw_request(
                    self.server.port,
                    ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
                self.assertEqual(status, 404, (path, body))

    def test_invalid_utf8_in_the_path_keeps_log_and_body_json(self):
        status, headers, body = harness.raw_request(
            self.server.port, b"GET /api/%ff%fe\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 404)
        json.loads(body)  # raises on invalid JSON
        time.sleep(0.2)
        with open(self.server.stderr_path, "rb") as f:
            raw = f.read()
        lines = [l for l in raw.splitlines() if b'"/api/%ff%fe' in l]
        self.assertTrue(lines, "no access log line for the request")
        for line in lines:
            json.loads(line.decode("utf-8"))  # strict: invalid UTF-8 raises

    def test_query_string_does_not_change_the_route(self):
        r = self.server.get("/api/crm/health?verbose=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ok", r)

    def test_wrong_method_is_405_with_allow(self):
        cases = [("DELETE", "/api/crm/health", "GET"),
                 ("POST", "/api/crm/health", "GET"),
                 ("PUT", "/metrics", "GET"),
                 ("GET", TOKEN_PATH, "POST"),
                 ("DELETE", "/api/crm/auth/refresh", "POST"),
                 ("POST", "/api/crm/auth/me", "GET")]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                r = self.server.request(method, path, body=b"{}" if method != "GET" else None,
                                        headers=JSON)
                self.assertError(r, 405, "method_not_allowed")
                allow = r.header("Allow")
                self.assertIsNotNone(allow, "405 without an Allow header: %r" % (r,))
                methods = {m.strip() for m in allow.split(",")}
                self.assertIn(allowed, methods, allow)
                self.assertNotIn(method, methods, allow)

    # -- 413 --------------------------------------------------------------------

    def _body_of_size(self, n):
        head, tail = b'{"api_key":"', b'"}'
        return head + b"x" * (n - len(head) - len(tail)) + tail

    def test_body_at_the_limit_is_accepted(self):
        body = self._body_of_size(MAX_BODY)
        self.assertEqual(len(body), MAX_BODY)
        r = self.server.request("POST", TOKEN_PATH, body=body, headers=JSON)
        # read and parsed: an invalid key, not a size problem
        self.assertError(r, 401, "unauthorized")

    def _raw_post_head(self, length, extra=b""):
        return (b"POST " + TOKEN_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: " + str(length).encode()
                + b"\r\n" + extra + b"\r\n")

    def test_content_length_one_over_the_limit_is_413(self):
        # The client announces MAX_BODY + 1 bytes and sends the start of them;
        # the server may answer without reading the rest (a client that sent
        # everything first could lose the answer to the server's RST).
        req = self._raw_post_head(MAX_BODY + 1) + self._body_of_size(MAX_BODY + 1)[:1024]
        status, headers, body = harness.raw_request(self.server.port, req, timeout=10)
        self.assertEqual(status, 413, (headers, body))
        self.assertEqual(headers.get("content-type", "").split(";")[0], "application/json")
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")

    def test_expect_100_continue_over_the_limit_is_413_not_100(self):
        req = self._raw_post_head(MAX_BODY + 1, b"Expect: 100-continue\r\n")
        status, headers, body = harness.raw_request(self.server.port, req, timeout=10)
        self.assertEqual(status, 413, (headers, body))
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")

    def test_huge_content_length_is_refused_before_the_body(self):
        # Only the head (and a little body) is sent: the answer must not wait
        # for the 5 MB the client announced.
        req = self._raw_post_head(5000000) + b'{"api_key":"'
        t0 = time.time()
        status, headers, body = harness.raw_request(self.server.port, req, timeout=10)
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(status, 413, (headers, body))
        self.assertEqual(headers.get("content-type", "").split(";")[0], "application/json")
        self.assertIn(b'"payload_too_large"', body)

    def _chunks(self, total, size=64 * 1024):
        sent = 0
        yield b'{"api_key":"'
        sent += 12
        while sent < total - 2:
            n = min(size, total - 2 - sent)
            yield b"x" * n
            sent += n
        yield b'"}'

    def test_chunked_body_over_the_limit_is_413(self):
        r = self.server.request("POST", TOKEN_PATH, body=self._chunks(MAX_BODY + 200 * 1024),
                                headers={"Content-Type": "application/json",
                                         "Transfer-Encoding": "chunked"},
                                encode_chunked=True)
        self.assertError(r, 413, "payload_too_large")

    def test_chunked_body_just_over_the_limit_is_413(self):
        r = self.server.request("POST", TOKEN_PATH, body=self._chunks(MAX_BODY + 1),
                                headers={"Content-Type": "application/json",
                                         "Transfer-Encoding": "chunked"},
                                encode_chunked=True)
        self.assertError(r, 413, "payload_too_large")

    def test_chunked_body_at_the_limit_is_read(self):
        r = self.server.request("POST", TOKEN_PATH, body=self._chunks(MAX_BODY),
                                headers={"Content-Type": "application/json",
                                         "Transfer-Encoding": "chunked"},
                                encode_chunked=True)
        self.assertError(r, 401, "unauthorized")

    def test_chunked_body_under_the_limit_is_read(self):
        r = self.server.request("POST", TOKEN_PATH, body=self._chunks(4096),
                                headers={"Content-Type": "application/json",
                                         "Transfer-Encoding": "chunked"},
                                encode_chunked=True)
        self.assertError(r, 401, "unauthorized")

    # -- 415 --------------------------------------------------------------------

    def test_wrong_content_type_is_415(self):
        for ct in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp",
                   "multipart/form-data; boundary=x", None]:
            with self.subTest(content_type=ct):
                headers = {"Content-Type": ct} if ct else {}
                r = self.server.request("POST", TOKEN_PATH, body=b'{"api_key":"x"}',
                                        headers=headers)
                self.assertError(r, 415, "unsupported_media_type")

    def test_json_content_type_with_parameters_is_accepted(self):
        for ct in ["application/json; charset=utf-8", "Application/JSON"]:
            with self.subTest(content_type=ct):
                r = self.server.request("POST", TOKEN_PATH, body=b'{"api_key":"hk_nope"}',
                                        headers={"Content-Type": ct})
                self.assertError(r, 401, "unauthorized")

    # -- 400 --------------------------------------------------------------------

    def test_empty_body_is_400(self):
        r = self.server.request("POST", TOKEN_PATH, body=b"", headers=JSON)
        self.assertError(r, 400)

    def test_malformed_json_names_the_byte_offset(self):
        # Offsets are 0-based and point at the first byte that cannot continue
        # the document, counted by hand:
        #   {"api_key": }          '{'=0, '"'=1..9, ':'=10, ' '=11, '}'=12
        #   {\n  "api_key": tru }  '{'=0, '\n'=1, 2-3 spaces, '"api_key"'=4..12,
        #                          ':'=13, ' '=14, 't'=15
        cases = [(b'{"api_key": }', 12), (b'{\n  "api_key": tru }', 15)]
        for body, offset in cases:
            with self.subTest(body=body):
                self.assertIn(body[offset:offset + 1], (b"}", b"t"))
                r = self.server.request("POST", TOKEN_PATH, body=body, headers=JSON)
                err = self.assertError(r, 400)
                self.assertIn("malformed JSON at byte %d" % offset, err["message"])
                # exactly that number, not a prefix of a longer one
                self.assertRegex(err["message"], r"at byte %d(\D|$)" % offset)

    def test_trailing_garbage_after_the_object_is_malformed(self):
        # RFC 8259: JSON-text = ws value ws. '{"api_key":"x"} xyz' is not JSON;
        # the first byte that cannot follow is the 'x' at offset 16.
        body = b'{"api_key":"x"} xyz'
        self.assertEqual(body[16:17], b"x")
        r = self.server.request("POST", TOKEN_PATH, body=body, headers=JSON)
        err = self.assertError(r, 400)
        self.assertIn("malformed JSON at byte 16", err["message"])

    def test_deeply_nested_json_is_400_not_a_crash(self):
        for body in [b"[" * 100000, b'{"a":' * 50000 + b"1" + b"}" * 50000]:
            with self.subTest(size=len(body)):
                r = self.server.request("POST", TOKEN_PATH, body=body, headers=JSON)
                self.assertError(r, 400)
        self.assertEqual(self.server.get("/api/crm/health").status, 200)

    def test_json_that_is_not_an_object_is_400(self):
        for body in [b"[1,2]", b'"hk_x"', b"42", b"null"]:
            with self.subTest(body=body):
                r = self.server.request("POST", TOKEN_PATH, body=body, headers=JSON)
                self.assertError(r, 400)

    # -- request id --------------------------------------------------------------

    def test_safe_request_id_is_echoed_and_logged(self):
        rid = "it-" + uuid.uuid4().hex + ".A_b"
        r = self.server.get("/api/crm/health", headers={"X-Request-Id": rid})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Request-Id"), rid)
        line = self.server.wait_log(lambda l: l.get("msg") == "request"
                                    and l.get("request_id") == rid)
        self.assertIsNotNone(line, "no access log line with request_id %s" % rid)

    def test_request_id_of_64_chars_is_kept(self):
        rid = ("rid" + uuid.uuid4().hex * 2)[:64]
        r = self.server.get("/api/crm/health", headers={"X-Request-Id": rid})
        self.assertEqual(r.header("X-Request-Id"), rid)

    def test_unsafe_request_id_is_replaced(self):
        for bad in ["has space", "a" * 65, "x;y", "<script>", "line\tbreak", "ü-non-ascii"]:
            with self.subTest(request_id=bad):
                r = self.server.get("/api/crm/health",
                                    headers={"X-Request-Id": bad.encode("utf-8")})
                got = r.header("X-Request-Id")
                self.assertIsNotNone(got)
                self.assertNotEqual(got, bad)
                self.assertRegex(got, SAFE_ID)

    def test_request_id_is_generated_when_absent(self):
        ids = set()
        for _ in range(3):
            r = self.server.get("/api/crm/health")
            rid = r.header("X-Request-Id")
            self.assertIsNotNone(rid, r)
            self.assertRegex(rid, SAFE_ID)
            ids.add(rid)
        self.assertEqual(len(ids), 3, "generated request ids repeat: %r" % ids)

    def test_error_responses_carry_a_request_id_too(self):
        rid = "err-" + uuid.uuid4().hex
        r = self.server.get("/api/crm/nope", headers={"X-Request-Id": rid})
        self.assertError(r, 404, "not_found")
        self.assertEqual(r.header("X-Request-Id"), rid)
        line = self.server.wait_log(lambda l: l.get("msg") == "request"
                                    and l.get("request_id") == rid)
        self.assertIsNotNone(line)
        self.assertEqual(line.get("status"), 404)

    # -- traceparent --------------------------------------------------------------

    def test_valid_traceparent_keeps_the_trace_id(self):
        trace = uuid.uuid4().hex
        parent = "00f067aa0ba902b7"
        rid = "tp-" + uuid.uuid4().hex
        r = self.server.get("/api/crm/health", headers={
            "traceparent": "00-%s-%s-01" % (trace, parent), "X-Request-Id": rid})
        tp = r.header("traceparent")
        self.assertIsNotNone(tp, r)
        m = TRACEPARENT.match(tp)
        self.assertIsNotNone(m, tp)
        self.assertEqual(m.group(1), trace)
        self.assertNotEqual(m.group(2), parent, "the server must use its own span id")
        self.assertNotEqual(m.group(2), "0" * 16)
        line = self.server.wait_log(lambda l: l.get("msg") == "request"
                                    and l.get("request_id") == rid)
        self.assertIsNotNone(line)
        self.assertEqual(line.get("trace_id"), trace)

    def test_invalid_traceparent_is_replaced(self):
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        bad = ["garbage",
               "00-%s-00f067aa0ba902b7" % trace,                      # 3 fields
               "00-%s-00f067aa0ba902b7-01" % ("0" * 32),              # zero trace id
               "00-%s-%s-01" % (trace, "0" * 16),                    # zero parent id
               "00-%s-00f067aa0ba902b7-01" % trace.upper(),          # upper-case hex
               "ff-%s-00f067aa0ba902b7-01" % trace,                  # forbidden version
               "00-%s-00f067aa0ba902b7-01-extra" % trace,            # v00 has 4 fields
               "00-%sz-00f067aa0ba902b7-01" % trace[:-1]]             # not hex
        for tp in bad:
            with self.subTest(traceparent=tp):
                rid = "tpbad-" + uuid.uuid4().hex
                r = self.server.get("/api/crm/health",
                                    headers={"traceparent": tp, "X-Request-Id": rid})
                out = r.header("traceparent")
                self.assertIsNotNone(out, r)
                m = TRACEPARENT.match(out)
                self.assertIsNotNone(m, out)
                self.assertNotEqual(m.group(1), trace.lower())
                self.assertNotEqual(m.group(1), "0" * 32)
                line = self.server.wait_log(lambda l: l.get("msg") == "request"
                                            and l.get("request_id") == rid)
                self.assertIsNotNone(line)
                self.assertEqual(line.get("trace_id"), m.group(1))

    def test_traceparent_is_generated_when_absent(self):
        r = self.server.get("/api/crm/health")
        m = TRACEPARENT.match(r.header("traceparent") or "")
        self.assertIsNotNone(m, r)
        self.assertNotEqual(m.group(1), "0" * 32)

    # -- access log -----------------------------------------------------------------

    def test_access_log_line_has_the_request_fields(self):
        rid = "log-" + uuid.uuid4().hex
        r = self.server.get("/api/crm/health", headers={"X-Request-Id": rid})
        self.assertEqual(r.status, 200)
        line = self.server.wait_log(lambda l: l.get("msg") == "request"
                                    and l.get("request_id") == rid)
        self.assertIsNotNone(line, "no access log line for %s in:\n%s"
                             % (rid, self.server.stderr()[-2000:]))
        self.assertEqual(line.get("method"), "GET")
        self.assertEqual(line.get("path"), "/api/crm/health")
        self.assertEqual(line.get("route"), "/api/crm/health")
        self.assertEqual(line.get("status"), 200)
        self.assertIsInstance(line.get("duration_ms"), (int, float))
        self.assertGreaterEqual(line["duration_ms"], 0)
        self.assertRegex(line.get("trace_id", ""), r"^[0-9a-f]{32}$")
        self.assertIn("ts", line)
        self.assertIn("level", line)

    def test_hostile_path_gives_valid_json_error_and_log(self):
        path = '/api/crm/x%22y%5C%0Az"\\'
        r = self.server.request("GET", path, headers={"X-Request-Id": "hostile-path"})
        self.assertError(r, 404, "not_found")
        line = self.server.wait_log(lambda l: l.get("request_id") == "hostile-path")
        self.assertIsNotNone(line, "no parseable access log line for a path with quotes")
        self.assertEqual(line.get("status"), 404)

    def test_every_log_line_is_json(self):
        self.server.get("/api/crm/health")
        self.server.get("/api/crm/nope")
        self.server.get('/api/crm/"quoted"\\back')
        time.sleep(0.1)
        for ln in self.server.stderr().splitlines():
            if not ln.strip():
                continue
            with self.subTest(line=ln[:200]):
                obj = json.loads(ln)
                self.assertIsInstance(obj, dict)
                self.assertIn("msg", obj)
                self.assertIn("level", obj)


if __name__ == "__main__":
    harness.main()
