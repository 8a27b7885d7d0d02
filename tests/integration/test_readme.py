"""The README's walk-through runs verbatim, top to bottom (issue 15, item 1).

Every ```sh block under the README's "## A first walk-through" heading is run,
in order, in one bash session, against a real `herald serve` (its own database),
from a directory laid out like the repository (build/herald, config.lua,
scripts/, templates/, migrations/, and the server's var/). Only the address
changes: http://127.0.0.1:8080 becomes the test server's.

A step is a run of command lines; comment and blank lines separate steps. The
`# →` comment after a step is the answer the README promises: the test checks
the real answer against it (the same keys and the same literal strings for a
JSON answer, a matching line otherwise, `...`/`…`/`<id>` standing for anything),
and checks each step's answer against what it must mean (CHECKS below). A step
no check knows, or a check no step reaches, fails the test: a changed README
needs its test changed too.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

README = os.path.join(harness.SOURCE_DIR, "README.md")
HEADING = "## A first walk-through"
README_URL = "http://127.0.0.1:8080"
TYPES = {"welcome", "budget_summary", "vendor_options", "selection_confirmation",
         "blueprint_delivery", "error_notification"}


def walkthrough_blocks(text):
    """The ```sh blocks of the walk-through section, in order."""
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    section = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)


def steps_of(block):
    """[(command, expected)]: expected is the `# →` text after the command ('' if none)."""
    steps, cmd, exp, in_exp = [], [], [], False

    def flush():
        if cmd:
            steps.append(("\n".join(cmd), "\n".join(exp)))
        cmd.clear()
        exp.clear()

    for line in block.splitlines():
        s = line.strip()
        if s.startswith("# →"):
            in_exp = True
            exp.append(s[len("# →"):].strip())
        elif s.startswith("#") and in_exp and line.startswith("#  "):
            exp.append(s[1:].strip())
        elif s == "" or s.startswith("#"):
            flush()
            in_exp = False
        else:
            if in_exp:
                flush()
                in_exp = False
            cmd.append(line)
    flush()
    return steps


def placeholder_rx(text):
    rx = re.escape(text)
    for ph in (re.escape("..."), re.escape("…")):
        rx = rx.replace(ph, ".*")
    return rx.replace(re.escape("<id>"), "[0-9a-f-]{36}")


def flatten(doc, keys, strings):
    if isinstance(doc, dict):
        for k, v in doc.items():
            keys.add(k)
            flatten(v, keys, strings)
    elif isinstance(doc, list):
        for v in doc:
            flatten(v, keys, strings)
    elif isinstance(doc, str):
        strings.add(doc)


def json_of(out):
    try:
        return json.loads(out)
    except ValueError:
        return None


def lines(out):
    return out.splitlines()


# (name, which step it is, what its answer must be). Each check gets
# (output, results so far) and returns a message when the answer is wrong.
def _health(out, seen):
    d = json_of(out)
    return None if d and d["status"] == "ok" and d["database"]["status"] == "up" else out


def _key(out, seen):
    return None if out == "" else "the key went to the terminal: %r" % out


def _pair(out, seen):
    d = json_of(out)
    seen["pair"] = d
    return None if d and d["token_type"] == "Bearer" and d["scope"] == "send read" else out


def _me(out, seen):
    d = json_of(out)
    return None if d and d["sub"] == "apikey:planner" and d["scope"] == "send read" else out


def _refresh(out, seen):
    d = json_of(out)
    ok = d and "access_token" in d and d["refresh_token"] != seen["pair"]["refresh_token"]
    return None if ok else out


def _metrics(out, seen):
    return None if 'crm_queue_jobs{state="due"} 0' in lines(out) else out


