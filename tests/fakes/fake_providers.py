#!/usr/bin/python3
"""Fake Twilio (Messages API) and fake Meta (WhatsApp Cloud API) for Herald's tests.

One process serves both providers on one port, told apart by the path:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   fake Twilio
    POST /{phone_number_id}/messages                       fake Meta
    POST /v18.0/{phone_number_id}/messages                 fake Meta (any vNN.N)
    GET  /_stats                                           counters, JSON
    POST /_stats/reset                                     zero the counters (returns the old ones)
    POST /_hold[?provider=twilio|meta]                     hold provider answers (see "Hold")
    GET  /_held                                            the answers held now, JSON
    POST /_release                                         send every held answer; stop holding
    POST /_fail?percent=P                                  change --fail-percent while running
    POST /_meta/inbound  {"from": digits, "timestamp"?}    the number wrote to the business
                                                           (opens its 24-hour window; see
                                                           --meta-window)

Debian's /usr/bin/python3, standard library only.  HTTP/1.1 with keep-alive
(one thread per TCP connection, many requests per connection), every response
carries Content-Length and is written in a single send.

Start it
--------
    /usr/bin/python3 tests/fakes/fake_providers.py --port 0 --ready-file /tmp/t/port \
        [--latency-ms 50] [--fail-percent 10] [--record /tmp/t/requests.jsonl]

    --port N            listen on 127.0.0.1:N (0 = a free port; see --ready-file)
    --host ADDR         listen address (default 127.0.0.1)
    --ready-file FILE   once listening, write the port and a newline to FILE
                        (atomically: poll until the file exists, then read it)
    --latency-ms MS     sleep MS before answering every provider request
                        (not /_stats)
    --fail-percent P    answer that share (0-100, may be fractional) of provider
                        requests with a 500, chosen at random, before any other
                        check; the body is the provider's 500 of the table below
    --record FILE       append one JSON line per provider request (see "Record")
    --twilio-max-rate N accept at most N messages a second per sender (a sliding
                        second); more are refused with 429, code 20429 and
                        Retry-After: 1, as Twilio answers a burst
    --meta-window       enforce WhatsApp's customer-service window: free-form text
                        to a number that has not written within 24 h (POST
                        /_meta/inbound) is refused with 131047, as Meta does;
                        templates always go
    --twilio-sid SID    accepted Account SID   (default AC00000000000000000000000000000000)
    --twilio-token TOK  accepted auth token    (default test-token)
    --meta-token TOK    accepted bearer token  (default test-meta-token)
    --meta-phone-number-id ID
                        accept only this phone number id (others: 400 code 100,
                        subcode 33, as Graph does); default: accept any
    --hang-seconds S    how long a "never answer" request is held (default 60)
    --verbose           log every request to stderr

SIGTERM or SIGINT stops it cleanly (exit status 0).

Behaviour chosen by the recipient
---------------------------------
The last four digits of the recipient (Twilio "To", Meta "to"; non-digits such
as "+", spaces or "whatsapp:" are ignored) choose the answer, after the
credentials and the request body have been validated:

    suffix  Twilio                                   Meta (WhatsApp Cloud API)
    ------  ---------------------------------------  --------------------------------------
    0001    400  code 21211  invalid 'To' number     400  code 131026  message undeliverable
    0002    400  code 21614  'To' not a mobile       400  code 131030  recipient not in allowed list
    0003    400  code 21610  unsubscribed recipient  400  code 131047  re-engagement (24 h window)
    0004    429  code 20429  Retry-After: 2          429  code 130429  rate limit hit, Retry-After: 2
    0005    500  HTML body (a proxy's error page,    500  Meta error JSON, code 131000
                 not JSON)                                ("Something went wrong")
    0006    never answers: the request is read, then the connection is held open with
            no reply until the client closes it or --hang-seconds (60) pass, after
            which it is closed without a reply
    other   201  Twilio message resource,            200  {"messaging_product","contacts",
                 status "queued" ("accepted" when         "messages":[{"id":"wamid...."}]}
                 MessagingServiceSid and no From)

Validation errors (checked before the table):

    Twilio  401 20003  missing/wrong Basic credentials, or path AccountSid != --twilio-sid
                       (with WWW-Authenticate: Basic realm="Twilio API")
            405 20004  method other than POST on Messages.json
            404 20404  any other /2010-04-01/ path
            400 21604  To missing            400 21603  From and MessagingServiceSid missing
            400 21602  Body missing (and no MediaUrl / ContentSid)
            400 21617  Body over 1600 characters
            400 21609  StatusCallback not an http(s) URL
    Meta    401 190    missing/wrong "Authorization: Bearer" token (type OAuthException)
            400 100    malformed body: not a JSON object, messaging_product != "whatsapp",
                       no "to", unknown "type", text without "body", template without
                       "name" or "language.code", bad components ...
            400 100/33 unknown phone_number_id (only with --meta-phone-number-id;
                       type GraphMethodException, error_subcode 33)
            405 100    method other than POST

Templates (Meta): a name starting with "missing_" is refused with 404 code 132001
(template does not exist); components are checked for their shape: header, body,
button (sub_type url or quick_reply, index 0-9) or footer, and each parameter is
typed: text {text}, currency {fallback_value, code, amount_1000}, date_time
{fallback_value}, image / document / video {link or id}, payload {payload}.

Every Meta error is {"error": {"message", "type", "code", "error_subcode"?,
"error_data"?: {"messaging_product": "whatsapp", "details"}, "fbtrace_id"}};
every Twilio error is {"code", "message", "more_info", "status"}.
Unknown paths get a plain 404.

Stats: GET /_stats
------------------
    {"requests": {"twilio": n, "meta": n, "other": n, "total": n},
     "by_status": {"201": n, "400": n, ..., "no_answer": n},
     "by_provider": {"twilio": {"201": n, ...}, "meta": {...}},
     "connections": n,          distinct TCP connections that carried at least one
                                provider request (keep-alive: 2 requests on one
                                connection count 1); /_stats connections don't count
     "connections_accepted": n, every TCP connection accepted, /_stats ones included
     "connections_open": n,     open right now (any path)
     "in_flight": n, "max_in_flight": n,   provider requests being handled
     "held_open": n,            "never answer" connections being held right now
     "injected_failures": n,    500s caused by --fail-percent
     "since": "...", "seconds": s,         start of the counting period
     "config": {...}}
     "held_answers": n,         answers held by POST /_hold right now
All counters cover the time since start or the last POST /_stats/reset.

Hold: POST /_hold, GET /_held, POST /_release
---------------------------------------------
Off by default. After POST /_hold (every provider) or POST /_hold?provider=twilio
(or meta; repeatable), each provider request of a held provider is read,
validated and answered as usual, except that the answer (its sid or wamid
already chosen) is kept until POST /_release, which sends every held answer
at once and stops holding; new requests are answered at once again. The
client sees a send that is in flight for as long as the test wants, and the
test knows in advance the id the provider will return. Answers only: the
"never answer" row (0006) still never answers.
    POST /_hold     -> {"holding": ["twilio", ...], "held": n}
    GET  /_held     -> {"holding": [...], "held": [{"n": 1, "provider": "twilio",
                        "to": "+1...", "status": 201, "sid": "SM...",
                        "status_callback": "https://..."}, ...]}
                       (Meta: "id": "wamid...", "biz_opaque_callback_data": "...";
                        "sid"/"id" is null when the held answer is an error)
    POST /_release  -> {"released": n}
A held answer counts in held_answers (not in in_flight); the record line is
written when the answer is sent. If the client closes the connection first,
the answer is dropped when released. SIGTERM releases nothing: held
connections are closed without an answer.

Record (--record FILE)
----------------------
One JSON object per line, written just before the answer is sent, so that once a
client has its response the line is in the file ("never answer": written when the
request has been read, with "response": {"status": null}):
    {"time": ISO-8601 UTC, "connection": n (per-process TCP connection number),
     "provider": "twilio" | "meta" | null, "method", "path" (without query), "query",
     "headers": {lower-cased name: value},
     "form": {name: value, or [values] when repeated}   (form-encoded bodies)
     | "json": parsed body                               (JSON bodies)
     | "body": text                                      (anything else, if non-empty),
     "response": {"status": int | null, "headers": {...}, "body": parsed JSON or text}}
"""

