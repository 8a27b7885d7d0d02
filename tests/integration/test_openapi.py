"""docs/openapi.yaml describes the API the server really serves (issue 15, item 5).

- The document is an OpenAPI 3.1 document: it validates against the OAS 3.1
  schema (tests/integration/openapi/, the OpenAPI Initiative's schema of
  2022-10-07, kept in the repository: nothing is fetched), every $ref resolves,
  every schema is a valid JSON Schema 2020-12, every templated path declares
  its parameters, operation ids are unique.
- Every route of the router's table (core/http/api.c) is described with its
  method, and the document describes no route the router lacks.
- Answers sampled from a running server (successes and errors; every
  operation at least once) match the schema of their operation and status,
  content type included; the message types' context schemas are valid JSON
  Schemas. The server sends SMS through the fake Twilio
  (tests/fakes/fake_providers.py), which refuses numbers ending 0001: a failed
  message to send again.

Needs python3-yaml and python3-jsonschema (tools/deps.sh).
"""

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import jsonschema  # noqa: E402
import yaml  # noqa: E402

DOC_PATH = os.path.join(harness.SOURCE_DIR, "docs", "openapi.yaml")
OAS_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi",
                          "oas-3.1-schema-2022-10-07.json")
API_C = os.path.join(harness.SOURCE_DIR, "core", "http", "api.c")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# jsonschema >= 4.18 deprecates RefResolver; Debian 12 ships 4.10, which has
# only it. The warning is not the test's business.
warnings.simplefilter("ignore", DeprecationWarning)


def load_doc():
    with open(DOC_PATH) as f:
        return yaml.safe_load(f)


def router_routes():
    """(METHOD, pattern) of every entry of the route table in core/http/api.c."""
    with open(API_C) as f:
        src = f.read()
    table = src[src.index("routes[] = {"):]
    table = table[:table.index("};")]
    routes = re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"', table)
    if len(routes) < 20:
        raise AssertionError("found only %d routes in %s: has the table's shape changed?"
                             % (len(routes), API_C))
    return routes