def _prefs(out, seen):
    d = json_of(out)
    ok = d and d["client_id"] == "c-42" and d["email"] == "maria@example.com" and \
        d["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    return None if ok else out


def _send(out, seen):
    d = json_of(out)
    seen["sent"] = d
    ok = d and d["status"] == "sent" and d["strategy"]["primary_channel"] == "email"
    return None if ok else out


def _refused(out, seen):
    d = json_of(out)
    ok = d and d["error"]["code"] == "invalid_context" and \
        [p["path"] for p in d["error"]["problems"]] == ["plan_url"]
    return None if ok else out


def _types(out, seen):
    return None if TYPES <= set(lines(out)) else out


def _message(out, seen):
    d = json_of(out)
    ok = d and d["id"] == seen["sent"]["id"] and d["status"] == "sent" and \
        d["channel"] == "email" and d["attempts"][0]["provider"] == "outbox"
    return None if ok else out


def _history(out, seen):
    d = json_of(out)
    return None if d and [i["id"] for i in d["items"]] == [seen["sent"]["id"]] else out


def _outbox(out, seen):
    return None if lines(out) == ["%s-1.eml" % seen["sent"]["id"]] else out


def _subject(out, seen):
    return None if re.fullmatch(r"Subject: \S.*", out.strip()) else out


CHECKS = [
    ("health", lambda c: c.startswith("curl") and "/api/crm/health" in c, _health),
    ("api key", lambda c: "apikey create" in c, _key),
    ("token", lambda c: "/api/crm/auth/token" in c, _pair),
    ("me", lambda c: "/api/crm/auth/me" in c, _me),
    ("refresh", lambda c: "/api/crm/auth/refresh" in c, _refresh),
    ("metrics", lambda c: "/metrics" in c, _metrics),
    ("preferences", lambda c: "/api/crm/preferences" in c, _prefs),
    ("send", lambda c: "SENT=" in c, _send),
    ("refused", lambda c: "/api/crm/communications" in c and "-X POST" in c
     and "plan_url" not in c, _refused),
    ("types", lambda c: "/api/crm/message-types" in c, _types),
    ("message", lambda c: "/api/crm/communications/$ID" in c, _message),
    ("history", lambda c: "communications?client_id=" in c, _history),
    ("outbox", lambda c: c.startswith("ls var/outbox/email"), _outbox),
    ("subject", lambda c: "Subject:" in c, _subject),
]


class ReadmeWalkthroughTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        cls.db_url, cls.drop_db = harness.fresh_database()
        super().setUpClass()
        s = harness.Server(env={"HERALD_DATABASE_URL": cls.db_url})
        cls.servers.append(s)
        # the server's var/ is the walk-through's var/: lay the rest of the
        # repository out around it
        cls.root = s.tmp
        s.env["HERALD_OUTBOX_DIR"] = os.path.join(cls.root, "var", "outbox")
        os.makedirs(os.path.join(cls.root, "build"))
        os.symlink(harness.HERALD_BIN, os.path.join(cls.root, "build", "herald"))
        for name in ("config.lua", "scripts", "templates", "migrations"):
            os.symlink(os.path.join(harness.SOURCE_DIR, name), os.path.join(cls.root, name))
        s.start()
        cls.server = s

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    def test_steps_are_found(self):
        with open(README) as f:
            blocks = walkthrough_blocks(f.read())
        self.assertGreaterEqual(len(blocks), 2)
        steps = [st for b in blocks for st in steps_of(b)]
        self.assertGreaterEqual(len(steps), len(CHECKS))
        for cmd, _ in steps:
            self.assertNotIn("TOKEN=...", cmd, "a placeholder the reader must fill in")

    def test_walkthrough_runs_verbatim(self):
        with open(README) as f:
            blocks = walkthrough_blocks(f.read())
        steps = [st for b in blocks for st in steps_of(b)]
        url = "http://127.0.0.1:%d" % self.server.port
        script = ["set -o pipefail"]
        for i, (cmd, _) in enumerate(steps):
            script.append("echo '@@step %d'\n%s\nrc=$?; printf '\\n@@rc %d %%d\\n' $rc" % (
                i, cmd.replace(README_URL, url), i))
        env = harness.base_env(HERALD_DATABASE_URL=self.db_url, HERALD_VAR_DIR=None,
                               HERALD_OUTBOX_DIR=None)
        p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=self.root, env=env,
                           capture_output=True, text=True, timeout=120)
        outputs = {}
        for m in re.finditer(r"^@@step (\d+)\n(.*?)^@@rc \1 (\d+)$", p.stdout, re.M | re.S):
            outputs[int(m.group(1))] = (m.group(2).rstrip("\n"), int(m.group(3)))
        seen, used = {}, set()
        for i, (cmd, expected) in enumerate(steps):
            where = "README step %d:\n%s\n(stderr: %s)" % (i, cmd, p.stderr[-1500:])
            self.assertIn(i, outputs, "did not run: " + where)
            out, rc = outputs[i]
            self.assertEqual(rc, 0, where)
            if expected:
                self.assert_promised(out, expected, where)
            mine = [c for c in CHECKS if c[1](cmd)]
            self.assertEqual(len(mine), 1, "%s\nmatches checks %s" % (where,
                                                                       [c[0] for c in mine]))
            name, _, check = mine[0]
            self.assertNotIn(name, used, where)
            used.add(name)
            wrong = check(out, seen)
            self.assertIsNone(wrong, "%s\n%s: unexpected answer: %s" % (where, name, wrong))
        self.assertEqual(sorted(set(c[0] for c in CHECKS) - used), [],
                         "checks no README step reached")

    def assert_promised(self, out, expected, where):
        """The answer has what the README's `# →` shows."""
        if expected.startswith("{"):
            got = json_of(out)
            self.assertIsNotNone(got, "%s: not JSON: %r" % (where, out[:300]))
            keys, strings = set(), set()
            flatten(got, keys, strings)
            for k in re.findall(r'"(\w+)":', expected):
                self.assertIn(k, keys, "%s: the README shows %r, the answer lacks it: %s"
                              % (where, k, out[:600]))
            for k, v in re.findall(r'"(\w+)":"([^"]*)"', expected):
                if "..." in v or "…" in v:
                    continue
                self.assertIn(v, strings, "%s: the README shows %s = %r: %s"
                              % (where, k, v, out[:600]))
            return
        for want in expected.splitlines():
            rx = placeholder_rx(want)
            self.assertTrue(any(re.fullmatch(rx, ln) for ln in lines(out)),
                            "%s: no line like %r in %r" % (where, want, out[:600]))


if __name__ == "__main__":
    harness.main()
