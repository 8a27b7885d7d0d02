"""Client preferences: POST/GET /api/crm/preferences, validation naming each
field, scopes, encryption at rest with blind indexes, the Redis cache (no
plaintext, read-through, refreshed on write, optional) and the consent audit.

Runs on the shared database: every client id is unique to its test."""

import json
import re
import subprocess
import threading
import uuid

import harness
from harness import HeraldCase, claims, make_jwt

PREFS = "/api/crm/preferences"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def new_id():
    return "it-prefs-" + uuid.uuid4().hex


def psql(sql):
    p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d",
                        harness.database_url(), "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("psql %r failed: %s" % (sql, p.stderr.decode()))
    return p.stdout.decode().rstrip("\n")


def redis(*args):
    p = subprocess.run(["redis-cli", "-u", harness.redis_url()] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("redis-cli %r failed: %s" % (args, p.stderr.decode()))
    return p.stdout.decode().rstrip("\n")


def cache_key(client_id):
    return "herald:prefs:v1:" + client_id


def stored(client_id, columns):
    """The columns of client_id's row as psql prints them, split on '|'."""
    return psql("SELECT %s FROM crm_client_preferences WHERE client_id = '%s'"
                % (columns, client_id)).split("|")


FULL = {
    "name": "Zoé Durand",
    "email": "zoe.durand@example.com",
    "phone": "+33612345678",
    "timezone": "Europe/Paris",
    "locale": "fr_FR",
    "channels": ["sms", "email"],
    "quiet_hours": {"start": "21:30", "end": "07:00"},
    "opted_out": ["whatsapp"],
    "digest_time": "08:15",
    "consent": {"given": True, "at": "2026-01-15T10:20:30Z", "source": "signup form"},
}


class PrefsCase(HeraldCase):
    start_server = True

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()

    def auth(self, scope="send read"):
        return {"Authorization": "Bearer " + make_jwt(claims(scope=scope))}

    def post(self, doc, scope="send read", server=None):
        return (server or self.server).request("POST", PREFS, json_body=doc,
                                               headers=self.auth(scope))

    def get(self, client_id, scope="send read", server=None):
        return (server or self.server).request("GET", PREFS + "/" + client_id,
                                               headers=self.auth(scope))

    def create(self, **fields):
        cid = fields.pop("client_id", None) or new_id()
        r = self.post(dict(fields, client_id=cid))
        self.assertEqual(r.status, 201, r)
        return cid, r.json

    def assertInvalid(self, doc, field, msg=None):
        r = self.post(doc)
        err = self.assertError(r, 400, "invalid_request", msg)
        self.assertTrue(err["message"].startswith(field + ":"),
                        "%s: message should name %r first: %r" % (msg, field, err["message"]))
        return err


class CreateReadTest(PrefsCase):

    def test_create_then_read_every_field(self):
        cid = new_id()
        r = self.post(dict(FULL, client_id=cid))
        self.assertEqual(r.status, 201, r)
        doc = r.json
        expect = {
            "client_id": cid,
            "name": "Zoé Durand",
            "email": "zoe.durand@example.com",
            "phone": "+33612345678",
            "timezone": "Europe/Paris",
            "locale": "fr_FR",
            "channels": ["sms", "email"],
            "quiet_hours": {"start": "21:30", "end": "07:00"},
            "opted_out": ["whatsapp"],
            "digest_time": "08:15",
            "consent": {"given": True, "at": "2026-01-15T10:20:30Z", "source": "signup form"},
        }
        for k, v in expect.items():
            self.assertEqual(doc.get(k), v, k)
        self.assertEqual(set(doc), set(expect) | {"created_at", "updated_at"})
        self.assertRegex(doc["created_at"], RFC3339)
        self.assertRegex(doc["updated_at"], RFC3339)

        g = self.get(cid)
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json, doc)

    def test_new_client_gets_the_table_defaults(self):
        cid, doc = self.create()
        self.assertEqual(doc["timezone"], "UTC")
        self.assertEqual(doc["locale"], "en")
        self.assertIsNone(doc["channels"])  # no stated order: the matrix decides
        self.assertEqual(doc["opted_out"], [])
        self.assertEqual(doc["digest_time"], "09:00")
        self.assertIsNone(doc["quiet_hours"])
        self.assertIsNone(doc["name"])
        self.assertIsNone(doc["email"])
        self.assertIsNone(doc["phone"])
        self.assertEqual(doc["consent"], {"given": False, "at": None, "source": None})
        self.assertEqual(doc["created_at"], doc["updated_at"])
        # the same request again is an update, not a second row
        again = self.post({"client_id": cid})
        self.assertEqual(again.status, 200, again)
        self.assertEqual(psql("SELECT count(*) FROM crm_client_preferences "
                              "WHERE client_id = '%s'" % cid), "1")

    def test_partial_update_keeps_the_other_fields(self):
        cid, before = self.create(**FULL)
        r = self.post({"client_id": cid, "timezone": "Asia/Tokyo", "channels": ["whatsapp"]})
        self.assertEqual(r.status, 200, r)
        after = r.json
        self.assertEqual(after["timezone"], "Asia/Tokyo")
        self.assertEqual(after["channels"], ["whatsapp"])
        for k in ("name", "email", "phone", "locale", "quiet_hours", "opted_out", "digest_time",
                  "consent", "created_at"):
            self.assertEqual(after[k], before[k], k)
        self.assertGreaterEqual(after["updated_at"], before["updated_at"])
        self.assertEqual(self.get(cid).json, after)

    def test_null_clears_name_email_phone_and_quiet_hours(self):
        cid, _ = self.create(**FULL)
        r = self.post({"client_id": cid, "name": None, "email": None, "phone": None,
                       "quiet_hours": None})
        self.assertEqual(r.status, 200, r)
        for k in ("name", "email", "phone", "quiet_hours"):
            self.assertIsNone(r.json[k], k)
        self.assertEqual(r.json["timezone"], "Europe/Paris")
        self.assertEqual(self.get(cid).json, r.json)
        self.assertEqual(stored(cid, "name IS NULL, email_enc IS NULL, email_index IS NULL, "
                                     "phone_enc IS NULL, phone_index IS NULL, "
                                     "quiet_hours_start IS NULL, quiet_hours_end IS NULL"),
                         ["t"] * 7)

    def test_empty_lists_and_email_spaces(self):
        cid, doc = self.create(channels=[], opted_out=["sms", "email"],
                               email="  Someone@Example.ORG ")
        self.assertEqual(doc["channels"], [])
        self.assertEqual(doc["opted_out"], ["sms", "email"])
        self.assertEqual(doc["email"], "Someone@Example.ORG")
        r = self.post({"client_id": cid, "opted_out": []})
        self.assertEqual(r.json["opted_out"], [], r)

    def test_client_id_of_200_characters_is_accepted(self):
        cid = ("é" * 168) + uuid.uuid4().hex  # 200 characters, 368 bytes
        r = self.post({"client_id": cid})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["client_id"], cid)

    def test_unknown_client_is_404(self):
        r = self.get(new_id())
        self.assertError(r, 404, "not_found")

    def test_concurrent_creates_make_one_row(self):
        cid = new_id()
        statuses = []

        def worker(i):
            statuses.append(self.post({"client_id": cid, "locale": "en-%02d" % (10 + i)}).status)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(statuses), [200] * 7 + [201], statuses)
        self.assertEqual(psql("SELECT count(*) FROM crm_client_preferences "
                              "WHERE client_id = '%s'" % cid), "1")