import argparse
import base64
import datetime
import email.utils
import http.server
import json
import math
import os
import random
import re
import select
import signal
import sys
import threading
import time
import urllib.parse
import uuid

DEFAULT_TWILIO_SID = "AC00000000000000000000000000000000"
DEFAULT_TWILIO_TOKEN = "test-token"
DEFAULT_META_TOKEN = "test-meta-token"


# ---------------------------------------------------------------------------
# Behaviour tables (keep in sync with the docstring above and README.md)
# ---------------------------------------------------------------------------

class Behaviour:
    """What a fake does for one recipient suffix.

    action: "error" (provider error JSON), "html500" (non-JSON 500 page),
            "hang" (never answer).
    """

    def __init__(self, action, status=None, code=None, message=None,
                 details=None, retry_after=None):
        self.action = action
        self.status = status
        self.code = code
        self.message = message          # may contain {to}
        self.details = details          # Meta error_data.details
        self.retry_after = retry_after  # seconds, sent as Retry-After


TWILIO_BEHAVIOURS = {
    "0001": Behaviour("error", 400, 21211, "The 'To' number {to} is not a valid phone number."),
    "0002": Behaviour("error", 400, 21614, "'To' number {to} is not a valid mobile number"),
    "0003": Behaviour("error", 400, 21610, "Attempt to send to unsubscribed recipient"),
    "0004": Behaviour("error", 429, 20429, "Too Many Requests", retry_after=2),
    "0005": Behaviour("html500", 500),
    "0006": Behaviour("hang"),
}

