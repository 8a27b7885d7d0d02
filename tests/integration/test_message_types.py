"""Message types as contracts (issue 18), against a running `herald serve`:

* every shipped type: each required field missing -> 400 invalid_context
  naming it, a wrong value -> 400 naming it (never echoing it), nothing
  stored; its example -> 202 and a sent message; an undeclared field -> 202
  with a warning naming it;
* GET /api/crm/message-types serves each type's JSON Schema (draft 2020-12),
  which validates the type's example with an independent validator
  (python3-jsonschema), and which agrees with Herald's own check on generated
  contexts (POST /api/crm/message-types/{name}/validate);
* live: an edited declaration applies to the next request; a declaration that
  does not load, or a template reading an undeclared variable, is refused
  with file and line while the previous generation keeps serving.
"""
import copy
import json
import os
import random
import shutil
import tempfile
import time
import unittest
import uuid

import jsonschema

import harness

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())
COMMS = "/api/crm/communications"
TYPES = "/api/crm/message-types"


def auth(scope="send read admin"):
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope=scope))}


def jpath(path):
    """A jsonschema error path ['a', 0, 'b'] in Herald's spelling a[0].b."""
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + p
    return out


def schema_problem_paths(validator, doc):
    """The field paths python3-jsonschema finds wrong, spelled as Herald does
    (a missing required field is named by its own path)."""
    paths = set()
    for e in validator.iter_errors(doc):
        base = jpath(e.absolute_path)
        if e.validator == "required":
            missing = [r for r in e.validator_value if r not in e.instance]
            for m in missing:
                paths.add(base + "." + m if base else m)
        elif e.validator == "additionalProperties":
            pass
        else:
            paths.add(base)
    return paths


def required_leaves(schema, doc, prefix=""):
    """(path, parent, key) of every required field present in doc, nested."""
    out = []
    if schema.get("type") == "object" and isinstance(doc, dict):
        for key in schema.get("required", []):
            if key in doc:
                path = prefix + "." + key if prefix else key
                out.append((path, doc, key))
                out += required_leaves(schema["properties"][key], doc[key], path)
    elif schema.get("type") == "array" and isinstance(doc, list) and doc:
        out += required_leaves(schema["items"], doc[0], prefix + "[0]")
    return out