class ValidationTest(PrefsCase):

    def test_each_bad_field_is_named(self):
        cases = [
            ("email", {"email": "not-an-address"}),
            ("email", {"email": "two@@example.com"}),
            ("email", {"email": ""}),
            ("email", {"email": 42}),
            ("phone", {"phone": "0612345678"}),
            ("phone", {"phone": "+3361234"}),           # 7 digits
            ("phone", {"phone": "+1234567890123456"}),  # 16 digits
            ("phone", {"phone": "+33 6 12 34 56 78"}),
            ("phone", {"phone": "+0612345678"}),
            ("timezone", {"timezone": "Mars/Base"}),
            ("timezone", {"timezone": "../../etc/passwd"}),
            ("timezone", {"timezone": None}),
            ("locale", {"locale": "english"}),
            ("locale", {"locale": "e"}),
            ("locale", {"locale": "fr_"}),
            ("channels", {"channels": ["email", "fax"]}),
            ("channels", {"channels": ["sms", "email", "sms"]}),
            ("channels", {"channels": "email"}),
            ("channels", {"channels": [1]}),
            ("opted_out", {"opted_out": ["pigeon"]}),
            ("opted_out", {"opted_out": ["sms", "sms"]}),
            ("quiet_hours.start", {"quiet_hours": {"start": "25:00", "end": "07:00"}}),
            ("quiet_hours.end", {"quiet_hours": {"start": "22:00", "end": "7:00"}}),
            ("quiet_hours.end", {"quiet_hours": {"start": "22:00"}}),
            ("quiet_hours.start", {"quiet_hours": {"start": "12:60", "end": "13:00"}}),
            ("quiet_hours", {"quiet_hours": {"start": "22:00", "end": "22:00"}}),
            ("quiet_hours", {"quiet_hours": "22:00-07:00"}),
            ("quiet_hours.stop", {"quiet_hours": {"start": "22:00", "stop": "07:00"}}),
            ("digest_time", {"digest_time": "9am"}),
            ("digest_time", {"digest_time": "24:00"}),
            ("name", {"name": ""}),
            ("name", {"name": "x" * 201}),
            ("name", {"name": "line\nbreak"}),
            ("consent", {"consent": True}),
            ("consent.given", {"consent": {"at": "2026-01-01T00:00:00Z"}}),
            ("consent.given", {"consent": {"given": "yes"}}),
            ("consent.at", {"consent": {"given": True, "at": "yesterday"}}),
            ("consent.at", {"consent": {"given": True, "at": "2026-13-01T00:00:00Z"}}),
            ("consent.at", {"consent": {"given": True, "at": "2999-01-01T00:00:00Z"}}),
            ("consent.source", {"consent": {"given": True, "source": "x" * 201}}),
            ("consent.origin", {"consent": {"given": True, "origin": "web"}}),
            ("timezon", {"timezon": "Europe/Paris"}),
        ]
        for field, extra in cases:
            cid = new_id()
            with self.subTest(field=field, body=extra):
                self.assertInvalid(dict(extra, client_id=cid), field)
                # nothing was stored
                self.assertEqual(self.get(cid).status, 404)

    def test_client_id_required_and_bounded(self):
        for doc in ({}, {"email": "a@example.com"}, {"client_id": ""},
                    {"client_id": "x" * 201}, {"client_id": 7}, {"client_id": None},
                    {"client_id": "tab\there"}):
            with self.subTest(body=doc):
                self.assertInvalid(doc, "client_id")

    def test_unknown_fields_are_all_named(self):
        r = self.post({"client_id": new_id(), "emial": "a@example.com", "chanels": ["sms"]})
        err = self.assertError(r, 400, "invalid_request")
        self.assertTrue(err["message"].startswith("emial, chanels: unknown fields"), err)

    def test_a_field_given_twice_is_refused(self):
        body = '{"client_id": "%s", "email": "a@example.com", "email": "b@example.com"}' % new_id()
        r = self.server.request("POST", PREFS, body=body,
                                headers=dict(self.auth(), **{"Content-Type": "application/json"}))
        err = self.assertError(r, 400, "invalid_request")
        self.assertTrue(err["message"].startswith("email:"), err)

    def test_an_invalid_update_changes_nothing(self):
        cid, before = self.create(**FULL)
        self.assertInvalid({"client_id": cid, "timezone": "Asia/Tokyo", "phone": "12"}, "phone")
        self.assertEqual(self.get(cid).json, before)