META_BEHAVIOURS = {
    "0001": Behaviour("error", 400, 131026, "(#131026) Message Undeliverable.",
                      "Message Undeliverable."),
    "0002": Behaviour("error", 400, 131030, "(#131030) Recipient phone number not in allowed list",
                      "Recipient phone number not in allowed list: Add recipient phone number "
                      "to recipient list and try again."),
    "0003": Behaviour("error", 400, 131047, "(#131047) Re-engagement message",
                      "Message failed to send because more than 24 hours have passed since "
                      "the customer last replied to this number."),
    "0004": Behaviour("error", 429, 130429, "(#130429) Rate limit hit",
                      "Cloud API message throughput has been reached.", retry_after=2),
    "0005": Behaviour("error", 500, 131000, "(#131000) Something went wrong",
                      "Something went wrong"),
    "0006": Behaviour("hang"),
}

# What --fail-percent answers: the same 500 as suffix 0005 of each provider.
TWILIO_FAILURE = TWILIO_BEHAVIOURS["0005"]
META_FAILURE = META_BEHAVIOURS["0005"]

PROXY_500_PAGE = (b"<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n"
                  b"<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n"
                  b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")

TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
# The Graph version is optional: Herald's base URL may or may not include it.
# A version where the phone number id should be ("/v18.0/messages") is no match.
META_PATH = re.compile(r"^/(?:v\d+\.\d+/)?(?!v\d+\.\d+/)([^/_][^/]*)/messages$")

META_TYPES = ("text", "template", "image", "audio", "video", "document", "sticker",
              "location", "contacts", "interactive", "reaction")

# GSM 03.38 alphabet, to count SMS segments the way Twilio does.
GSM7_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                 "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(body):
    """Number of SMS segments: GSM-7 160/153 per part, else UCS-2 70/67."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in body):
        septets = sum(2 if c in GSM7_EXTENDED else 1 for c in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def digits_of(number):
    return re.sub(r"\D", "", number or "")


def fbtrace_id():
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "".join(random.choice(alphabet) for _ in range(23))


def wamid(wa_id):
    """A message id shaped like Meta's: "wamid." + base64 of a small binary blob."""
    blob = (bytes([0x1c, 0x18, len(wa_id) & 0xff]) + wa_id.encode()
            + b"\x15\x02\x00\x11\x18\x12" + os.urandom(9).hex().upper().encode() + b"\x00")
    return "wamid." + base64.b64encode(blob).decode().rstrip("=")


def utc_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def write_atomically(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Counters (/_stats) and the request record (--record)
# ---------------------------------------------------------------------------

class Stats:
    def __init__(self, config):
        self.lock = threading.Lock()
        self.config = config
        self.open = 0        # connections open right now: never reset
        self.in_flight = 0   # provider requests being handled: never reset
        self.held = 0        # "never answer" connections held right now: never reset
        self.held_answers = 0  # answers kept by POST /_hold right now: never reset
        self.generation = 0
        self._zero()

    def _zero(self):
        self.generation += 1
        self.since = time.time()
        self.requests = {"twilio": 0, "meta": 0, "other": 0, "total": 0}
        self.by_status = {}
        self.by_provider = {"twilio": {}, "meta": {}}
        self.connections = 0
        self.accepted = 0
        self.max_in_flight = self.in_flight
        self.injected = 0

    def connection_opened(self):
        with self.lock:
            self.accepted += 1
            self.open += 1

    def connection_closed(self):
        with self.lock:
            self.open -= 1

    def request_started(self, handler, provider):
        """Count a provider request; count its connection once per period."""
        with self.lock:
            self.requests[provider or "other"] += 1
            self.requests["total"] += 1
            if provider and handler.counted_in_generation != self.generation:
                handler.counted_in_generation = self.generation
                self.connections += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def hold(self, delta):
        with self.lock:
            self.held += delta

    def hold_answer(self, delta):
        with self.lock:
            self.held_answers += delta

    def request_finished(self, provider, status, injected=False):
        key = "no_answer" if status is None else str(status)
        with self.lock:
            self.in_flight -= 1
            self.by_status[key] = self.by_status.get(key, 0) + 1
            if provider:
                per = self.by_provider[provider]
                per[key] = per.get(key, 0) + 1
            if injected:
                self.injected += 1

    def snapshot(self, reset=False):
        with self.lock:
            snap = {
                "requests": dict(self.requests),
                "by_status": dict(self.by_status),
                "by_provider": {p: dict(c) for p, c in self.by_provider.items()},
                "connections": self.connections,
                "connections_accepted": self.accepted,
                "connections_open": self.open,
                "in_flight": self.in_flight,
                "held_open": self.held,
                "held_answers": self.held_answers,
                "max_in_flight": self.max_in_flight,
                "injected_failures": self.injected,
                "since": datetime.datetime.fromtimestamp(
                    self.since, datetime.timezone.utc).isoformat(timespec="milliseconds"),
                "seconds": round(time.time() - self.since, 3),
                "config": self.config,
            }
            if reset:
                self._zero()
            return snap


class Recorder:
    """Appends one JSON line per request to --record FILE (thread-safe)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None

    def enabled(self):
        return self.file is not None

    def write(self, entry):
        line = json.dumps(entry, ensure_ascii=False, sort_keys=False) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


class Holds:
    """POST /_hold, GET /_held, POST /_release: provider answers kept until released."""

    PROVIDERS = ("twilio", "meta")

    def __init__(self):
        self.cond = threading.Condition()
        self.providers = set()  # providers whose answers are held now
        self.entries = []       # what GET /_held shows, in arrival order
        self.releases = 0       # bumped by every POST /_release
        self.next_n = 0

    def hold(self, providers):
        with self.cond:
            self.providers |= set(providers)
            return {"holding": sorted(self.providers), "held": len(self.entries)}

    def listing(self):
        with self.cond:
            return {"holding": sorted(self.providers), "held": [dict(e) for e in self.entries]}

    def release(self):
        with self.cond:
            n = len(self.entries)
            self.entries = []
            self.providers = set()
            self.releases += 1
            self.cond.notify_all()
            return {"released": n}

    def wait(self, provider, parsed, reply, stopping, stats):
        """Blocks while answers of provider are held; False when the server is stopping."""
        with self.cond:
            if provider not in self.providers:
                return True
            self.next_n += 1
            self.entries.append(held_entry(self.next_n, provider, parsed, reply))
            seen = self.releases
            stats.hold_answer(+1)
            try:
                while self.releases == seen and not stopping.is_set():
                    self.cond.wait(0.2)
            finally:
                stats.hold_answer(-1)
            return not stopping.is_set()


def held_entry(n, provider, parsed, reply):
    """What GET /_held says about one held answer."""
    try:
        body = json.loads(reply.body) if reply.body else None
    except ValueError:
        body = None
    ok = 200 <= reply.status < 300 and isinstance(body, dict)
    if provider == "twilio":
        form = parsed.get("form", {})
        first = lambda v: v[0] if isinstance(v, list) else v  # noqa: E731
        return {"n": n, "provider": provider, "to": first(form.get("To")),
                "status": reply.status, "sid": body.get("sid") if ok else None,
                "status_callback": first(form.get("StatusCallback"))}
    msg = parsed.get("json") if isinstance(parsed.get("json"), dict) else {}
    messages = body.get("messages") if ok else None
    return {"n": n, "provider": provider, "to": msg.get("to"), "status": reply.status,
            "id": messages[0].get("id") if messages else None,
            "biz_opaque_callback_data": msg.get("biz_opaque_callback_data")}


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------

class Reply:
    """An answer to send: status, headers, body bytes (and the body as recorded)."""

    def __init__(self, status, body=b"", content_type="application/json", headers=None,
                 hang=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.hang = hang        # never answer (suffix 0006)
        self.injected = False   # a --fail-percent failure


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive unless the client says close
    server_version = "herald-fake-providers"
    sys_version = ""
    timeout = 300                     # idle keep-alive connections are dropped after this
    disable_nagle_algorithm = True    # no 40 ms Nagle/delayed-ACK stalls

    # -- connection lifecycle ------------------------------------------------

    def setup(self):
        super().setup()
        self.counted_in_generation = 0
        with self.server.id_lock:
            self.server.next_connection_id += 1
            self.connection_id = self.server.next_connection_id
        self.server.stats.connection_opened()

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.stats.connection_closed()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake_providers: conn %d %s\n" % (self.connection_id, fmt % args))

    # Every method goes through the same dispatcher.
    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # -- request reading -----------------------------------------------------

    def read_body(self):
        """The whole request body (Content-Length or chunked), so keep-alive stays in step."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass   # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)   # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def lower_headers(self):
        out = {}
        for name, value in self.headers.items():
            name = name.lower()
            out[name] = out[name] + ", " + value if name in out else value
        return out

    # -- response writing ----------------------------------------------------

    def send(self, reply):
        """Status line, headers and body in one write (Content-Length always)."""
        if self.command == "HEAD":
            body = b""
        else:
            body = reply.body
        lines = ["HTTP/1.1 %d %s" % (reply.status, self.responses.get(reply.status, ("",))[0]),
                 "Date: " + self.date_time_string(),
                 "Server: " + self.server_version,
                 "Content-Type: " + reply.content_type,
                 "Content-Length: %d" % len(reply.body)]
        for name, value in reply.headers.items():
            lines.append("%s: %s" % (name, value))
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.log_request(reply.status, len(reply.body))

    def hang(self):
        """Never answer: hold the connection until the client closes it,
        --hang-seconds pass or the server stops; then close without a reply."""
        self.close_connection = True
        deadline = time.monotonic() + self.server.hang_seconds
        sock = self.connection
        self.server.stats.hold(+1)
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                readable, _, _ = select.select([sock], [], [], 0.2)
                if not readable:
                    continue
                try:
                    data = sock.recv(65536)   # anything more the client sends is discarded
                except OSError:
                    return
                if not data:
                    return                    # the client gave up
            self.log_message("held request released without an answer")
        finally:
            self.server.stats.hold(-1)

    # -- dispatch ------------------------------------------------------------

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        body = self.read_body()

        if path in ("/_stats", "/_stats/reset"):
            reset = path == "/_stats/reset" and self.command == "POST"
            if path == "/_stats/reset" and not reset:
                return self.send(Reply(405, {"error": "POST /_stats/reset"}))
            return self.send(Reply(200, json.dumps(
                self.server.stats.snapshot(reset=reset), indent=1) + "\n"))
        if path in ("/_hold", "/_held", "/_release"):
            return self.send(self.hold_control(path, url.query))
        if path == "/_fail":
            return self.send(self.fail_control(url.query))
        if path == "/_meta/inbound":
            return self.send(self.inbound_control(body))

        if TWILIO_PATH.match(path) or path.startswith("/2010-04-01/"):
            provider = "twilio"
        elif META_PATH.match(path):
            provider = "meta"
        else:
            provider = None
        parsed = parse_body(self.headers.get("Content-Type", ""), body)

        stats = self.server.stats
        stats.request_started(self, provider)
        reply = None
        try:
            if self.server.latency > 0:
                time.sleep(self.server.latency)
            if provider and self.server.fail_percent > 0 and \
                    random.random() * 100.0 < self.server.fail_percent:
                behaviour = TWILIO_FAILURE if provider == "twilio" else META_FAILURE
                reply = behaviour_reply(provider, behaviour, "")
                reply.injected = True
            elif provider == "twilio":
                reply = twilio_request(self.server, self.command, path, self.headers, parsed)
            elif provider == "meta":
                reply = meta_request(self.server, self.command, path, self.headers, parsed)
            else:
                reply = Reply(404, "no such endpoint on the fake providers: %s %s\n"
                              % (self.command, path), "text/plain; charset=utf-8")
        except Exception as exc:   # a bug in this file: say so loudly, answer 500
            import traceback
            traceback.print_exc()
            reply = Reply(500, "fake_providers internal error: %r\n" % (exc,),
                          "text/plain; charset=utf-8")
        finally:
            status = None if (reply is None or reply.hang) else reply.status
            stats.request_finished(provider, status, injected=bool(reply and reply.injected))

        # POST /_hold: the answer is ready (its id chosen) but waits for /_release.
        if provider and not reply.hang and not self.server.holds.wait(
                provider, parsed, reply, self.server.stopping, stats):
            self.close_connection = True
            return
        # Record first: once a client has its answer, the line is in the file.
        self.record(provider, path, url.query, parsed, None if reply.hang else reply)
        if reply.hang:
            self.hang()
        else:
            self.send(reply)

    def fail_control(self, query):
        """POST /_fail?percent=P: --fail-percent from now on (a provider that
        starts or stops failing while the client runs)."""
        if self.command != "POST":
            return Reply(405, {"error": "POST /_fail?percent=P"})
        try:
            p = float(urllib.parse.parse_qs(query)["percent"][0])
        except (KeyError, ValueError):
            p = -1
        if not 0 <= p <= 100:
            return Reply(400, {"error": "percent: expected a number from 0 to 100"})
        old, self.server.fail_percent = self.server.fail_percent, p
        return Reply(200, {"fail_percent": p, "was": old})

    def inbound_control(self, body):
        """POST /_meta/inbound {"from": digits, "timestamp"?}: the number wrote to us."""
        if self.command != "POST":
            return Reply(405, {"error": "POST /_meta/inbound"})
        try:
            doc = json.loads(body or b"{}")
            number = digits_of(doc["from"])
            at = float(doc.get("timestamp", time.time()))
        except (ValueError, KeyError, TypeError):
            return Reply(400, {"error": "expected {\"from\": digits, \"timestamp\"?: seconds}"})
        if not number:
            return Reply(400, {"error": "from: no digits"})
        self.server.inbound[number] = max(at, self.server.inbound.get(number, 0))
        return Reply(200, {"from": number, "window_until": self.server.inbound[number] + 86400})

    def hold_control(self, path, query):
        """POST /_hold[?provider=...], GET /_held, POST /_release."""
        holds = self.server.holds
        if path == "/_held":
            if self.command != "GET":
                return Reply(405, {"error": "GET /_held"})
            return Reply(200, holds.listing())
        if self.command != "POST":
            return Reply(405, {"error": "POST %s" % path})
        if path == "/_release":
            return Reply(200, holds.release())
        wanted = urllib.parse.parse_qs(query).get("provider") or list(Holds.PROVIDERS)
        unknown = [p for p in wanted if p not in Holds.PROVIDERS]
        if unknown:
            return Reply(400, {"error": "provider: expected twilio or meta, not %s"
                               % ", ".join(unknown)})
        return Reply(200, holds.hold(wanted))

    def record(self, provider, path, query, parsed, reply):
        recorder = self.server.recorder
        if not recorder.enabled():
            return
        entry = {"time": utc_now_iso(), "connection": self.connection_id,
                 "provider": provider, "method": self.command, "path": path,
                 "query": query, "headers": self.lower_headers()}
        entry.update(parsed)
        if reply is None:
            entry["response"] = {"status": None, "note": "never answered"}
        else:
            try:
                shown = json.loads(reply.body) if reply.body else None
            except ValueError:
                shown = reply.body.decode("utf-8", "replace")
            entry["response"] = {"status": reply.status, "headers": reply.headers,
                                 "body": shown}
        recorder.write(entry)


def parse_body(content_type, body):
    """{"form": {...}} or {"json": ...} or {"body": text} or {} for the record and handlers."""
    ctype = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if ctype == "application/x-www-form-urlencoded":
        form = {}
        for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
            if name in form:
                form[name] = form[name] if isinstance(form[name], list) else [form[name]]
                form[name].append(value)
            else:
                form[name] = value
        return {"form": form}
    if body:
        try:
            return {"json": json.loads(text)}
        except ValueError:
            return {"body": text}
    return {}


# ---------------------------------------------------------------------------
# Fake Twilio
# ---------------------------------------------------------------------------

def twilio_error(status, code, message, headers=None):
    return Reply(status, {"code": code, "message": message,
                          "more_info": "https://www.twilio.com/docs/errors/%d" % code,
                          "status": status}, headers=headers)


def behaviour_reply(provider, b, to):
    """The Reply for a table row (Twilio or Meta)."""
    if b.action == "hang":
        return Reply(0, hang=True)
    headers = {"Retry-After": str(b.retry_after)} if b.retry_after else {}
    if b.action == "html500":
        return Reply(b.status, PROXY_500_PAGE, "text/html", headers)
    if provider == "twilio":
        return twilio_error(b.status, b.code, b.message.format(to=to), headers)
    return meta_error(b.status, b.code, b.message.format(to=to), b.details, headers=headers)


def twilio_request(server, method, path, headers, parsed):
    m = TWILIO_PATH.match(path)
    if not m:
        return twilio_error(404, 20404, "The requested resource %s was not found" % path)

    # HTTP Basic: user = Account SID, password = auth token.
    user = password = None
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            pass
    if (user, password) != (server.twilio_sid, server.twilio_token) or m.group(1) != user:
        return twilio_error(401, 20003, "Authenticate",
                            {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    if method != "POST":
        return twilio_error(405, 20004, "Method not allowed")

    form = parsed.get("form", {})
    first = lambda name: (form.get(name)[0] if isinstance(form.get(name), list)  # noqa: E731
                          else form.get(name))
    to, sender, body = first("To"), first("From"), first("Body")
    service = first("MessagingServiceSid")
    callback = first("StatusCallback")
    media = form.get("MediaUrl") or form.get("ContentSid")

    if not to:
        return twilio_error(400, 21604, "A 'To' phone number is required.")
    if not sender and not service:
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if not body and not media:
        return twilio_error(400, 21602, "Message body is required.")
    if body and len(body) > 1600:
        return twilio_error(400, 21617,
                            "The concatenated message body exceeds the 1600 character limit.")
    if callback:
        cb = urllib.parse.urlsplit(callback)
        if cb.scheme not in ("http", "https") or not cb.netloc:
            return twilio_error(400, 21609, "The StatusCallback URL %s is not a valid URL."
                                % callback)

    if server.twilio_max_rate > 0:
        # a provider's own limit: over N accepted messages in the last second
        # (per sender), 429 / 20429 with Retry-After: 1, as Twilio answers a burst
        now = time.time()
        with server.id_lock:
            sent = [t for t in server.twilio_sent.get(sender, []) if now - t < 1.0]
            over = len(sent) >= server.twilio_max_rate
            if not over:
                sent.append(now)
            server.twilio_sent[sender] = sent
        if over:
            return twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "1"})
    behaviour = TWILIO_BEHAVIOURS.get(digits_of(to)[-4:])
    if behaviour:
        return behaviour_reply("twilio", behaviour, to)

    sid = "SM" + uuid.uuid4().hex
    now = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))
    account = server.twilio_sid
    base = "/2010-04-01/Accounts/%s/Messages/%s" % (account, sid)
    resource = {
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": body or "",
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender or None,
        "messaging_service_sid": service or None,
        "num_media": "0" if not form.get("MediaUrl") else str(
            len(form["MediaUrl"]) if isinstance(form["MediaUrl"], list) else 1),
        "num_segments": str(sms_segments(body or "")),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # Twilio answers "accepted" when a Messaging Service picks the sender.
        "status": "accepted" if (service and not sender) else "queued",
        "subresource_uris": {"media": base + "/Media.json"},
        "to": to,
        "uri": base + ".json",
    }
    return Reply(201, resource, headers={"Twilio-Request-Id": "RQ" + uuid.uuid4().hex})


