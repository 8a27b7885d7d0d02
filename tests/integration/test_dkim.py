"""DKIM signing of outgoing email (issue 14, item 6), checked by an independent
verifier: Debian's python3-dkim (dkimpy), with a dnsfunc that serves the
public key record built here from the key file by the openssl command line
(not by Herald). Messages are read back from the outbox files and from the
SMTP sink (tests/fakes/smtp_sink.py), for RSA and Ed25519 keys, and over a
few hundred generated messages (whitespace runs, trailing blanks, empty
lines, non-ASCII subjects and names, attachments)."""
import base64
import glob
import os
import random
import subprocess
import sys
import unittest

import harness
from test_transport import TransportCase, start_fake, stop

try:
    import dkim
except ImportError:  # tools/deps.sh installs it
    sys.exit("test_dkim: python3-dkim is missing (Debian package python3-dkim; tools/deps.sh)")

DOMAIN, SELECTOR = "herald.example", "hd2026"


def make_key(tmp, kind):
    path = os.path.join(tmp, kind + ".pem")
    args = (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if kind == "rsa"
            else ["-algorithm", "ED25519"])
    subprocess.run(["openssl", "genpkey", *args, "-out", path], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    # RFC 8463: an Ed25519 p= is the raw 32-byte key (the end of the DER)
    p = der[-32:] if kind == "ed25519" else der
    record = "v=DKIM1; k=%s; p=%s" % (kind, base64.b64encode(p).decode())
    return path, record.encode()


def verify(raw, record):
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        return record if name == ("%s._domainkey.%s." % (SELECTOR, DOMAIN)).encode() else None
    try:
        ok = dkim.verify(raw, dnsfunc=dnsfunc)
    except ValueError:  # PyNaCl on an RSA-sized signature against an Ed25519 key
        ok = False
    return ok, asked


PDF = bytes(range(256)) * 20 + b"%%EOF"


def rich_message(comm_id):
    return {"channel": "email", "to": "zoe@example.com", "to_name": "Zoë Ångström",
            "comm_id": comm_id,
            "subject": "Résumé de votre mariage — Zoë & Ana, 12 € ✓ " * 2,
            "text": "Bonjour Zoë,  \n\tvoici le plan.   \n\n\n",
            "html": "<p>Bonjour <b>Zoë</b></p>",
            "unsubscribe_url": "https://herald.example/u/tok123",
            "attachments": [{"filename": "plan-zoé.pdf", "content_type": "application/pdf",
                             "content_base64": base64.b64encode(PDF).decode()}]}


class DkimTest(TransportCase):
    def setUp(self):
        super().setUp()
        self.keys = {k: make_key(self.tmp, k) for k in ("rsa", "ed25519")}
        self.outbox = os.path.join(self.tmp, "outbox")

    def env(self, kind, **more):
        e = {"HERALD_OUTBOX_DIR": self.outbox, "HERALD_DKIM_DOMAIN": DOMAIN,
             "HERALD_DKIM_SELECTOR": SELECTOR, "HERALD_DKIM_KEY_FILE": self.keys[kind][0],
             "HERALD_EMAIL_FROM": "Événements Zoë <events@herald.example>"}
        e.update(more)
        return e

    def outbox_file(self, comm_id, attempt=1):
        with open(os.path.join(self.outbox, "email", "%s-%d.eml" % (comm_id, attempt)),
                  "rb") as f:
            return f.read()

    def assert_signed(self, raw, kind):
        self.assertTrue(raw.startswith(b"DKIM-Signature: v=1; a=%s-sha256; c=relaxed/relaxed;"
                                       % kind.encode()), raw[:120])
        ok, asked = verify(raw, self.keys[kind][1])
        self.assertTrue(ok, raw[:600])
        self.assertEqual(asked, [("%s._domainkey.%s." % (SELECTOR, DOMAIN)).encode()])
        # the other key's record does not verify it
        other = "ed25519" if kind == "rsa" else "rsa"
        self.assertFalse(verify(raw, self.keys[other][1])[0])
        # any change to a signed header or to the body breaks it
        head, body = raw.split(b"\r\n\r\n", 1)
        self.assertFalse(verify(head.replace(b"To: ", b"To: x", 1) + b"\r\n\r\n" + body,
                                self.keys[kind][1])[0])
        self.assertFalse(verify(head + b"\r\n\r\n" + body.replace(b"JVBER", b"JVBEX", 1)
                                if b"JVBER" in body else head + b"\r\n\r\nX" + body,
                                self.keys[kind][1])[0])
        # a second From (the over-signing) breaks it too
        self.assertFalse(verify(head + b"\r\nFrom: evil@attacker.example\r\n\r\n" + body,
                                self.keys[kind][1])[0])

    def test_outbox_file_verifies_rsa_and_ed25519(self):
        for i, kind in enumerate(("rsa", "ed25519")):
            cid = "d1c0ffee-0000-4000-8000-00000000000%d" % i
            out = self.deliver([rich_message(cid)], self.env(kind))
            self.assertTrue(out[cid]["ok"], out)
            raw = self.outbox_file(cid)
            self.assert_signed(raw, kind)
            # the signed fields include the subject, the unsubscribe headers and From twice
            h = raw.split(b"h=", 1)[1].split(b";", 1)[0]
            names = [n.strip() for n in h.replace(b"\r\n", b"").split(b":")]
            for n in (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                      b"content-type", b"list-unsubscribe", b"list-unsubscribe-post"):
                self.assertIn(n, names)
            self.assertEqual(names.count(b"from"), 2)
            self.assertNotIn(b"x-herald-attempt", names)
            for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                self.assertLessEqual(len(line), 78, line)

    def test_smtp_sink_receives_verifiable_messages(self):
        maildir = os.path.join(self.tmp, "mail")
        os.makedirs(maildir)
        sink, ports = start_fake("smtp_sink.py", self.tmp, "--maildir", maildir)
        self.addCleanup(stop, sink)
        for i, kind in enumerate(("rsa", "ed25519")):
            cid = "d2c0ffee-0000-4000-8000-00000000000%d" % i
            env = self.env(kind, HERALD_EMAIL_DRIVER="smtp", HERALD_SMTP_STARTTLS="off",
                           HERALD_SMTP_URL="smtp://127.0.0.1:%d" % ports[0])
            # a body line starting with a dot is dot-stuffed on the wire and
            # unstuffed by the server: the signature still holds
            m = rich_message(cid)
            m["text"] = ".leading dot\n" + m["text"]
            out = self.deliver([m], env)
            self.assertTrue(out[cid]["ok"], out)
        got = sorted(glob.glob(os.path.join(maildir, "*.eml")),
                     key=lambda p: int(os.path.basename(p).split(".")[0]))
        self.assertEqual(len(got), 2)
        for path, kind in zip(got, ("rsa", "ed25519")):
            with open(path, "rb") as f:
                self.assert_signed(f.read(), kind)

    def test_generated_messages_all_verify(self):
        rng = random.Random(14)
        pieces = ["a", "Zoë", "€", "  ", "\t", " \t ", "x" * 90, "—", "naïve", "日本",
                  "=", ".", "From ", "😀", "-- ", "\u00a0"]

        def text():
            lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
                     for _ in range(rng.randint(0, 8))]
            return "\n".join(lines) + rng.choice(["", "\n", "\n\n\n", " \n\t\n"])
        total = 0
        for kind in ("rsa", "ed25519"):
            msgs = []
            for i in range(150):
                m = {"channel": "email", "to": "user%d@example.com" % i,
                     "comm_id": "d3c0ffee-0000-4000-8000-%012d" % (total + i),
                     "subject": "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20))),
                     "text": text() or "x"}
                if rng.random() < 0.5:
                    m["to_name"] = rng.choice(["Zoë Ångström", "  A  B  ", "Ana"])
                if rng.random() < 0.4:
                    m["html"] = "<p>%s</p>" % text()
                if rng.random() < 0.3:
                    data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))
                    m["attachments"] = [{"filename": rng.choice(["a.bin", "café €.txt"]),
                                         "content_type": "application/octet-stream",
                                         "content_base64": base64.b64encode(data).decode()}]
                if rng.random() < 0.3:
                    m["unsubscribe_url"] = "https://herald.example/u/t%d" % i
                msgs.append(m)
            out = self.deliver(msgs, self.env(kind))
            for m in msgs:
                self.assertTrue(out[m["comm_id"]]["ok"], out[m["comm_id"]])
                raw = self.outbox_file(m["comm_id"])
                ok, _ = verify(raw, self.keys[kind][1])
                self.assertTrue(ok, (m, raw[:800]))
            total += len(msgs)
        self.assertEqual(total, 300)

    def test_off_unless_configured(self):
        cid = "d4c0ffee-0000-4000-8000-000000000000"
        out = self.deliver([rich_message(cid)], {"HERALD_OUTBOX_DIR": self.outbox})
        self.assertTrue(out[cid]["ok"], out)
        self.assertNotIn(b"DKIM-Signature", self.outbox_file(cid))
        # a key file alone does not turn signing on
        cid2 = "d4c0ffee-0000-4000-8000-000000000001"
        self.deliver([rich_message(cid2)], {"HERALD_OUTBOX_DIR": self.outbox,
                                            "HERALD_DKIM_KEY_FILE": self.keys["rsa"][0]})
        self.assertNotIn(b"DKIM-Signature", self.outbox_file(cid2))

    def test_bad_settings_refuse_to_start(self):
        junk = os.path.join(self.tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a key\n")
        cases = [
            (dict(HERALD_DKIM_KEY_FILE=""), "HERALD_DKIM_KEY_FILE is not set"),
            (dict(HERALD_DKIM_KEY_FILE=os.path.join(self.tmp, "absent.pem")), "cannot read"),
            (dict(HERALD_DKIM_KEY_FILE=junk), "holds no unencrypted PEM private key"),
            (dict(HERALD_DKIM_DOMAIN="bad domain"), "dkim domain: not a domain name"),
            (dict(HERALD_DKIM_SELECTOR=""), "dkim_domain and dkim_selector go together"),
        ]
        for more, want in cases:
            e = harness.base_env(HERALD_VAR_DIR=os.path.join(self.tmp, "var"),
                                 **self.env("rsa", **more))
            if more.get("HERALD_DKIM_SELECTOR") == "":
                del e["HERALD_DKIM_SELECTOR"]
            p = subprocess.run([harness.HERALD_BIN, "deliver"], env=e, input="",
                               capture_output=True, text=True, timeout=30,
                               cwd=os.environ.get("HERALD_SOURCE_DIR", os.getcwd()))
            self.assertNotEqual(p.returncode, 0, more)
            self.assertIn(want, p.stderr, more)
            self.assertNotIn("PRIVATE KEY", p.stderr)


if __name__ == "__main__":
    unittest.main()