class ScopeTest(PrefsCase):

    def test_post_needs_send_and_get_needs_read(self):
        cid, _ = self.create()
        self.assertError(self.post({"client_id": cid}, scope="read"), 403)
        self.assertError(self.get(cid, scope="send"), 403)
        self.assertEqual(self.get(cid, scope="read").status, 200)
        self.assertEqual(self.post({"client_id": cid}, scope="send").status, 200)

    def test_no_token_is_401(self):
        self.assertUnauthorized(self.server.request("POST", PREFS, json_body={"client_id": "x"}))
        self.assertUnauthorized(self.server.request("GET", PREFS + "/x"))


class EncryptionTest(PrefsCase):

    def test_email_and_phone_are_encrypted_at_rest(self):
        cid, _ = self.create(email="secret.person@example.com", phone="+14155550123")
        email_enc, email_index, phone_enc, phone_index = stored(
            cid, "email_enc, email_index, phone_enc, phone_index")
        for enc, plain in ((email_enc, "secret.person"), (phone_enc, "4155550123")):
            self.assertTrue(enc.startswith("v1."), enc)
            self.assertNotIn(plain, enc)
        self.assertRegex(email_index, r"^[0-9a-f]{64}$")
        self.assertRegex(phone_index, r"^[0-9a-f]{64}$")
        # the same address under another client has another ciphertext
        other, _ = self.create(email="secret.person@example.com")
        self.assertNotEqual(stored(other, "email_enc")[0], email_enc)

    def test_same_email_same_blind_index(self):
        a, _ = self.create(email="Same.Person@Example.com")
        b, _ = self.create(email="  same.person@EXAMPLE.COM ")
        c, _ = self.create(email="someone.else@example.com")
        ia, ib, ic = (stored(x, "email_index")[0] for x in (a, b, c))
        self.assertEqual(ia, ib)
        self.assertNotEqual(ia, ic)

    def test_tampered_ciphertext_fails_the_read(self):
        cid, _ = self.create(email="tamper@example.com")
        enc = stored(cid, "email_enc")[0]
        # flip one character of the base64url payload, keep the envelope
        i = len(enc) - 5
        flipped = enc[:i] + ("A" if enc[i] != "A" else "B") + enc[i + 1:]
        psql("UPDATE crm_client_preferences SET email_enc = '%s' WHERE client_id = '%s'"
             % (flipped, cid))
        redis("DEL", cache_key(cid))
        r = self.get(cid)
        err = self.assertError(r, 500)
        self.assertIn("cannot decrypt", err["message"])
        self.assertNotIn("tamper", r.body.decode())
        line = self.server.wait_log(lambda ln: ln.get("msg") == "cannot decrypt stored preferences"
                                    and ln.get("client_id") == cid)
        self.assertIsNotNone(line, "no log line for the decrypt failure")
        self.assertNotIn("tamper@", json.dumps(line))
        # nothing unreadable went to the cache
        self.assertEqual(redis("EXISTS", cache_key(cid)), "0")