# ---------------------------------------------------------------------------
# Fake Meta (WhatsApp Cloud API)
# ---------------------------------------------------------------------------

def meta_error(status, code, message, details=None, subcode=None,
               err_type="OAuthException", headers=None):
    err = {"message": message, "type": err_type, "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    if details is not None:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    trace = fbtrace_id()
    err["fbtrace_id"] = trace
    hdrs = {"x-fb-trace-id": trace}
    hdrs.update(headers or {})
    return Reply(status, {"error": err}, "application/json; charset=UTF-8", hdrs)


def invalid_param(details):
    return meta_error(400, 100, "(#100) Invalid parameter", details)


def validate_meta_message(msg):
    """None when the body is a valid send request, else the 400 code-100 Reply."""
    if not isinstance(msg, dict):
        return invalid_param("The request body must be a JSON object.")
    if "messaging_product" not in msg:
        return meta_error(400, 100, "(#100) The parameter messaging_product is required.")
    if msg["messaging_product"] != "whatsapp":
        return invalid_param("messaging_product must be \"whatsapp\".")
    if msg.get("recipient_type", "individual") not in ("individual", "group"):
        return invalid_param("recipient_type must be \"individual\".")
    to = msg.get("to")
    if not isinstance(to, str) or not to.strip():
        return meta_error(400, 100, "(#100) The parameter to is required.")
    if not digits_of(to):
        return invalid_param("The parameter to is not a valid phone number.")
    mtype = msg.get("type", "text")   # Meta defaults to text
    if mtype not in META_TYPES:
        return meta_error(400, 100, "(#100) Param type must be one of {%s} - got \"%s\"."
                          % (", ".join(t.upper() for t in META_TYPES), mtype))
    obj = msg.get(mtype)
    if not isinstance(obj, dict):
        return meta_error(400, 100, "(#100) The parameter %s is required." % mtype)
    if "biz_opaque_callback_data" in msg:
        opaque = msg["biz_opaque_callback_data"]
        if not isinstance(opaque, str) or len(opaque) > 512:
            return invalid_param("biz_opaque_callback_data must be a string of at most "
                                 "512 characters.")
    if mtype == "text":
        body = obj.get("body")
        if not isinstance(body, str) or not body:
            return meta_error(400, 100, "(#100) The parameter text['body'] is required.")
        if len(body) > 4096:
            return invalid_param("text['body'] must be at most 4096 characters.")
        if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
            return invalid_param("text['preview_url'] must be a boolean.")
    elif mtype == "template":
        if not isinstance(obj.get("name"), str) or not obj["name"]:
            return meta_error(400, 100, "(#100) The parameter template['name'] is required.")
        language = obj.get("language")
        if not isinstance(language, dict) or not isinstance(language.get("code"), str) \
                or not language["code"]:
            return meta_error(400, 100,
                              "(#100) The parameter template['language']['code'] is required.")
        components = obj.get("components", [])
        if not isinstance(components, list):
            return invalid_param("template['components'] must be an array.")
        for comp in components:
            if not isinstance(comp, dict) or comp.get("type") not in ("header", "body",
                                                                      "button", "footer"):
                return invalid_param("Each template component needs a type of header, "
                                     "body, button or footer.")
            if comp["type"] == "button":
                if comp.get("sub_type") not in ("url", "quick_reply"):
                    return invalid_param("A button component needs sub_type url or quick_reply.")
                if str(comp.get("index", "")) not in [str(i) for i in range(10)]:
                    return invalid_param("A button component needs an index from 0 to 9.")
            params = comp.get("parameters", [])
            if not isinstance(params, list):
                return invalid_param("component['parameters'] must be an array.")
            for p in params:
                if not isinstance(p, dict) or not isinstance(p.get("type"), str):
                    return invalid_param("Each parameter needs a type.")
                ptype = p["type"]
                if ptype in ("currency", "date_time"):
                    val = p.get(ptype)
                    keys = ("fallback_value", "code", "amount_1000") if ptype == "currency" \
                        else ("fallback_value",)
                    if not isinstance(val, dict) or any(k not in val for k in keys):
                        return invalid_param("A parameter of type %s needs %s {%s}."
                                             % (ptype, ptype, ", ".join(keys)))
                elif ptype in ("image", "document", "video"):
                    val = p.get(ptype)
                    if not isinstance(val, dict) or not ("link" in val or "id" in val):
                        return invalid_param("A parameter of type %s needs %s {link or id}."
                                             % (ptype, ptype))
                elif ptype == "payload":
                    if not isinstance(p.get("payload"), str):
                        return invalid_param("A parameter of type payload needs a payload string.")
                elif ptype != "text":
                    return invalid_param("Parameter type %s is not one of text, currency, "
                                         "date_time, image, document, video, payload." % ptype)
                if p["type"] == "text" and (not isinstance(p.get("text"), str) or not p["text"]):
                    return invalid_param("A parameter of type text needs a non-empty text "
                                         "string.")
    return None


def meta_request(server, method, path, headers, parsed):
    phone_number_id = META_PATH.match(path).group(1)

    auth = headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if token != server.meta_token:
        reply = meta_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        reply.headers["WWW-Authenticate"] = 'OAuth "Facebook Platform" "invalid_token" ' \
                                            '"Invalid OAuth access token"'
        return reply
    if server.meta_phone_number_id and phone_number_id != server.meta_phone_number_id:
        return meta_error(400, 100,
                          "Unsupported post request. Object with ID '%s' does not exist, "
                          "cannot be loaded due to missing permissions, or does not support "
                          "this operation. Please read the Graph API documentation at "
                          "https://developers.facebook.com/docs/graph-api" % phone_number_id,
                          subcode=33, err_type="GraphMethodException")
    if method != "POST":
        return meta_error(405, 100, "(#100) Unsupported %s request." % method)
    if "json" not in parsed:
        return invalid_param("The request body must be JSON.")
    msg = parsed["json"]
    invalid = validate_meta_message(msg)
    if invalid:
        return invalid

    to = msg["to"]
    behaviour = META_BEHAVIOURS.get(digits_of(to)[-4:])
    if behaviour:
        return behaviour_reply("meta", behaviour, to)
    if msg.get("type") == "template" and msg["template"]["name"].startswith("missing_"):
        return meta_error(404, 132001, "(#132001) Template name does not exist in the "
                          "translation", details="template name (%s) does not exist in %s"
                          % (msg["template"]["name"], msg["template"]["language"]["code"]))
    if server.meta_window and msg.get("type", "text") != "template":
        wrote = server.inbound.get(digits_of(to))
        if wrote is None or time.time() - wrote >= 24 * 3600:
            return behaviour_reply("meta", META_BEHAVIOURS["0003"], to)

    wa_id = digits_of(to)
    sent = {"id": wamid(wa_id)}
    if msg.get("type") == "template":
        sent["message_status"] = "accepted"
    return Reply(200, {"messaging_product": "whatsapp",
                       "contacts": [{"input": to, "wa_id": wa_id}],
                       "messages": [sent]},
                 "application/json; charset=UTF-8", {"x-fb-trace-id": fbtrace_id()})


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True        # held ("never answer") threads don't block exit
    block_on_close = False
    request_queue_size = 1024    # listen backlog: hundreds of clients connect at once
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that drops its connection (benchmarks, timeouts) is normal;
        # anything else is a bug here and gets its traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Fake Twilio + Meta WhatsApp Cloud API "
                                "(see the module docstring for the behaviour table).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--ready-file", help="write the port here once listening")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--fail-percent", type=float, default=0.0)
    p.add_argument("--record", help="append one JSON line per request to this file")
    p.add_argument("--twilio-sid", default=DEFAULT_TWILIO_SID)
    p.add_argument("--twilio-token", default=DEFAULT_TWILIO_TOKEN)
    p.add_argument("--meta-token", default=DEFAULT_META_TOKEN)
    p.add_argument("--meta-phone-number-id", default=None)
    p.add_argument("--hang-seconds", type=float, default=60.0)
    p.add_argument("--twilio-max-rate", type=int, default=0,
                   help="accept at most N messages a second per sender; more: 429 code 20429")
    p.add_argument("--meta-window", action="store_true",
                   help="refuse free-form WhatsApp text outside the 24-hour window (131047)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 0 <= args.fail_percent <= 100:
        p.error("--fail-percent must be between 0 and 100")
    if args.latency_ms < 0:
        p.error("--latency-ms must not be negative")
    return args


def main(argv=None):
    args = parse_args(argv)
    server = Server((args.host, args.port), Handler)
    server.latency = args.latency_ms / 1000.0
    server.fail_percent = args.fail_percent
    server.twilio_sid = args.twilio_sid
    server.twilio_token = args.twilio_token
    server.meta_token = args.meta_token
    server.meta_phone_number_id = args.meta_phone_number_id
    server.hang_seconds = args.hang_seconds
    server.meta_window = args.meta_window
    server.twilio_max_rate = args.twilio_max_rate
    server.twilio_sent = {}
    server.inbound = {}
    server.verbose = args.verbose
    server.stopping = threading.Event()
    server.id_lock = threading.Lock()
    server.next_connection_id = 0
    server.recorder = Recorder(args.record)
    server.holds = Holds()
    server.stats = Stats({"latency_ms": args.latency_ms, "fail_percent": args.fail_percent,
                          "twilio_sid": args.twilio_sid,
                          "meta_phone_number_id": args.meta_phone_number_id})
    port = server.server_address[1]

    # serve_forever runs in a thread; the main thread only waits for a signal.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="serve_forever", daemon=True)
    worker.start()

    if args.ready_file:
        write_atomically(args.ready_file, "%d\n" % port)
    sys.stderr.write("fake_providers: listening on http://%s:%d (latency %g ms, fail %g%%)\n"
                     % (args.host, port, args.latency_ms, args.fail_percent))
    sys.stderr.flush()

    while not stop.wait(1.0):
        pass
    server.stopping.set()     # releases held "never answer" connections
    server.shutdown()         # waits for serve_forever to return
    server.server_close()
    sys.stderr.write("fake_providers: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
