"""Open and click tracking end to end with the real binary (DESIGN.md §5).

A vendor_options email goes out through the outbox driver; the .eml it
leaves is parsed with Python's `email` module, and its rewritten links and
pixel are fetched from the server exactly as a mail client would:

  GET /t/o/{token}.gif  always a no-cache 1x1 GIF; an open is recorded only
                        for a valid, unexpired open token
  GET /t/c/{token}      302 to the stored URL the token names; 410 when the
                        token has expired, 404 when it was tampered with,
                        forged or names no stored link (never a Location)

The results are checked against the message's history (GET
/api/crm/communications/{id}: status, opened_at, clicked_at, events from
provider 'tracking') and the row itself (crm_communications.tracked_links,
read with psql). Tokens the API cannot produce (expired ones, ones for a
URL that was not sent) are minted here from the documented format and the
test server's known encryption key; a freshly minted valid token must
redirect, so a wrong minting cannot pass for a rejection. A second server
runs a copy of scripts/ with tracking switched off for vendor_options.
"""
import base64
import email
import email.policy
import hashlib
import hmac
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import unittest
import uuid

import harness

VENDOR_A = "https://vendors.example.com/a?x=1&y=2"
VENDOR_C = "https://vendors.example.com/c"
PLAN_URL = "https://plans.example.com/p/7"
CONTEXT = {"event_type": "wedding", "event_date": "2027-06-14", "plan_url": PLAN_URL,
           "categories": [{"name": "Venue", "vendors": [
               {"name": "A & B", "price": 100, "url": VENDOR_A},
               {"name": "C", "price": 200, "url": VENDOR_C}]}]}
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# The tracking key: HMAC-SHA256(encryption key, "herald/tracking/v1"); its id
# is the encryption key's: SHA-256("herald-kid" || key)[:4].
def track_key(enc_b64):
    return hmac.new(base64.b64decode(enc_b64), b"herald/tracking/v1", hashlib.sha256).digest()


def key_id(enc_b64):
    return hashlib.sha256(b"herald-kid" + base64.b64decode(enc_b64)).digest()[:4]


TRACK_KEY = track_key(harness.ENCRYPTION_KEY)
TRACK_KID = key_id(harness.ENCRYPTION_KEY)


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def mint(kind, comm_id, index=0, expires=None, url=None, key=TRACK_KEY, kid=TRACK_KID,
         version=2):
    """A token of the documented layout: ver 2 | kind | key id (4 bytes) | expiry
    u32 BE | comm id | index u16 BE | SHA-256(url)[:8] (zeros for the pixel), then
    HMAC[:16]. Version 1 (links sent before key ids) has no key id."""
    if expires is None:
        expires = int(time.time()) + 86400
    h = hashlib.sha256(url.encode()).digest()[:8] if url is not None else bytes(8)
    payload = (bytes([version, ord(kind)]) + (kid if version == 2 else b"")
               + struct.pack(">I", expires) + uuid.UUID(comm_id).bytes
               + struct.pack(">H", index) + h)
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return harness.b64url(payload + mac)


def unpack(token, key=TRACK_KEY, kid=TRACK_KID):
    """(kind, expires, comm_id, index, url_hash8) of a token whose MAC checks here."""
    raw = harness.b64url_decode(token)
    if len(raw) != 52:
        raise AssertionError("token %r is %d bytes, want 52" % (token, len(raw)))
    mac = hmac.new(key, raw[:36], hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, raw[36:]):
        raise AssertionError("token %r: MAC does not check with the derived key" % token)
    if raw[0] != 2 or raw[2:6] != kid:
        raise AssertionError("token %r: version %d, key id %s" % (token, raw[0], raw[2:6].hex()))
    (exp,) = struct.unpack(">I", raw[6:10])
    (idx,) = struct.unpack(">H", raw[26:28])
    return chr(raw[1]), exp, str(uuid.UUID(bytes=raw[10:26])), idx, raw[28:36]


