"""Shared helpers of Herald's integration tests (Debian's python3, stdlib only).

Each test module starts its own `herald serve` on a free port with known
secrets and a private var/ directory, talks HTTP to it and runs the CLI.
CTest sets HERALD_BIN and HERALD_SOURCE_DIR; HERALD_DATABASE_URL and
HERALD_REDIS_URL come from the environment (`eval "$(tools/services.sh env)"`).
"""

import base64
import glob
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

SOURCE_DIR = os.path.abspath(
    os.environ.get("HERALD_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HERALD_BIN = os.path.abspath(
    os.environ.get("HERALD_BIN") or os.path.join(SOURCE_DIR, "build", "herald"))

# A known 40-byte HS256 key: tokens minted here must verify on the server.
JWT_SECRET = b"herald-integration-test-secret-40bytes!!"
assert len(JWT_SECRET) == 40
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()
ISSUER = "herald"
AUDIENCE = "herald-api"
MAX_BODY = 1048576


def database_url():
    return os.environ.get("HERALD_DATABASE_URL", "postgresql://herald@127.0.0.1:55432/herald")


def redis_url():
    return os.environ.get("HERALD_REDIS_URL", "redis://127.0.0.1:56379/0")


def fresh_database(migrations=None):
    """A new, migrated database of its own on the shared server, for tests whose
    servers run the engine (its workers claim every job of their database).
    migrations: a directory of migrations to apply instead of the repo's (to
    test a later migration on an older schema). Returns (url, drop) where
    drop() removes it."""
    base = database_url()
    name = "herald_it_" + uuid.uuid4().hex[:12]
    root, _, _ = base.rpartition("/")
    admin = root + "/postgres"
    url = root + "/" + name
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin, "-c",
                    'CREATE DATABASE "%s"' % name], check=True, capture_output=True)
    r = subprocess.run([HERALD_BIN, "migrate"] + (["--dir", migrations] if migrations else []),
                       cwd=SOURCE_DIR,
                       env=base_env(HERALD_DATABASE_URL=url), capture_output=True)
    if r.returncode != 0:
        raise AssertionError("migrate failed: %s" % r.stderr.decode())

    def drop():
        subprocess.run(["psql", "-X", "-q", "-d", admin, "-c",
                        'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name], capture_output=True)
    return url, drop


# The analytics counters against a recount of the messages.
ANALYTICS_RECOUNT_SQL = os.path.join(SOURCE_DIR, "tools", "sql", "analytics_recount.sql")


def analytics_mismatches(url):
    """The counters that differ from a recount of the messages ([] when exact;
    only meaningful on a database whose messages were never deleted)."""
    r = subprocess.run(["psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                        ANALYTICS_RECOUNT_SQL], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("recount failed: %s" % r.stderr)
    return [line for line in r.stdout.splitlines() if line]


def counters(server, *names):
    """The values of these counters in the server's /metrics, in order;
    AssertionError naming any that is missing."""
    found = {}
    for ln in server.get("/metrics").body.decode().splitlines():
        name, _, value = ln.partition(" ")
        if name in names:
            found[name] = int(float(value))
    missing = [n for n in names if n not in found]
    if missing:
        raise AssertionError("missing from /metrics: %s" % ", ".join(missing))
    return tuple(found[n] for n in names)


def post_welcome(server, headers):
    """POSTs a high-urgency welcome email to a new client with an inline
    recipient; returns the message's id (AssertionError unless 202)."""
    body = {"plan_id": "p", "client_id": "client-" + uuid.uuid4().hex[:12],
            "message_type": "welcome", "urgency": "high",
            "recipient": {"email": "zoe@example.com"}}
    r = server.request("POST", "/api/crm/communications", json_body=body, headers=headers)
    if r.status != 202:
        raise AssertionError("POST /api/crm/communications: %r" % (r,))
    return r.json["id"]


def unique(prefix="it"):
    """A name no other test (or parallel run) uses."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def phone(prefix="+1415"):
    """A random number the fake providers treat as ordinary: their scripted
    behaviours (errors, hangs) answer to the suffixes 0001-0006, which a plain
    random number hits now and then (about one in 1,700)."""
    import random
    return "%s%03d%04d" % (prefix, random.randrange(1000), random.randrange(1000, 10000))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**overrides):
    """The environment of every herald process: test secrets, shared services."""
    env = dict(os.environ)
    env.update({
        "HERALD_JWT_SECRET": JWT_SECRET.decode(),
        "HERALD_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "HERALD_DATABASE_URL": database_url(),
        "HERALD_REDIS_URL": redis_url(),
        # tests share subjects and Redis: the API limit is tested where asked for
        "HERALD_LIMIT_API_RATE": "1000000",
        "HERALD_LIMIT_API_BURST": "1000000",
        "HERALD_LIMIT_AUTH_FAILURES": "100000",
        "HERALD_LIMIT_WEBHOOK_RATE": "1000000",
        "HERALD_LIMIT_TRACKING_RATE": "1000000",
    })
    env.pop("HERALD_CONFIG", None)
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

class CliResult:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self):
        return "CliResult(code=%r, stdout=%r, stderr=%r)" % (self.code, self.stdout, self.stderr)


def cli(*args, env=None, timeout=30, cwd=None):
    """Runs `herald ARGS...` from the source dir; returns code, stdout, stderr."""
    if env is None:
        env = base_env()
    p = subprocess.run([HERALD_BIN] + [str(a) for a in args], cwd=cwd or SOURCE_DIR, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return CliResult(p.returncode, p.stdout.decode("utf-8", "replace"),
                     p.stderr.decode("utf-8", "replace"))


_migrated = False


def ensure_migrated():
    """`herald migrate` on the shared database (a no-op when up to date).

    Not fatal: `make test` migrates before the tests, and a failure here
    (say, a migration being edited) shows up in the tests that need tables."""
    global _migrated
    if not _migrated:
        _migrated = True
        r = cli("migrate")
        if r.code != 0:
            sys.stderr.write("warning: herald migrate failed (%d): %s\n" % (r.code, r.stderr))


def create_api_key(scopes="send,read,admin", name=None):
    """Creates a key through the CLI; returns (name, key)."""
    name = name or unique("it-key")
    r = cli("apikey", "create", "--name", name, "--scopes", scopes)
    if r.code != 0:
        raise RuntimeError("herald apikey create failed: %r" % (r,))
    key = r.stdout.splitlines()[0].strip()
    return name, key


# ---------------------------------------------------------------------------
# JWT
# ---------------------------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def segment(obj):
    """A JWS segment: dicts become compact JSON, str/bytes are used as they are."""
    if isinstance(obj, dict):
        obj = json.dumps(obj, separators=(",", ":"))
    return b64url(obj)


def claims(**overrides):
    """Valid claims for the test server; a value of None removes the claim."""
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "test:python", "scope": "send read admin",
         "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    for k, v in overrides.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign(signing_input, key=JWT_SECRET, digest=hashlib.sha256):
    if isinstance(signing_input, str):
        signing_input = signing_input.encode()
    return b64url(hmac.new(key, signing_input, digest).digest())


def make_jwt(payload=None, header=None, key=JWT_SECRET, digest=hashlib.sha256, signature=None):
    """Builds a compact JWS. header/payload: dict (JSON-encoded) or raw str/bytes;
    signature: None to HMAC the signing input with key/digest, else used as is."""
    if header is None:
        header = {"alg": "HS256", "typ": "JWT"}
    if payload is None:
        payload = claims()
    signing_input = segment(header) + "." + segment(payload)
    if signature is None:
        signature = sign(signing_input, key, digest)
    return signing_input + "." + signature


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "Response(%d, %s, %r)" % (self.status, dict(self.headers.items()),
                                          self.body[:500])


_REQUIRED_CONTEXT = None


def _required_part(value, schema):
    """What of a declared example the schema requires (recursively)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        return {k: _required_part(value[k], props.get(k, {}))
                for k in schema.get("required", []) if k in value}
    if isinstance(value, list) and schema.get("type") == "array":
        return [_required_part(v, schema.get("items", {})) for v in value]
    return value


def required_contexts():
    """{message_type: the least context its declaration accepts}, from
    `herald types --json` (scripts/types.lua): each example cut down to its
    required fields."""
    global _REQUIRED_CONTEXT
    if _REQUIRED_CONTEXT is None:
        r = cli("types", "--json")
        if r.code != 0:
            raise AssertionError("herald types --json failed: %r" % (r,))
        _REQUIRED_CONTEXT = {t["name"]: _required_part(t["example"], t["schema"])
                             for t in json.loads(r.stdout)}
    return _REQUIRED_CONTEXT


def with_required_context(doc):
    """A send request whose context lacks fields its type requires gets them
    from the type's example: tests about delivery, retries or consent do not
    spell out a whole budget. Tests of the declarations themselves pass
    fill_context=False."""
    if not isinstance(doc, dict) or not isinstance(doc.get("message_type"), str):
        return doc
    ctx = doc.get("context", {})
    need = required_contexts().get(doc["message_type"])
    if need is None or not isinstance(ctx, dict):
        return doc
    doc = dict(doc)
    doc["context"] = dict(need, **ctx)
    return doc


def http_request(port, method, path, body=None, headers=None, json_body=None, timeout=15,
                 encode_chunked=False, fill_context=True):
    """One request on a fresh connection; never raises on 4xx/5xx. A send
    (POST /api/crm/communications) gets the context fields its type requires
    (with_required_context) unless fill_context=False."""
    headers = dict(headers or {})
    if (fill_context and method == "POST" and json_body is not None
            and path.split("?")[0] == "/api/crm/communications"):
        json_body = with_required_context(json_body)
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers, encode_chunked=encode_chunked)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.headers, data)
    finally:
        conn.close()


def raw_request(port, data, timeout=15, shut_write=False):
    """Sends raw bytes and reads until the server closes or a full response is in.
    Returns (status, headers dict lower-cased, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            parsed = _parse_raw(buf)
            if parsed is not None:
                return parsed
        parsed = _parse_raw(buf, final=True)
        if parsed is None:
            raise AssertionError("no complete HTTP response; got %r" % buf[:300])
        return parsed
    finally:
        s.close()


def _parse_raw(buf, final=False):
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        if len(rest) < n:
            return None
        return status, hdrs, rest[:n]
    return (status, hdrs, rest) if final else None


def error_of(resp):
    """(code, message) of a JSON error body, or (None, None)."""
    j = resp.json
    if isinstance(j, dict) and isinstance(j.get("error"), dict):
        return j["error"].get("code"), j["error"].get("message")
    return None, None


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

class Server:
    """`herald serve` on a free port with a private var dir and captured stderr."""

    def __init__(self, redis=None, env=None, name="herald", preexec_fn=None):
        self.name = name
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="herald-it-")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.env = base_env(HERALD_LISTEN="127.0.0.1:%d" % self.port,
                            HERALD_VAR_DIR=os.path.join(self.tmp, "var"),
                            HERALD_LOG_LEVEL="info", **(env or {}))
        if redis is not None:
            self.env["HERALD_REDIS_URL"] = redis
        os.makedirs(self.env["HERALD_VAR_DIR"], exist_ok=True)
        self.proc = None
        self.exit_code = None

    def start(self, timeout=20):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([HERALD_BIN, "serve"], cwd=SOURCE_DIR, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, preexec_fn=self.preexec_fn)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("herald serve exited with %d before answering:\n%s"
                                   % (self.proc.returncode, self.stderr()))
            try:
                self.request("GET", "/api/crm/health", timeout=5)
                return self
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("herald serve did not answer within %d s:\n%s"
                           % (timeout, self.stderr()))

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_code = None
                self.proc = None
                self._err.close()
                return None
        self.exit_code = self.proc.returncode
        self.proc = None
        self._err.close()
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        """The JSON lines of stderr, parsed (other lines skipped)."""
        out = []
        for ln in self.stderr().splitlines():
            try:
                obj = json.loads(ln)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def wait_log(self, pred, timeout=5):
        """The first log line for which pred(line) is true, polling; None if none."""
        deadline = time.time() + timeout
        while True:
            for ln in self.log_lines():
                if pred(ln):
                    return ln
            if time.time() >= deadline:
                return None
            time.sleep(0.05)

    def request(self, method, path, **kw):
        return http_request(self.port, method, path, **kw)

    def get(self, path, token=None, headers=None, **kw):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return self.request("GET", path, headers=headers, **kw)

    def post_json(self, path, doc, headers=None, **kw):
        return self.request("POST", path, json_body=doc, headers=headers, **kw)

    def token_for(self, api_key):
        r = self.post_json("/api/crm/auth/token", {"api_key": api_key})
        if r.status != 200:
            raise AssertionError("token exchange failed: %r" % (r,))
        return r.json


class HeraldCase(unittest.TestCase):
    """A TestCase that prints the stderr of its servers when a test fails.

    A class with `start_server = True` gets `cls.server`, started in
    setUpClass and stopped (asserting a clean exit 0) in tearDownClass."""

    start_server = False
    servers = ()

    @classmethod
    def setUpClass(cls):
        cls.servers = []
        cls._failed = False
        required_contexts()  # now, not inside a test's first timed request
        if cls.start_server:
            cls.server = cls.new_server()

    @classmethod
    def new_server(cls, **kw):
        s = Server(**kw)
        cls.servers.append(s)
        try:
            s.start()
        except Exception:
            # it never served: its exit is in the exception, not a shutdown to check
            cls.servers.remove(s)
            s.cleanup()
            raise
        return s

    @classmethod
    def tearDownClass(cls):
        codes = {}
        for s in cls.servers:
            codes[s] = s.stop()
        try:
            for s, code in codes.items():
                if code != 0:
                    cls._dump(s)
                    raise AssertionError("herald serve on port %d exited with %r after SIGTERM "
                                         "(expected 0 within 10 s)" % (s.port, code))
            if cls._failed:
                for s in cls.servers:
                    cls._dump(s)
        finally:
            for s in cls.servers:
                s.cleanup()

    @staticmethod
    def _dump(s, max_lines=150):
        lines = s.stderr().splitlines()
        sys.stderr.write("\n----- stderr of %s on port %d (last %d of %d lines) -----\n"
                         % (s.name, s.port, min(len(lines), max_lines), len(lines)))
        sys.stderr.write("\n".join(lines[-max_lines:]) + "\n-----\n")

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        r = super().run(result)
        if len(result.failures) + len(result.errors) != before:
            type(self)._failed = True
        return r

    # -- assertions -----------------------------------------------------------

    def assertError(self, resp, status, code=None, msg=None):
        """A JSON error of the contract: status, application/json, error.code/message."""
        ctx = "%s%r" % ((msg + ": ") if msg else "", resp)
        self.assertEqual(resp.status, status, ctx)
        ct = resp.header("Content-Type") or ""
        self.assertEqual(ct.split(";")[0].strip().lower(), "application/json", ctx)
        self.assertIsInstance(resp.json, dict, ctx)
        self.assertIsInstance(resp.json.get("error"), dict, ctx)
        err = resp.json["error"]
        self.assertIsInstance(err.get("code"), str, ctx)
        self.assertIsInstance(err.get("message"), str, ctx)
        self.assertTrue(err["message"], ctx)
        if code is not None:
            self.assertEqual(err["code"], code, ctx)
        return err

    def assertUnauthorized(self, resp, msg=None):
        err = self.assertError(resp, 401, "unauthorized", msg)
        www = resp.header("WWW-Authenticate") or ""
        self.assertTrue(www.lower().startswith("bearer"), "%s: WWW-Authenticate %r"
                        % (msg, www))
        return err


# ---------------------------------------------------------------------------
# A Redis of its own
# ---------------------------------------------------------------------------

def redis_ping(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """A throwaway redis-server on a port of its own."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="herald-it-redis-")
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout=10):
        exe = shutil.which("redis-server")
        if exe is None:
            raise AssertionError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if redis_ping(self.port):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("redis-server on port %d did not start" % self.port)

    def pause(self):
        """SIGSTOP: the server keeps its port and accepts connections (the
        kernel does), but answers nothing: a stalled Redis, not a dead one."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_fake_providers(tmp, hang_seconds=3, extra=()):
    """tests/fakes/fake_providers.py on a free port (Twilio and Meta over HTTP);
    extra: more of its options (--meta-window, --record FILE). Returns (process, port)."""
    ready = os.path.join(tmp, "fake.ready")
    p = subprocess.Popen(["/usr/bin/python3",
                          os.path.join(SOURCE_DIR, "tests", "fakes", "fake_providers.py"),
                          "--port", "0", "--ready-file", ready,
                          "--hang-seconds", str(hang_seconds)] + list(extra),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while not os.path.exists(ready):
        if time.time() > deadline or p.poll() is not None:
            raise RuntimeError("fake providers did not start")
        time.sleep(0.05)
    with open(ready) as f:
        return p, int(f.read())


class AlertSink(http.server.BaseHTTPRequestHandler):
    """The operations endpoint (engine.alert_url): keeps every alert POSTed to it."""
    received = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        AlertSink.received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_alert_sink():
    """An AlertSink server on a free port, in a daemon thread; caller shuts it down."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlertSink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------
# A PostgreSQL of its own (fault tests stop and restart it)
# ---------------------------------------------------------------------------

def _pg_bin(tool):
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: [int(x) for x in re.findall(r"\d+", d)])
    if not dirs:
        raise AssertionError("PostgreSQL binaries not found (tools/deps.sh installs them)")
    return os.path.join(dirs[-1], tool)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, on a port of
    its own, with a migrated `herald` database: a test may stop, restart or
    kill it without touching the shared server other tests use. As root the
    cluster belongs to `postgres` (initdb refuses root), as in tools/services.sh."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="herald-it-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.root = os.getuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres")

    @property
    def url(self):
        return "postgresql://herald@127.0.0.1:%d/herald" % self.port

    def _run(self, *args, timeout=120, check=True):
        cmd = list(args)
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s\n%s" % (
                args[0], p.returncode, p.stderr.decode(errors="replace"), self.server_log()))
        return p

    def server_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def start(self, migrate=True):
        """Creates the cluster on first use, starts it, waits until it answers."""
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run(_pg_bin("initdb"), "-D", self.data, "-U", "herald", "--auth=trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
            self._run(_pg_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l", self.log,
                      "-o", self._options(), "start")
            subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "herald", "-d", "postgres", "-c", "CREATE DATABASE herald"],
                           check=True, capture_output=True)
            if migrate:
                r = subprocess.run([HERALD_BIN, "migrate"], cwd=SOURCE_DIR, capture_output=True,
                                   env=base_env(HERALD_DATABASE_URL=self.url))
                if r.returncode != 0:
                    raise AssertionError("migrate failed: %s" % r.stderr.decode())
            return self
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l", self.log,
                  "-o", self._options(), "start")
        return self

    def _options(self):
        # fsync off: these tests stop the server, never the machine
        return ("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100 "
                "-c fsync=off" % (self.port, self.dir))

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE (fast: sessions are terminated, as in a restart;
        immediate: a crash, recovery at the next start)."""
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode="fast"):
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "-l",
                  self.log, "-o", self._options(), "restart")

    def ready(self):
        return subprocess.run([_pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                               str(self.port)]).returncode == 0

    def psql(self, sql):
        """One statement's rows as text (-tA), on the private database."""
        return subprocess.run(["psql", "-X", "-qtA", "-d", self.url, "-c", sql], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()

    def cleanup(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(pred, timeout, interval=0.1):
    """Polls pred() until it returns a true value (returned) or timeout passes
    (the last value is returned)."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(interval)


def start_smtp_sink(tmp, *args):
    """tests/fakes/smtp_sink.py on a free port, saving into tmp/mail (args:
    more of its options, e.g. "--latency-ms", "200").
    Returns (process, port, maildir); stop it with SIGTERM."""
    maildir = os.path.join(tmp, "mail")
    os.makedirs(maildir, exist_ok=True)
    ready = os.path.join(tmp, "sink.ready")
    p = subprocess.Popen(["/usr/bin/python3",
                          os.path.join(SOURCE_DIR, "tests", "fakes", "smtp_sink.py"),
                          "--port", "0", "--ready-file", ready, "--maildir", maildir, *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while not os.path.exists(ready):
        if time.time() > deadline or p.poll() is not None:
            raise RuntimeError("smtp sink did not start")
        time.sleep(0.05)
    with open(ready) as f:
        return p, int(f.read().split()[0]), maildir


_MSGID = re.compile(rb"^Message-ID: <([0-9a-f-]{36})@", re.M | re.I)


def maildir_message_ids(maildir):
    """The communication id (from Message-ID) of every message the SMTP sink
    saved, one entry per message received: a duplicate appears twice."""
    ids = []
    for path in glob.glob(os.path.join(maildir, "*.eml")):
        with open(path, "rb") as f:
            m = _MSGID.search(f.read(8192))
        if m:
            ids.append(m.group(1).decode())
    return ids


def outbox_ids(outbox, channel):
    """The communication id of every file the outbox driver wrote for a
    channel (`<comm_id>-<attempt>.eml|json`), one entry per file."""
    out = []
    for path in glob.glob(os.path.join(outbox, channel, "*")):
        name = os.path.basename(path)
        if name.startswith("."):
            continue  # a temporary file being written
        out.append(name[:36])
    return out