def leaves(schema, doc, prefix=""):
    """(path, parent, key, subschema) of every field present in doc, nested."""
    out = []
    if schema.get("type") == "object" and isinstance(doc, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in doc:
                path = prefix + "." + key if prefix else key
                out.append((path, doc, key, sub))
                out += leaves(sub, doc[key], path)
    elif schema.get("type") == "array" and isinstance(doc, list) and doc:
        out += leaves(schema["items"], doc[0], prefix + "[0]")
    return out


def wrong_values(sub):
    """Values a field of this schema must refuse."""
    t = sub.get("type")
    if t == "string":
        vals = [42, None, "", "  \t"]
        if "maxLength" in sub:
            vals.append("y" * (sub["maxLength"] + 1))
        if sub.get("format") == "date":
            vals += ["2025-02-30", "14/06/2025", "2025-6-14"]
        if sub.get("pattern", "").startswith("^https?:"):
            vals += ["javascript:alert(1)", "ftp://x.example/", "https://a b/"]
        if sub.get("format") == "email":
            vals += ["maria", "maria@example"]
        if sub.get("pattern") == "^[A-Z]{3}(?![\\s\\S])":
            vals += ["usd", "EURO"]
        return vals
    if t in ("number", "integer"):
        vals = ["12", None, True]
        if "maximum" in sub:
            vals.append(sub["maximum"] + 1)
        if "minimum" in sub:
            vals.append(sub["minimum"] - 1)
        if t == "integer":
            vals.append(1.5)
        return vals
    if t == "array":
        vals = ["x", {}, None]
        if "maxItems" in sub:
            vals.append(["x"] * (sub["maxItems"] + 1))
        return vals
    if t == "object":
        return ["x", [], None]
    if t == "boolean":
        return ["true", 1]
    return []


class MessageTypesTest(harness.HeraldCase):
    start_server = True

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()
        r = cls.server.get(TYPES, headers=auth("read"))
        assert r.status == 200, r
        cls.types = {t["name"]: t for t in r.json["message_types"]}

    def post(self, message_type, context, cid=None):
        cid = cid or "mt-" + uuid.uuid4().hex[:10]
        return self.server.request("POST", COMMS, headers=auth(), fill_context=False, json_body={
            "plan_id": "plan-" + cid, "client_id": cid, "message_type": message_type,
            "urgency": "critical", "context": context,
            "recipient": {"email": "ana@example.com"}}), cid

    def stored(self, cid):
        r = self.server.get(COMMS + "?client_id=" + cid, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json["items"]

    def test_every_shipped_type_is_listed_with_schema_and_example(self):
        self.assertEqual(sorted(self.types), [
            "blueprint_delivery", "budget_summary", "digest", "error_notification", "reminder",
            "selection_confirmation", "vendor_options", "welcome"])
        for name, t in self.types.items():
            with self.subTest(type=name):
                self.assertEqual(t["channels"], ["email", "sms", "whatsapp"])
                self.assertEqual(t["schema"]["$schema"],
                                 "https://json-schema.org/draft/2020-12/schema")
                jsonschema.Draft202012Validator.check_schema(t["schema"])
                v = jsonschema.Draft202012Validator(
                    t["schema"], format_checker=jsonschema.FormatChecker())
                errors = [e.message for e in v.iter_errors(t["example"])]
                self.assertEqual(errors, [])
        one = self.server.get(TYPES + "/welcome", headers=auth("read"))
        self.assertEqual(one.status, 200, one)
        self.assertEqual(one.json, self.types["welcome"])
        self.assertError(self.server.get(TYPES + "/nope", headers=auth("read")), 404, "not_found")
        self.assertEqual(self.server.get(TYPES).status, 401)

    def test_each_required_field_missing_is_a_400_naming_it(self):
        for name, t in self.types.items():
            if name == "digest":
                continue  # the engine builds digests; its schema is checked above
            for path, parent, key in required_leaves(t["schema"], t["example"]):
                with self.subTest(type=name, missing=path):
                    ctx = copy.deepcopy(t["example"])
                    # the same field inside the copy
                    for p2, parent2, key2 in required_leaves(t["schema"], ctx):
                        if p2 == path:
                            del parent2[key2]
                    r, cid = self.post(name, ctx)
                    self.assertError(r, 400, "invalid_context")
                    self.assertEqual([p["path"] for p in r.json["error"]["problems"]], [path])
                    self.assertIn(path, r.json["error"]["message"])
                    self.assertIn("missing", r.json["error"]["problems"][0]["got"])
                    self.assertEqual(self.stored(cid), [])

    def test_a_wrong_value_is_a_400_naming_it_never_echoing_it(self):
        checked = 0
        for name, t in self.types.items():
            if name == "digest":
                continue
            for path, _, _, sub in leaves(t["schema"], t["example"]):
                for bad in wrong_values(sub):
                    ctx = copy.deepcopy(t["example"])
                    for p2, parent2, key2, _ in leaves(t["schema"], ctx):
                        if p2 == path:
                            parent2[key2] = bad
                    with self.subTest(type=name, path=path, value=repr(bad)[:40]):
                        r, cid = self.post(name, ctx)
                        self.assertError(r, 400, "invalid_context")
                        self.assertEqual([p["path"] for p in r.json["error"]["problems"]],
                                         [path])
                        if isinstance(bad, str) and len(bad) > 3:
                            self.assertNotIn(bad, r.body.decode())
                        checked += 1
        self.assertGreater(checked, 200)

    def test_each_example_is_accepted_and_sent(self):
        ids = {}
        for name, t in self.types.items():
            if name == "digest":
                continue
            r, _ = self.post(name, t["example"])
            self.assertEqual(r.status, 202, r)
            self.assertNotIn("warnings", r.json)
            ids[name] = r.json["id"]
        deadline = time.time() + 60
        for name, mid in ids.items():
            with self.subTest(type=name):
                while True:
                    d = self.server.get(COMMS + "/" + mid, headers=auth()).json
                    if d["status"] not in ("queued", "sending", "scheduled") \
                            or time.time() > deadline:
                        break
                    time.sleep(0.1)
                self.assertEqual(d["status"], "sent", d)

    def test_undeclared_fields_are_kept_and_named_in_warnings(self):
        ctx = dict(self.types["budget_summary"]["example"], budgetTotal=5000,
                   notes={"a": 1})
        r, cid = self.post("budget_summary", ctx)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(sorted(w["path"] for w in r.json["warnings"]), ["budgetTotal", "notes"])
        d = self.server.get(COMMS + "/" + r.json["id"], headers=auth()).json
        self.assertEqual(d["context"]["budgetTotal"], 5000)

    def test_an_unknown_type_is_a_400_naming_it(self):
        r, cid = self.post("birthday_wishes", {})
        self.assertError(r, 400, "invalid_request")
        self.assertIn("'birthday_wishes' is not declared", r.json["error"]["message"])

    def test_the_schema_and_herald_agree_on_generated_contexts(self):
        """Differential: random mutations of every example, judged by Herald
        (validate endpoint) and by python3-jsonschema with format checks."""
        rng = random.Random(18)
        junk = [None, True, 0, -1, 1.5, 10 ** 13, "", " ", "x", "2025-02-29", "2024-02-29",
                "0000-01-01", "2025-06-14\n", "https://ok.example/p", "https://ok.example:8080",
                "http://", "https://x.example/a b", "mailto:a@b.c", "a@b.co", "a@@b.co",
                "USD", "usd", "€", "é" * 100, "y" * 101, [], {}, ["x"], [{"name": "n"}],
                {"name": "n"}]
        n = agree_valid = 0
        for name, t in sorted(self.types.items()):
            v = jsonschema.Draft202012Validator(t["schema"],
                                                format_checker=jsonschema.FormatChecker())
            for _ in range(60):
                ctx = copy.deepcopy(t["example"])
                spots = leaves(t["schema"], ctx)
                for _ in range(rng.choice([1, 1, 2])):
                    path, parent, key, sub = rng.choice(spots)
                    if rng.random() < 0.15:
                        parent.pop(key, None)
                    else:
                        parent[key] = rng.choice(junk)
                r = self.server.request("POST", TYPES + "/" + name + "/validate", json_body=ctx,
                                        headers=auth("read"))
                self.assertEqual(r.status, 200, r)
                theirs = schema_problem_paths(v, ctx)
                ours = {p["path"] for p in r.json["problems"]}
                with self.subTest(type=name, ctx=json.dumps(ctx)[:300]):
                    self.assertEqual(r.json["valid"], not theirs)
                    self.assertEqual(ours, theirs)
                n += 1
                agree_valid += r.json["valid"]
        # both kinds of case were generated
        self.assertGreater(agree_valid, 20)
        self.assertGreater(n - agree_valid, 200)


class LiveDeclarationsTest(harness.HeraldCase):
    start_server = False

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="herald-types-")
        self.scripts = os.path.join(self.dir, "scripts")
        self.templates = os.path.join(self.dir, "templates")
        shutil.copytree(os.path.join(SRC, "scripts"), self.scripts)
        shutil.copytree(os.path.join(SRC, "templates"), self.templates)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = self.new_server(env={"HERALD_SCRIPTS_DIR": self.scripts,
                                           "HERALD_TEMPLATES_DIR": self.templates})
        self.welcome = harness.required_contexts()["welcome"]

    def write(self, path, text):
        tmp = path + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def edit(self, rel, old, new):
        path = os.path.join(self.dir, rel)
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text, "%s changed; update the test" % rel)
        self.write(path, text.replace(old, new, 1))

    def send(self):
        return self.server.request("POST", COMMS, headers=auth(), fill_context=False, json_body={
            "plan_id": "p", "client_id": "live-" + uuid.uuid4().hex[:8],
            "message_type": "welcome", "urgency": "critical", "context": self.welcome,
            "recipient": {"email": "ana@example.com"}})

    def scripts_health(self):
        return self.server.get("/api/crm/health", headers=auth("admin")).json["scripts"]

    def wait_for(self, pred, what, timeout=5):
        deadline = time.time() + timeout
        while not pred():
            self.assertLess(time.time(), deadline, what)
            time.sleep(0.05)

    def test_an_edited_declaration_applies_to_the_next_request(self):
        self.assertEqual(self.send().status, 202)
        gen = self.scripts_health()["generation"]
        self.edit("scripts/types.lua", "venue = S.string{max = 200, optional = true},",
                  "venue = S.string{max = 200},")
        self.wait_for(lambda: self.scripts_health()["generation"] != gen, "not reloaded")
        r = self.send()
        self.assertError(r, 400, "invalid_context")
        self.assertEqual([p["path"] for p in r.json["error"]["problems"]], ["venue"])
        listed = self.server.get(TYPES + "/welcome", headers=auth("read")).json
        self.assertIn("venue", listed["schema"]["required"])

    def test_a_declaration_that_does_not_load_keeps_the_previous_one(self):
        gen = self.scripts_health()["generation"]
        self.edit("scripts/types.lua", "venue = S.string{max = 200, optional = true},",
                  "venue = S.strin{max = 200, optional = true},")
        self.wait_for(lambda: self.scripts_health()["status"] == "error", "error not shown")
        health = self.scripts_health()
        self.assertEqual(health["generation"], gen)
        self.assertIn("types.lua:", health["error"])
        self.assertEqual(self.send().status, 202)  # the old declaration still serves

    def test_a_template_reading_an_undeclared_variable_is_refused_at_reload(self):
        gen = self.scripts_health()["generation"]
        self.edit("templates/welcome.sms", "{{ event_type }}", "{{ event_kind }}")
        self.wait_for(lambda: self.scripts_health()["status"] == "error", "error not shown")
        health = self.scripts_health()
        self.assertEqual(health["generation"], gen)
        self.assertIn("welcome.sms:1: 'event_kind' is not declared by message type 'welcome'",
                      health["error"])
        r = self.server.request("POST", "/api/crm/scripts/reload", headers=auth("admin"))
        self.assertEqual(r.status, 422, r)
        self.assertIn("welcome.sms:1:", r.json["error"]["message"])
        self.assertEqual(self.send().status, 202)
        # `herald check` names it too
        c = harness.cli("check", env=harness.base_env(HERALD_SCRIPTS_DIR=self.scripts,
                                                      HERALD_TEMPLATES_DIR=self.templates))
        self.assertNotEqual(c.code, 0)
        self.assertIn("welcome.sms:1: 'event_kind' is not declared", c.stderr)


if __name__ == "__main__":
    unittest.main()