class TrackingCase(harness.HeraldCase):
    """One server with its own database, its public URL pointing at itself."""

    SCRIPTS = None  # a scripts/ directory of the class's own, or the default

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-track-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.db_url, cls.drop_db = harness.fresh_database()
        env = {"HERALD_DATABASE_URL": cls.db_url, "HERALD_OUTBOX_DIR": cls.outbox,
               "HERALD_WORKERS": "2", "HERALD_EMAIL_DRIVER": "outbox"}
        scripts = cls.prepare_scripts()
        if scripts:
            env["HERALD_SCRIPTS_DIR"] = scripts
        # The port is picked when the Server is made, so the public URL can
        # name it before the start: the links in the mail reach this server.
        s = harness.Server(env=env)
        s.env["HERALD_PUBLIC_URL"] = "http://127.0.0.1:%d" % s.port
        cls.public = s.env["HERALD_PUBLIC_URL"]
        cls.servers.append(s)
        try:
            s.start()
        except Exception:
            s.cleanup()
            cls.servers.remove(s)
            cls.drop_db()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.server = s

    @classmethod
    def prepare_scripts(cls):
        return None

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------

    def client(self):
        cid = "client-" + uuid.uuid4().hex[:12]
        prefs = {"client_id": cid, "name": "Zoë Martin", "email": "zoe@example.com",
                 "phone": "+14155551234", "timezone": "Europe/Paris",
                 "consent": {"given": True, "source": "test signup form"}}
        r = self.server.request("POST", "/api/crm/preferences", json_body=prefs, headers=auth())
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send_sent(self, message_type="vendor_options", context=CONTEXT):
        """Sends one critical message to a new client; returns its id once sent."""
        body = {"plan_id": "plan-t", "client_id": self.client(), "message_type": message_type,
                "urgency": "critical", "context": context}
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        comm = r.json["id"]
        doc = self.settle(comm)
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "email"), doc)
        return comm

    def settle(self, comm, timeout=15):
        deadline = time.time() + timeout
        while True:
            doc = self.doc(comm)
            if doc["status"] in ("sent", "failed", "cancelled") or time.time() > deadline:
                return doc
            time.sleep(0.05)

    def doc(self, comm):
        r = self.server.request("GET", "/api/crm/communications/" + comm, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def hits(self, doc, kind=None):
        """The tracking events of a history document ('open' / 'click')."""
        return [e for e in doc["events"] if e.get("provider") == "tracking"
                and (kind is None or e.get("type") == kind)]

    def html(self, comm):
        path = os.path.join(self.outbox, "email", comm + "-1.eml")
        with open(path, "rb") as f:
            m = email.message_from_bytes(f.read(), policy=email.policy.default)
        return m.get_body(("html",)).get_content()

    def hrefs(self, html):
        return re.findall(r'<a\b[^>]*?\shref="([^"]*)"', html)

    def pixels(self, html):
        return re.findall(r'<img\b[^>]*?\ssrc="([^"]*/t/o/[^"]*)"', html)

    def sql(self, query, *args):
        """One value from the class's database (psql, literal arguments quoted)."""
        q = query % tuple("'%s'" % a.replace("'", "''") for a in args)
        r = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-d", self.db_url, "-c", q],
                           capture_output=True, check=True)
        return r.stdout.decode().strip()

    def local(self, link):
        """The path of a link that names this server's public URL."""
        self.assertTrue(link.startswith(self.public + "/"), link)
        return link[len(self.public):]