class CacheTest(PrefsCase):

    def test_a_read_fills_the_cache_without_plaintext(self):
        cid, _ = self.create(name="Cachée Person", email="cached.person@example.com",
                             phone="+447700900123")
        redis("DEL", cache_key(cid))
        self.assertEqual(self.get(cid).status, 200)
        raw = redis("GET", cache_key(cid))
        self.assertTrue(raw, "no cached row after a read")
        for plain in ("cached.person", "example.com", "447700900123", "Cachée", "Cach"):
            self.assertNotIn(plain, raw)
        row = json.loads(raw)
        self.assertEqual(row["client_id"], cid)
        self.assertTrue(row["email_enc"].startswith("v1."))
        ttl = int(redis("TTL", cache_key(cid)))
        self.assertTrue(0 < ttl <= 300, ttl)

    def test_reads_come_from_the_cache(self):
        cid, _ = self.create(timezone="Europe/Paris")
        self.get(cid)
        # a change behind the engine's back is not seen while the row is cached...
        psql("UPDATE crm_client_preferences SET timezone = 'Asia/Tokyo' "
             "WHERE client_id = '%s'" % cid)
        self.assertEqual(self.get(cid).json["timezone"], "Europe/Paris")
        # ...and is once the cached row is gone
        redis("DEL", cache_key(cid))
        self.assertEqual(self.get(cid).json["timezone"], "Asia/Tokyo")
        self.assertEqual(redis("EXISTS", cache_key(cid)), "1")

    def group_clients(self):
        m = self.server.get("/metrics").body.decode()
        line = [l for l in m.splitlines() if l.startswith("crm_prefs_group_clients_total ")]
        self.assertEqual(len(line), 1, "crm_prefs_group_clients_total is not exported")
        return float(line[0].split()[1])

    def test_a_miss_reads_the_database_through_the_group_read(self):
        cid, _ = self.create(timezone="Europe/Paris")
        self.get(cid)  # cached now
        before = self.group_clients()
        self.assertEqual(self.get(cid).status, 200)
        self.assertEqual(self.group_clients(), before, "a cached row was read again")
        redis("DEL", cache_key(cid))
        self.assertEqual(self.get(cid).json["timezone"], "Europe/Paris")
        self.assertEqual(self.group_clients(), before + 1)
        # a client without a row: read (and found absent) the same way
        self.assertEqual(self.get(new_id()).status, 404)
        self.assertEqual(self.group_clients(), before + 2)

    def test_a_write_replaces_the_cached_row(self):
        cid, _ = self.create(email="first@example.com", opted_out=[])
        self.assertEqual(self.get(cid).json["email"], "first@example.com")
        r = self.post({"client_id": cid, "email": "second@example.com", "opted_out": ["sms"]})
        self.assertEqual(r.status, 200, r)
        g = self.get(cid).json
        self.assertEqual(g["email"], "second@example.com")
        self.assertEqual(g["opted_out"], ["sms"])
        self.assertNotIn("second@", redis("GET", cache_key(cid)))

    def test_an_older_row_never_replaces_a_newer_one_in_the_cache(self):
        cid, _ = self.create(locale="en")
        self.post({"client_id": cid, "locale": "de"})
        cached = json.loads(redis("GET", cache_key(cid)))
        # what a reader that loaded the row before the write would put back
        stale = dict(cached, version=str(int(cached["version"]) - 1), locale="en")
        redis("SET", cache_key(cid), json.dumps(stale, separators=(",", ":")), "EX", "300")
        self.assertEqual(self.get(cid).json["locale"], "en")  # served from the cache
        self.post({"client_id": cid, "locale": "it"})
        self.assertEqual(self.get(cid).json["locale"], "it")
        # a copy newer than the row being written stays (the write that
        # made it committed after this one)
        cached = json.loads(redis("GET", cache_key(cid)))
        newer = dict(cached, version=str(int(cached["version"]) + 10**6), locale="sv")
        redis("SET", cache_key(cid), json.dumps(newer, separators=(",", ":")), "EX", "300")
        self.post({"client_id": cid, "locale": "nl"})
        self.assertEqual(json.loads(redis("GET", cache_key(cid)))["locale"], "sv")
        redis("DEL", cache_key(cid))
        self.assertEqual(self.get(cid).json["locale"], "nl")

    def test_a_cached_row_that_does_not_decrypt_is_read_again(self):
        cid, _ = self.create(email="fine@example.com")
        self.get(cid)
        cached = json.loads(redis("GET", cache_key(cid)))
        cached["email_enc"] = cached["email_enc"][:-4] + "AAAA"
        redis("SET", cache_key(cid), json.dumps(cached, separators=(",", ":")), "EX", "300")
        r = self.get(cid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["email"], "fine@example.com")

    def test_garbage_in_the_cache_is_a_miss(self):
        cid, _ = self.create(locale="pt-BR")
        redis("SET", cache_key(cid), "not json at all", "EX", "300")
        r = self.get(cid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["locale"], "pt-BR")
        self.assertEqual(json.loads(redis("GET", cache_key(cid)))["locale"], "pt-BR")