def walk(node, path=()):
    """Every (path, dict) in a JSON document, depth first."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def pointer(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


class DocumentTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.doc = load_doc()

    def test_valid_against_the_oas_3_1_schema(self):
        with open(OAS_SCHEMA) as f:
            meta = json.load(f)
        v = jsonschema.Draft202012Validator(meta)
        errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message[:300])
                  for e in v.iter_errors(self.doc)]
        self.assertEqual(errors, [])
        self.assertTrue(self.doc["openapi"].startswith("3.1."))
        # the check itself can fail: a broken response object is caught
        broken = dict(self.doc, paths={"/x": {"get": {"responses": {"200": {"description": 1}}}}})
        self.assertTrue(list(v.iter_errors(broken)))

    def test_message_type_contexts_are_embedded_as_declared(self):
        """components/schemas/MessageContext_<type> are the declarations of
        scripts/types.lua (herald types --json) exactly, and SendRequest ties
        each message_type to its context: an example request validates, one
        missing a required field of its type does not."""
        types = json.loads(harness.cli("types", "--json").stdout)
        schemas = self.doc["components"]["schemas"]
        for t in types:
            self.assertEqual(schemas.get("MessageContext_" + t["name"]), t["schema"],
                             "%s: run tools/openapi_types.py" % t["name"])
        embedded = {k for k in schemas if k.startswith("MessageContext_")}
        self.assertEqual(embedded, {"MessageContext_" + t["name"] for t in types})
        v = jsonschema.Draft202012Validator(schemas["SendRequest"],
                                            resolver=jsonschema.RefResolver("", self.doc))
        for t in types:
            req = {"plan_id": "p", "client_id": "c", "message_type": t["name"],
                   "context": t["example"]}
            self.assertEqual([e.message for e in v.iter_errors(req)], [], t["name"])
            required = [f for f in t["schema"].get("required", []) if f in t["example"]]
            if required:
                broken = dict(req, context={k: x for k, x in t["example"].items()
                                            if k != required[0]})
                self.assertTrue(list(v.iter_errors(broken)), "%s without %s validated"
                                % (t["name"], required[0]))

    def test_every_ref_resolves(self):
        refs = [(p, n["$ref"]) for p, n in walk(self.doc) if isinstance(n.get("$ref"), str)]
        self.assertGreater(len(refs), 50)
        for where, ref in refs:
            if ref.startswith("#/"):
                try:
                    pointer(self.doc, ref)
                except (KeyError, IndexError, TypeError):
                    self.fail("%s: $ref %s does not resolve" % ("/".join(map(str, where)), ref))
            else:  # only the JSON Schema meta-schema, which jsonschema carries
                self.assertEqual(ref, "https://json-schema.org/draft/2020-12/schema", where)

    def test_every_schema_is_json_schema_2020_12(self):
        schemas = list(self.doc["components"]["schemas"].items())
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if method not in METHODS:
                    continue
                for status, resp in op["responses"].items():
                    for ctype, media in resp.get("content", {}).items():
                        if "schema" in media:
                            schemas.append(("%s %s %s %s" % (method, path, status, ctype),
                                            media["schema"]))
        self.assertGreater(len(schemas), 60)
        for name, schema in schemas:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as e:
                self.fail("%s: %s" % (name, e.message))

    def test_path_parameters_and_operation_ids(self):
        ids = []
        for path, item in self.doc["paths"].items():
            wanted = set(re.findall(r"\{([^}]+)\}", path))
            shared = [self._param(p) for p in item.get("parameters", [])]
            for method, op in item.items():
                if method not in METHODS:
                    continue
                ids.append(op.get("operationId"))
                params = shared + [self._param(p) for p in op.get("parameters", [])]
                declared = {p["name"] for p in params if p["in"] == "path"}
                self.assertEqual(declared, wanted, "%s %s: path parameters" % (method, path))
                for p in params:
                    if p["in"] == "path":
                        self.assertIs(p.get("required"), True, "%s %s %s" % (method, path,
                                                                            p["name"]))
                self.assertTrue(op.get("summary"), "%s %s: summary" % (method, path))
                ok = [s for s in op["responses"] if s[0] in "23"]
                self.assertTrue(ok, "%s %s: no success response" % (method, path))
        self.assertNotIn(None, ids)
        self.assertEqual(len(ids), len(set(ids)), "operationId used twice")

    def _param(self, p):
        return pointer(self.doc, p["$ref"]) if "$ref" in p else p

    def test_every_route_is_described(self):
        routes = set(router_routes())
        described = {(m.upper(), p) for p, item in self.doc["paths"].items()
                     for m in item if m in METHODS}
        self.assertEqual(sorted(routes - described), [],
                         "routes of core/http/api.c missing from docs/openapi.yaml")
        self.assertEqual(sorted(described - routes), [],
                         "docs/openapi.yaml describes routes the router does not have")

    def test_error_shape_is_the_servers(self):
        err = self.doc["components"]["schemas"]["Error"]
        self.assertEqual(err["required"], ["error"])
        self.assertEqual(sorted(err["properties"]["error"]["required"]), ["code", "message"])


class ResponsesTest(harness.HeraldCase):
    """Real answers, validated against the document."""

    @classmethod
    def setUpClass(cls):
        cls.db_url, cls.drop_db = harness.fresh_database()
        super().setUpClass()
        cls.doc = load_doc()
        cls.resolver = jsonschema.RefResolver("", cls.doc)
        cls.tmp = tempfile.mkdtemp(prefix="herald-openapi-")
        cls.fake, port = harness.start_fake_providers(cls.tmp, hang_seconds=1)
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_SMS_DRIVER": "twilio",
            "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % port,
            "HERALD_TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
            "HERALD_TWILIO_AUTH_TOKEN": "test-token", "HERALD_TWILIO_FROM": "+15005550006"})
        cls.checked = set()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, True)

    def operation(self, method, path):
        path = path.split("?")[0]
        for template, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(rx, path) and method.lower() in item:
                return template, item[method.lower()]
        self.fail("%s %s: no operation in docs/openapi.yaml" % (method, path))

    def check(self, method, path, resp, status=None):
        """resp must be documented for its operation and status, and its body
        must match the schema of its content type. Returns resp."""
        if status is not None:
            self.assertEqual(resp.status, status, resp)
        template, op = self.operation(method, path)
        where = "%s %s -> %d" % (method, template, resp.status)
        r = op["responses"].get(str(resp.status))
        self.assertIsNotNone(r, "%s: status not documented (%r)" % (where, resp))
        if "$ref" in r:
            r = pointer(self.doc, r["$ref"])
        content = r.get("content", {})
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip()
        if not content:
            self.assertEqual(resp.body, b"", "%s: documented without a body" % where)
        elif resp.body or ctype:
            self.assertIn(ctype, content, "%s: content type %r not documented" % (where, ctype))
            schema = content[ctype].get("schema")
            if ctype == "application/json":
                self.assertIsNotNone(resp.json, "%s: not JSON: %r" % (where, resp.body[:200]))
                v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
                errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message[:300])
                          for e in v.iter_errors(resp.json)]
                self.assertEqual(errors, [], "%s: %s" % (where, json.dumps(resp.json)[:800]))
        type(self).checked.add((method, template, resp.status))
        return resp

    # ---- the samples ------------------------------------------------------

    def setUp(self):
        self.s = self.server
        self.admin = harness.make_jwt(harness.claims(scope="send read admin"))
        self.reader = harness.make_jwt(harness.claims(scope="read"))

    def call(self, method, path, token=None, status=None, **kw):
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = "Bearer " + token
        r = self.s.request(method, path, headers=headers, **kw)
        return self.check(method, path, r, status)

    def test_system_and_auth(self):
        public = self.call("GET", "/api/crm/health", status=200)
        self.assertNotIn("queue", public.json)
        h = self.call("GET", "/api/crm/health", self.admin, status=200)
        self.assertGreaterEqual(h.json["queue"]["oldest_due_age_s"], 0)
        self.assertGreater(h.json["process"]["resident_memory_bytes"], 1 << 20)
        self.call("GET", "/metrics", status=200)
        r = harness.cli("apikey", "create", "--name", harness.unique("oa-key"), "--scopes",
                        "send,read", env=harness.base_env(HERALD_DATABASE_URL=self.db_url))
        self.assertEqual(r.code, 0, r)
        key = r.stdout.splitlines()[0].strip()
        pair = self.call("POST", "/api/crm/auth/token", json_body={"api_key": key},
                         status=200).json
        self.call("POST", "/api/crm/auth/token", json_body={"api_key": "nope"}, status=401)
        self.call("POST", "/api/crm/auth/token", json_body={}, status=400)
        self.call("POST", "/api/crm/auth/refresh",
                  json_body={"refresh_token": pair["refresh_token"]}, status=200)
        self.call("POST", "/api/crm/auth/refresh",
                  json_body={"refresh_token": pair["refresh_token"]}, status=401)
        self.call("GET", "/api/crm/auth/me", pair["access_token"], status=200)
        self.call("GET", "/api/crm/auth/me", status=401)
        self.call("GET", "/api/crm/apikeys", self.admin, status=200)
        self.call("GET", "/api/crm/apikeys", self.reader, status=403)
        self.call("POST", "/api/crm/auth/revoke", self.admin,
                  json_body={"jti": harness.jwt_parts(pair["access_token"])[1]["jti"]},
                  status=200)

    def test_policy_and_types(self):
        self.call("POST", "/api/crm/scripts/reload", self.admin, status=200)
        self.call("POST", "/api/crm/strategy/preview", self.reader, status=200,
                  json_body={"message_type": "welcome", "preferences": {"email": "a@b.c"}})
        self.call("POST", "/api/crm/strategy/preview", self.reader, status=400,
                  json_body={"message_type": ""})
        nowhere = self.call("POST", "/api/crm/strategy/preview", self.reader, status=200,
                            json_body={"message_type": "welcome", "preferences": {}}).json
        self.assertIsNone(nowhere["strategy"]["primary_channel"])  # no address: no channel
        types = self.call("GET", "/api/crm/message-types", self.reader, status=200).json
        self.assertGreaterEqual(len(types["message_types"]), 6)
        for t in types["message_types"]:  # each context schema is a JSON Schema
            jsonschema.Draft202012Validator.check_schema(t["schema"])
            jsonschema.Draft202012Validator(t["schema"]).validate(t["example"])
        self.call("GET", "/api/crm/message-types/welcome", self.reader, status=200)
        self.call("GET", "/api/crm/message-types/nope", self.reader, status=404)
        v = self.call("POST", "/api/crm/message-types/welcome/validate", self.reader,
                      json_body={"plan_url": "x"}, status=200).json
        self.assertFalse(v["valid"])
        self.call("POST", "/api/crm/message-types/welcome/validate", self.reader,
                  json_body=[1], status=400)

    def test_messages_and_preferences(self):
        client = harness.unique("oa-client")
        body = {"client_id": client, "name": "Maria Alvarez", "email": "maria@example.com",
                "phone": "+14155550100", "timezone": "Europe/Paris",
                "quiet_hours": {"start": "21:00", "end": "08:00"}}
        self.call("POST", "/api/crm/preferences", self.admin, json_body=body, status=201)
        self.call("POST", "/api/crm/preferences", self.admin,
                  json_body={"client_id": client, "locale": "fr_FR"}, status=200)
        self.call("POST", "/api/crm/preferences", self.admin,
                  json_body={"client_id": client, "colour": "blue"}, status=400)
        self.call("GET", "/api/crm/preferences/" + client, self.reader, status=200)
        self.call("GET", "/api/crm/preferences/nobody-" + client, self.reader, status=404)
        send = {"plan_id": "plan-oa", "client_id": client, "message_type": "welcome",
                "urgency": "critical"}
        sent = self.call("POST", "/api/crm/communications?wait=10", self.admin,
                         json_body=send, status=202).json
        self.assertEqual(sent["status"], "sent", sent)
        self.call("POST", "/api/crm/communications", self.admin, fill_context=False,
                  json_body=dict(send, context={}), status=400)
        self.call("POST", "/api/crm/communications", self.admin,
                  body=b"x", headers={"Content-Type": "text/plain"}, status=415)
        later = self.call("POST", "/api/crm/communications", self.admin, status=202,
                          json_body=dict(send, urgency="low")).json
        self.call("GET", "/api/crm/communications/" + sent["id"], self.reader, status=200)
        self.call("GET", "/api/crm/communications/" + str(uuid.uuid4()), self.reader,
                  status=404)
        page = self.call("GET", "/api/crm/communications?client_id=%s&limit=1" % client,
                         self.reader, status=200).json
        self.assertIsNotNone(page["next_cursor"])
        self.call("GET", "/api/crm/communications?status=lost", self.reader, status=400)
        self.call("DELETE", "/api/crm/communications/" + later["id"], self.admin, status=200)
        self.call("DELETE", "/api/crm/communications/" + sent["id"], self.admin, status=409)
        self.call("GET", "/api/crm/analytics?group_by=channel", self.reader, status=200)
        self.call("GET", "/api/crm/analytics?group_by=colour", self.reader, status=400)
        self.call("GET", "/api/crm/clients/%s/export" % client, self.admin, status=200)
        self.call("DELETE", "/api/crm/clients/" + client, self.admin, status=200)
        self.call("DELETE", "/api/crm/clients/" + client, self.admin, status=404)

    def test_suppressions(self):
        address = harness.unique("oa") + "@example.com"
        added = self.call("POST", "/api/crm/suppressions", self.admin, status=201,
                          json_body={"channel": "email", "address": address}).json
        self.call("POST", "/api/crm/suppressions", self.admin, status=200,
                  json_body={"channel": "email", "address": address})
        self.call("POST", "/api/crm/suppressions", self.admin, status=400,
                  json_body={"channel": "fax", "address": address})
        self.call("GET", "/api/crm/suppressions?channel=email&limit=5", self.admin, status=200)
        self.call("DELETE", "/api/crm/suppressions/%d" % added["id"], self.admin, status=204)
        self.call("DELETE", "/api/crm/suppressions/%d" % added["id"], self.admin, status=404)

    def test_webhooks_and_recipient_links(self):
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        self.call("POST", "/api/crm/webhooks/twilio", body="MessageSid=SM1&MessageStatus=sent",
                  headers=form, status=403)
        self.call("POST", "/api/crm/webhooks/twilio/inbound", body="From=%2B14155550100&Body=STOP",
                  headers=form, status=403)
        self.call("GET", "/api/crm/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x"
                  "&hub.challenge=1", status=403)
        self.call("POST", "/api/crm/webhooks/whatsapp", json_body={"entry": []}, status=403)
        self.call("GET", "/t/o/forged.gif", status=200)
        self.call("GET", "/t/c/forged", status=404)
        self.call("GET", "/u/forged", status=404)
        self.call("POST", "/u/forged", body="List-Unsubscribe=One-Click", headers=form,
                  status=404)

    def test_operator_desk(self):
        # the fake Twilio refuses a number ending 0001 (21211, invalid 'To'): failed
        client = harness.unique("oa-desk")
        self.call("POST", "/api/crm/preferences", self.admin, status=201, json_body={
            "client_id": client, "name": "Zoë Martin", "email": client + "@example.com",
            "phone": "+14155550001", "channels": ["sms"], "locale": "fr"})
        send = {"plan_id": "plan-desk", "client_id": client, "message_type": "welcome",
                "urgency": "critical"}
        failed = self.call("POST", "/api/crm/communications?wait=10", self.admin,
                           json_body=send, status=202).json
        self.assertEqual(failed["status"], "failed", failed)
        later = self.call("POST", "/api/crm/communications", self.admin, status=202,
                          json_body=dict(send, urgency="high",
                                         send_at="2099-01-01T09:00:00Z")).json
        sender = harness.make_jwt(harness.claims(scope="send"))

        # the queue, the providers, why
        q = self.call("GET", "/api/crm/admin/queue", self.admin, status=200).json
        self.assertIn({"status": "scheduled", "channel": "sms", "urgency": "high", "n": 1},
                      q["messages"])
        self.call("GET", "/api/crm/admin/queue", self.reader, status=403)
        p = self.call("GET", "/api/crm/admin/providers?minutes=60", self.admin,
                      status=200).json
        twilio, = [x for x in p["providers"] if x["provider"] == "twilio"]
        self.assertEqual(twilio["last_error"]["code"], "21211", p)
        self.call("GET", "/api/crm/admin/providers", self.admin, status=200)
        self.call("GET", "/api/crm/admin/providers?minutes=0", self.admin, status=400)
        self.call("GET", "/api/crm/admin/providers", self.reader, status=403)
        w = self.call("GET", "/api/crm/admin/clients/%s/why?limit=5" % client, self.admin,
                      status=200).json
        self.assertEqual([m["id"] for m in w["messages"]], [later["id"], failed["id"]])
        self.assertTrue(w["messages"][1]["strategy"]["reasons"], w)
        self.assertEqual(w["messages"][1]["events"][0]["type"], "attempt", w)
        self.call("GET", "/api/crm/admin/clients/nobody-%s/why" % client, self.admin,
                  status=200)
        self.call("GET", "/api/crm/admin/clients/%s/why?limit=0" % client, self.admin,
                  status=400)
        self.call("GET", "/api/crm/admin/clients/%s/why" % ("x" * 201), self.admin,
                  status=400)
        self.call("GET", "/api/crm/admin/clients/%s/why" % client, self.reader, status=403)

        # pause and resume a channel no other sample uses
        base = "/api/crm/admin/channels/whatsapp/"
        try:
            r = self.call("POST", base + "pause", self.admin, status=200,
                          json_body={"reason": "provider maintenance"}).json
            self.assertEqual((r["paused"], r["changed"]), (True, True))
            r = self.call("POST", base + "pause", self.admin, json_body={}, status=200).json
            self.assertFalse(r["changed"])
            q = self.call("GET", "/api/crm/admin/queue", self.admin, status=200).json
            self.assertEqual([(x["channel"], x["reason"]) for x in q["paused"]],
                             [("whatsapp", "provider maintenance")])
        finally:
            r = self.call("POST", base + "resume", self.admin, json_body={}, status=200).json
        self.assertEqual((r["paused"], r["changed"]), (False, True))
        r = self.call("POST", base + "resume", self.admin, status=200,
                      json_body={"reason": "again"}).json
        self.assertFalse(r["changed"])
        self.call("POST", "/api/crm/admin/channels/fax/pause", self.admin, json_body={},
                  status=404)
        self.call("POST", "/api/crm/admin/channels/fax/resume", self.admin, json_body={},
                  status=404)
        self.call("POST", base + "pause", self.admin, json_body={"reason": 42}, status=400)
        self.call("POST", base + "resume", self.admin, json_body={"reason": "x" * 301},
                  status=400)
        # the body is optional; one that is not JSON is refused
        self.assertTrue(self.call("POST", base + "pause", self.admin, status=200).json["changed"])
        self.assertTrue(self.call("POST", base + "resume", self.admin, status=200).json["changed"])
        self.call("POST", base + "pause", self.admin, body=b"x",
                  headers={"Content-Type": "text/plain"}, status=415)
        self.call("POST", base + "pause", self.reader, json_body={}, status=403)
        self.call("POST", base + "resume", self.reader, json_body={}, status=403)

        # the message rendered again, on each channel
        path = "/api/crm/communications/%s/preview" % failed["id"]
        email = self.call("GET", path, self.reader, status=200).json
        self.assertEqual((email["channel"], email["locale"]), ("email", "fr"))
        self.assertIn("Zoë", email["html"])
        sms = self.call("GET", path + "?channel=sms", self.reader, status=200).json
        self.assertGreaterEqual(sms["segments"], 1)
        self.call("GET", path + "?channel=whatsapp", self.reader, status=200)
        self.call("GET", path + "?channel=fax", self.reader, status=400)
        self.call("GET", path, sender, status=403)
        self.call("GET", "/api/crm/communications/%s/preview" % uuid.uuid4(), self.reader,
                  status=404)

        # a failed message, again; any other status is refused
        retry = "/api/crm/communications/%s/retry" % failed["id"]
        self.call("POST", retry, self.reader, status=403)
        again = self.call("POST", retry, self.admin, status=202).json
        self.assertEqual(again, {"id": failed["id"], "status": "queued"})
        self.call("POST", "/api/crm/communications/%s/retry" % later["id"], self.admin,
                  status=409)
        self.call("POST", "/api/crm/communications/%s/retry" % uuid.uuid4(), self.admin,
                  status=404)
        deadline = time.time() + 20
        while True:  # it fails again (the number is still refused), a second attempt
            m = self.call("GET", "/api/crm/communications/" + failed["id"], self.reader,
                          status=200).json
            if m["status"] == "failed" and len(m["attempts"]) == 2 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual([e["type"] for e in m["events"]], ["retry_requested"], m)
        self.assertEqual(len(m["attempts"]), 2, m)

        # once the client is erased there is no context to render
        self.call("DELETE", "/api/crm/clients/" + client, self.admin, status=200)
        self.call("GET", path, self.reader, status=409)

    def test_dashboard(self):
        page = self.call("GET", "/dashboard", status=200)
        self.assertIn(b"<html", page.body)
        self.assertIn("script-src 'self'", page.header("Content-Security-Policy"))
        for name in ("app.js", "app.css", "index.html"):
            r = self.call("GET", "/dashboard/" + name, status=200)
            self.assertGreater(len(r.body), 100, name)
        self.call("GET", "/dashboard/nope.png", status=404)

    def test_zz_coverage(self):
        """Runs last (names sort): most operations were sampled."""
        sampled = {(m, t) for m, t, _ in self.checked}
        ops = {(m.upper(), p) for p, item in self.doc["paths"].items() for m in item
               if m in METHODS}
        missing = sorted(ops - sampled)
        # every operation is sampled at least once
        self.assertEqual(missing, [], "operations no sample reached")
        self.assertGreater(len(self.checked), 50)


if __name__ == "__main__":
    harness.main()