class TrackingTest(TrackingCase):

    def tracked(self):
        """A sent vendor_options email: (comm id, [click links], pixel link).
        The clicks: the two vendors, then the plan's button (plan_url)."""
        comm = self.send_sent()
        html = self.html(comm)
        clicks = [h for h in self.hrefs(html) if "/t/c/" in h]
        pixels = self.pixels(html)
        self.assertEqual(len(clicks), 3, html)
        self.assertEqual(len(pixels), 1, html)
        return comm, clicks, pixels[0]

    def get(self, path):
        return self.server.request("GET", path)

    def assertPixel(self, r):
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip(), "image/gif", r)
        self.assertTrue(r.body.startswith(b"GIF89a"), r)
        self.assertLess(len(r.body), 100, r)
        cc = (r.header("Cache-Control") or "").lower()
        self.assertTrue("no-store" in cc or "no-cache" in cc, r)
        self.assertIsNone(r.header("Location"), r)

    def assertNoRedirect(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertIsNone(r.header("Location"), r)

    # -- the email ---------------------------------------------------------

    def test_links_are_rewritten_the_pixel_added_and_unsubscribe_left_direct(self):
        comm, clicks, pixel = self.tracked()
        html = self.html(comm)
        hrefs = self.hrefs(html)
        # the vendor links in their order, through this server's /t/c/
        for i, (link, url) in enumerate(zip(clicks, (VENDOR_A, VENDOR_C))):
            self.assertRegex(link, "^" + re.escape(self.public) + "/t/c/[A-Za-z0-9_-]{70}$")
            kind, exp, cid, idx, h = unpack(link.rsplit("/", 1)[1])
            self.assertEqual((kind, cid, idx), ("c", comm, i), link)
            self.assertEqual(h, hashlib.sha256(url.encode()).digest()[:8], link)
            # settings.tracking.link_days = 365
            self.assertAlmostEqual(exp, time.time() + 365 * 86400, delta=120)
        self.assertNotIn("vendors.example.com", " ".join(hrefs), html)
        # the unsubscribe link stays a direct link to /u/: this message's own
        # signed token of kind 'u', which never expires (issue 12)
        unsub = [h for h in hrefs if "/u/" in h]
        self.assertEqual(len(unsub), 1, hrefs)
        self.assertRegex(unsub[0], "^" + re.escape(self.public) + "/u/[A-Za-z0-9_-]{70}$")
        kind, exp, cid, idx, h = unpack(unsub[0].rsplit("/", 1)[1])
        self.assertEqual((kind, exp, cid, idx, h), ("u", 0xFFFFFFFF, comm, 0, bytes(8)), unsub)
        # the pixel, last thing in the body
        self.assertRegex(pixel, "^" + re.escape(self.public) + r"/t/o/[A-Za-z0-9_-]{70}\.gif$")
        kind, _, cid, idx, h = unpack(pixel.rsplit("/", 1)[1][:-4])
        self.assertEqual((kind, cid, idx, h), ("o", comm, 0, bytes(8)), pixel)
        self.assertRegex(html, re.escape(pixel) + r'"[^>]*>\s*</body>', html)
        # the links stored with the message, decoded (no &amp;), by index
        self.assertEqual(self.sql("SELECT tracked_links::text FROM crm_communications "
                                  "WHERE id = %s", comm),
                         '["%s", "%s", "%s"]' % (VENDOR_A, VENDOR_C, PLAN_URL))

    # -- opens and clicks --------------------------------------------------

    def test_open_click_click_open_moves_forward_only(self):
        comm, clicks, pixel = self.tracked()
        self.assertEqual(self.hits(self.doc(comm)), [])

        self.assertPixel(self.get(self.local(pixel)))
        doc = self.doc(comm)
        self.assertEqual(doc["status"], "opened", doc)
        self.assertIsNotNone(doc["opened_at"], doc)
        self.assertIsNone(doc["clicked_at"], doc)
        self.assertEqual([(e["type"], e["channel"]) for e in self.hits(doc)],
                         [("open", "email")], doc)
        opened_at = doc["opened_at"]

        r = self.get(self.local(clicks[0]))
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("Location"), VENDOR_A, r)
        cc = (r.header("Cache-Control") or "").lower()
        self.assertTrue("no-store" in cc or "no-cache" in cc, r)
        doc = self.doc(comm)
        self.assertEqual(doc["status"], "clicked", doc)
        self.assertIsNotNone(doc["clicked_at"], doc)
        self.assertEqual(doc["opened_at"], opened_at, doc)
        self.assertEqual(len(self.hits(doc, "click")), 1, doc)
        clicked_at = doc["clicked_at"]
        self.assertEqual(self.sql("SELECT details->>'link' || ' ' || (details->>'url') FROM "
                                  "crm_delivery_logs WHERE communication_id = %s AND "
                                  "event_type = 'click'", comm), "0 " + VENDOR_A)

        time.sleep(0.05)  # so a second stamp could not be equal by chance
        r = self.get(self.local(clicks[1]))
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_C), r)
        r = self.get(self.local(clicks[0]))
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_A), r)
        doc = self.doc(comm)
        self.assertEqual(len(self.hits(doc, "click")), 3, doc)
        self.assertEqual(doc["clicked_at"], clicked_at, "the first click is kept")

        # an open after the click never moves the message back
        self.assertPixel(self.get(self.local(pixel)))
        doc = self.doc(comm)
        self.assertEqual(doc["status"], "clicked", doc)
        self.assertEqual(doc["opened_at"], opened_at, doc)
        self.assertEqual(doc["clicked_at"], clicked_at, doc)
        self.assertEqual([e["type"] for e in self.hits(doc)],
                         ["open", "click", "click", "click", "open"], doc)

    def test_a_click_without_an_open_sets_clicked(self):
        comm, clicks, _ = self.tracked()
        r = self.get(self.local(clicks[1]))
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_C), r)
        doc = self.doc(comm)
        self.assertEqual(doc["status"], "clicked", doc)
        self.assertIsNotNone(doc["clicked_at"], doc)

    # -- what must never redirect -----------------------------------------

    def test_tampered_random_and_path_tricks_are_404_without_a_location(self):
        comm, clicks, pixel = self.tracked()
        token = clicks[0].rsplit("/", 1)[1]
        mid = token[32]
        tampered = token[:32] + ("B" if mid == "A" else "A") + token[33:]
        random_tok = "".join(B64URL[b % 64] for b in os.urandom(64))
        open_tok = pixel.rsplit("/", 1)[1][:-4]
        paths = {
            "tampered": "/t/c/" + tampered,
            "random": "/t/c/" + random_tok,
            "open token as a click": "/t/c/" + open_tok,
            "%2F inside": "/t/c/" + token[:20] + "%2F" + token[23:],
            "%2F%2E%2E": "/t/c/%2F%2E%2E%2F" + token[9:],
            "../ inside": "/t/c/" + token[:20] + "../" + token[23:],
            "../ before": "/t/c/../c/" + token,
            "trailing slash": "/t/c/" + token + "/",
            "with .gif": "/t/c/" + token + ".gif",
            "padded": "/t/c/" + token + "==",
            "twice": "/t/c/" + token + token,
            "300 chars": "/t/c/" + (token * 5)[:300],
            "empty": "/t/c/",
        }
        for what, path in paths.items():
            with self.subTest(what):
                r = self.get(path)
                self.assertNoRedirect(r, 404)
        # a percent-encoded character decodes to the same token (router.h:
        # captures are percent-decoded)
        r = self.get("/t/c/%%%02X" % ord(token[0]) + token[1:])
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_A), r)
        r = self.get(self.local(clicks[0]))
        self.assertEqual(r.status, 302, r)
        doc = self.doc(comm)
        self.assertEqual([e["type"] for e in self.hits(doc)], ["click", "click"], doc)

    def test_the_404_and_410_pages_are_html(self):
        comm, _, _ = self.tracked()
        r = self.get("/t/c/" + mint("c", comm, 0, url=VENDOR_C))
        self.assertNoRedirect(r, 404)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/html"), r)
        self.assertIn(b"not valid", r.body)
        r = self.get("/t/c/" + mint("c", comm, 0, expires=int(time.time()) - 3600, url=VENDOR_A))
        self.assertNoRedirect(r, 410)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/html"), r)
        self.assertIn(b"expired", r.body)

    def test_python_minted_tokens_expired_other_url_other_index(self):
        comm, _, _ = self.tracked()
        now = int(time.time())
        # the control: this minting is the server's (else every check below
        # would pass for the wrong reason)
        r = self.get("/t/c/" + mint("c", comm, 0, url=VENDOR_A))
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_A), r)
        r = self.get("/t/c/" + mint("c", comm, 1, url=VENDOR_C))
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_C), r)
        before = self.hits(self.doc(comm))

        cases = {
            "expired an hour ago": (410, mint("c", comm, 0, expires=now - 3600, url=VENDOR_A)),
            "expired a year ago": (410, mint("c", comm, 0, expires=now - 366 * 86400,
                                             url=VENDOR_A)),
            "another URL on index 0": (404, mint("c", comm, 0, url="https://evil.example/")),
            "index 1's URL on index 0": (404, mint("c", comm, 0, url=VENDOR_C)),
            "no link at index 2": (404, mint("c", comm, 2, url=VENDOR_A)),
            "index 65535": (404, mint("c", comm, 65535, url=VENDOR_A)),
            "another message": (404, mint("c", str(uuid.uuid4()), 0, url=VENDOR_A)),
            "another key": (404, mint("c", comm, 0, url=VENDOR_A, key=bytes(32))),
        }
        for what, (status, tok) in cases.items():
            with self.subTest(what):
                self.assertNoRedirect(self.get("/t/c/" + tok), status)
        self.assertEqual(self.hits(self.doc(comm)), before, "a refused click records nothing")

    def test_pixel_answers_whatever_the_token_and_records_only_valid_opens(self):
        comm, clicks, pixel = self.tracked()
        token = pixel.rsplit("/", 1)[1][:-4]
        bad = {
            "garbage": "/t/o/garbage.gif",
            "tampered": "/t/o/%s%s%s.gif" % (token[:32], "B" if token[32] == "A" else "A",
                                             token[33:]),
            "no .gif": "/t/o/" + token,
            ".GIF": "/t/o/" + token + ".GIF",
            "click token": "/t/o/" + clicks[0].rsplit("/", 1)[1] + ".gif",
            "expired": "/t/o/" + mint("o", comm, expires=int(time.time()) - 60) + ".gif",
            "another key": "/t/o/" + mint("o", comm, key=bytes(32)) + ".gif",
            "only .gif": "/t/o/.gif",
        }
        for what, path in bad.items():
            with self.subTest(what):
                self.assertPixel(self.get(path))
        doc = self.doc(comm)
        self.assertEqual(self.hits(doc), [], doc)
        self.assertEqual(doc["status"], "sent", doc)
        self.assertIsNone(doc["opened_at"], doc)
        # the control: a valid pixel on the same message does record
        self.assertPixel(self.get("/t/o/" + mint("o", comm) + ".gif"))
        doc = self.doc(comm)
        self.assertEqual([e["type"] for e in self.hits(doc)], ["open"], doc)
        self.assertEqual(doc["status"], "opened", doc)