class RedisDownTest(PrefsCase):
    start_server = False

    def test_reads_and_writes_work_without_redis(self):
        dead = "redis://127.0.0.1:%d/0" % harness.free_port()
        s = self.new_server(redis=dead)
        cid = new_id()
        r = self.post(dict(FULL, client_id=cid), server=s)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.get(cid, server=s).json, r.json)
        u = self.post({"client_id": cid, "locale": "de"}, server=s)
        self.assertEqual(u.status, 200, u)
        self.assertEqual(self.get(cid, server=s).json["locale"], "de")
        self.assertEqual(self.get(new_id(), server=s).status, 404)


class ConsentAuditTest(PrefsCase):

    def audit_rows(self, cid):
        out = psql("SELECT actor, action, details::text FROM crm_audit_log "
                   "WHERE target = 'client:%s' ORDER BY id" % cid)
        return [ln.split("|", 2) for ln in out.splitlines() if ln]

    def test_consent_changes_are_audited(self):
        cid = new_id()
        sub = "apikey:prefs-" + uuid.uuid4().hex[:8]
        hdr = {"Authorization": "Bearer " + make_jwt(claims(scope="send read", sub=sub))}
        r = self.server.request("POST", PREFS, headers=hdr, json_body={
            "client_id": cid, "consent": {"given": True, "source": "checkout"}})
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.json["consent"]["given"])
        self.assertRegex(r.json["consent"]["at"], RFC3339)  # defaults to now
        self.assertEqual(r.json["consent"]["source"], "checkout")
        rows = self.audit_rows(cid)
        self.assertEqual(len(rows), 1, rows)
        actor, action, details = rows[0]
        self.assertEqual(actor, sub)
        self.assertEqual(action, "preferences.consent")
        d = json.loads(details)
        self.assertEqual((d["given"], d["source"]), (True, "checkout"))

        # the same consent again, and other fields: no change, no audit row
        at = r.json["consent"]["at"]
        r = self.server.request("POST", PREFS, headers=hdr, json_body={
            "client_id": cid, "consent": {"given": True}, "locale": "de"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["consent"], {"given": True, "at": at, "source": "checkout"})
        self.assertEqual(len(self.audit_rows(cid)), 1)

        # withdrawal is a change
        r = self.server.request("POST", PREFS, headers=hdr, json_body={
            "client_id": cid, "consent": {"given": False, "at": "2026-02-01T08:00:00Z",
                                          "source": "support call"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["consent"], {"given": False, "at": "2026-02-01T08:00:00Z",
                                             "source": "support call"})
        rows = self.audit_rows(cid)
        self.assertEqual(len(rows), 2, rows)
        d = json.loads(rows[1][2])
        self.assertEqual((d["given"], d["source"]), (False, "support call"))

    def test_no_consent_no_audit(self):
        cid, _ = self.create(email="quiet@example.com")
        self.assertEqual(self.audit_rows(cid), [])


if __name__ == "__main__":
    harness.main()