class TrackingOffTest(TrackingCase):
    """settings.tracking.off = { vendor_options = true } in a copy of scripts/."""

    @classmethod
    def prepare_scripts(cls):
        scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(harness.SOURCE_DIR, "scripts"), scripts)
        path = os.path.join(scripts, "settings.lua")
        with open(path) as f:
            text = f.read()
        new, n = re.subn(r"(tracking = \{.*?\n\s*off = )\{\}", r"\1{ vendor_options = true }",
                         text, count=1, flags=re.S)
        if n != 1:
            raise AssertionError("settings.lua has no `tracking = { ... off = {} }` to edit")
        with open(path, "w") as f:
            f.write(new)
        return scripts

    def test_a_type_switched_off_keeps_its_links_and_gets_no_pixel(self):
        comm = self.send_sent("vendor_options")
        html = self.html(comm)
        self.assertEqual([h for h in self.hrefs(html) if "vendors.example.com" in h],
                         [VENDOR_A.replace("&", "&amp;"), VENDOR_C], html)
        self.assertNotIn("/t/c/", html)
        self.assertNotIn("/t/o/", html)
        self.assertEqual(self.sql("SELECT coalesce(tracked_links::text, 'null') FROM "
                                  "crm_communications WHERE id = %s", comm), "null")

    def test_other_types_are_still_tracked_on_this_server(self):
        # the control: the copy of scripts/ is in use and only vendor_options is off
        comm = self.send_sent("welcome", {"event_type": "wedding", "event_date": "2027-06-14"})
        self.assertEqual(len(self.pixels(self.html(comm))), 1)


class TrackingRotationTest(TrackingCase):
    """Issue 17, item 5: rotating the encryption key keeps the links already
    sent working while the old key stays in HERALD_ENCRYPTION_OLD_KEYS."""

    NEW_KEY = base64.b64encode(bytes(range(100, 132))).decode()

    def rotated(self, keep_old=True):
        """A second server on the same database whose current key is NEW_KEY."""
        env = {"HERALD_DATABASE_URL": self.db_url, "HERALD_OUTBOX_DIR": self.outbox,
               "HERALD_WORKERS": "1", "HERALD_ENCRYPTION_KEY": self.NEW_KEY,
               "HERALD_ENCRYPTION_OLD_KEYS": harness.ENCRYPTION_KEY if keep_old else None}
        return self.new_server(env=env)

    def hit_count(self, comm, kind):
        return int(self.sql("SELECT count(*) FROM crm_delivery_logs WHERE communication_id = %s"
                            " AND provider = 'tracking' AND event_type = " + "'%s'" % kind,
                            comm))

    def test_old_links_count_and_redirect_after_rotation_and_die_with_the_old_key(self):
        comm = self.send_sent()
        html = self.html(comm)
        clicks = [self.local(h) for h in self.hrefs(html) if "/t/c/" in h]
        pixel = self.local(self.pixels(html)[0])
        self.assertEqual(len(clicks), 3, html)  # two vendors, the plan's button
        # the links were signed by the old key and name it
        unpack(clicks[0].rsplit("/", 1)[1])

        rot = self.rotated()
        r = rot.request("GET", pixel)
        self.assertEqual((r.status, r.body[:6]), (200, b"GIF89a"), r)
        r = rot.request("GET", clicks[0])
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_A), r)
        self.assertEqual(self.hit_count(comm, "open"), 1)
        self.assertEqual(self.hit_count(comm, "click"), 1)
        # a link sent before key ids (version 1) under the old key still works
        legacy = mint("c", comm, 1, url=VENDOR_C, version=1)
        r = rot.request("GET", "/t/c/" + legacy)
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_C), r)
        self.assertEqual(self.hit_count(comm, "click"), 2)
        # new links are signed by the new key
        fresh = mint("c", comm, 0, url=VENDOR_A, key=track_key(self.NEW_KEY),
                     kid=key_id(self.NEW_KEY))
        r = rot.request("GET", "/t/c/" + fresh)
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_A), r)
        # tampered is still tampered
        tok = clicks[0].rsplit("/", 1)[1]
        tampered = tok[:40] + ("B" if tok[40] == "A" else "A") + tok[41:]
        r = rot.request("GET", "/t/c/" + tampered)
        self.assertEqual((r.status, r.header("Location")), (404, None), r)
        # a key id relabelled to the new key (MAC of the old) is tampering too
        relabelled = mint("c", comm, 0, url=VENDOR_A, kid=key_id(self.NEW_KEY))
        r = rot.request("GET", "/t/c/" + relabelled)
        self.assertEqual((r.status, r.header("Location")), (404, None), r)
        clicks_before = self.hit_count(comm, "click")

        # the old key removed from the keyring: its links are dead
        gone = self.rotated(keep_old=False)
        r = gone.request("GET", clicks[1])
        self.assertEqual((r.status, r.header("Location")), (404, None), r)
        r = gone.request("GET", "/t/c/" + legacy)
        self.assertEqual((r.status, r.header("Location")), (404, None), r)
        r = gone.request("GET", pixel)
        self.assertEqual((r.status, r.body[:6]), (200, b"GIF89a"), r)  # a pixel, recorded nowhere
        self.assertEqual(self.hit_count(comm, "open"), 1)
        self.assertEqual(self.hit_count(comm, "click"), clicks_before)
        # the new key's links still work there
        r = gone.request("GET", "/t/c/" + fresh)
        self.assertEqual((r.status, r.header("Location")), (302, VENDOR_A), r)


if __name__ == "__main__":
    harness.main()
