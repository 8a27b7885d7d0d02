#!/usr/bin/python3
"""A real SMTP server for Herald's tests and benchmarks (Debian's python3-aiosmtpd).

It accepts mail, optionally writes every message to a directory, and answers
with real SMTP error replies for a few magic recipient names.  The SMTP side is
aiosmtpd's own implementation (EHLO, AUTH PLAIN/LOGIN, STARTTLS, DATA with dot
transparency, RSET, many transactions per connection); this file only adds the
behaviours, the counters and the storage.

Start it
--------
    /usr/bin/python3 tests/fakes/smtp_sink.py --port 0 --ready-file /tmp/t/smtp-port \
        --maildir /tmp/t/mail [--auth user:secret] [--stats-port 0] [--latency-ms 20]

    --port N            listen on 127.0.0.1:N (0 = a free port; see --ready-file)
    --host ADDR         listen address (default 127.0.0.1)
    --ready-file FILE   once listening, write FILE (atomically: poll until it exists):
                          line 1: the SMTP port
                          line 2: the stats HTTP port (only with --stats-port)
    --maildir DIR       save every accepted message as DIR/<n>.eml and DIR/<n>.json
                        (n = 1, 2, 3 ... in order of acceptance; continues after the
                        highest number already in DIR).  Without --maildir nothing is
                        saved, messages are only counted.
    --discard           count but never save (for benchmarks), even with --maildir
    --auth USER:PASS    require AUTH (PLAIN or LOGIN, offered without TLS) before MAIL:
                        MAIL before AUTH -> 530 5.7.0, wrong credentials -> 535 5.7.8.
                        Without --auth, AUTH is not advertised.
    --latency-ms MS     wait MS before answering the end of DATA (other commands are
                        answered at once)
    --stats-port N      serve GET /_stats (JSON) and POST /_stats/reset on
                        127.0.0.1:N (0 = a free one, written to the ready file)
    --stats-file FILE   write the stats JSON to FILE on SIGUSR1 and when stopping
    --tls-cert PEM --tls-key PEM
                        offer STARTTLS with this certificate
    --require-starttls  refuse everything but EHLO/NOOP/QUIT/STARTTLS before STARTTLS (530)
    --implicit-tls      TLS from the first byte (smtps) instead of STARTTLS
    --max-size BYTES    SIZE limit advertised and enforced (default 33554432)
    --hostname NAME     name in the banner and EHLO reply (default smtp-sink.test)
    --verbose           log the SMTP dialogue (aiosmtpd's log) to stderr

SIGTERM or SIGINT stops it (exit status 0; open sessions are cut).
SIGUSR1 writes the stats to --stats-file (or to stderr without one).

Behaviour by recipient
----------------------
Chosen by the recipient's local part, case-insensitive; a "+tag" is ignored, so
"nouser+42@example.com" behaves like "nouser@example.com":

    local part   when               reply
    ----------   ----------------   --------------------------------------------
    tempfail     RCPT TO            451 4.3.0 Temporary failure, try again later
    full         RCPT TO            452 4.2.2 Mailbox full
    nouser       RCPT TO            550 5.1.1 No such user here
    bigdata      end of DATA        552 5.3.4 Message too big for this system
    policy       end of DATA        554 5.7.1 Message rejected due to content policy
    (anything)   RCPT / end of DATA 250 2.1.5 OK / 250 2.0.0 OK: queued as <n>

A rejected RCPT leaves the other recipients of the transaction in place;
a DATA-time rejection applies when any accepted recipient is bigdata/policy.
Other replies: MAIL -> 250 2.1.0 OK; EHLO advertises ENHANCEDSTATUSCODES, SIZE,
8BITMIME, SMTPUTF8 (and AUTH PLAIN LOGIN with --auth, STARTTLS with a cert).
Lines over 1000 octets in DATA get aiosmtpd's "500 Line too long" (RFC 5321 4.5.3.1.6).

Saved files
-----------
DIR/<n>.eml  the message exactly as the client submitted it: the bytes between
             the 354 reply and the final ".", with SMTP dot-stuffing removed
             (RFC 5321 4.5.2) and nothing added (no Received: header).
DIR/<n>.json {"n", "time", "mail_from", "rcpt_tos", "mail_options", "rcpt_options",
              "peer": [host, port], "session": connection sequence number (1, 2, ...
              per accepted TCP connection since start), "message_in_session": k,
              "helo", "auth_login", "tls", "smtputf8", "size"}
Both are written to a temporary name and renamed, the .eml first, before the 250
is sent: once the client has its 250, both files are complete.

Stats (GET /_stats on --stats-port, or --stats-file)
----------------------------------------------------
    {"messages": n,                 accepted (250 at end of DATA)
     "messages_rejected": n,        refused at end of DATA (bigdata/policy)
     "rcpt_rejected": n,            refused at RCPT (tempfail/full/nouser)
     "replies": {"451": n, ...},    those refusals by reply code
     "sessions": n,                 TCP connections accepted
     "sessions_open": n,            open right now
     "sessions_with_messages": n,   distinct connections that delivered >= 1 message
     "max_messages_per_session": n, the most messages delivered on one connection
     "auth_ok": n, "auth_failed": n,
     "bytes": n,                    total size of accepted messages
     "since", "seconds", "messages_per_second"}
Counts cover the time since start or the last POST /_stats/reset (which answers
with the counts it cleared); session and message numbers in saved files never reset.
"""

import argparse
import asyncio
import datetime
import http.server
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

# ---------------------------------------------------------------------------
# Behaviour tables (keep in sync with the docstring above and README.md)
# ---------------------------------------------------------------------------

RCPT_BEHAVIOURS = {
    "tempfail": "451 4.3.0 Temporary failure, try again later",
    "full": "452 4.2.2 Mailbox full",
    "nouser": "550 5.1.1 No such user here",
}

DATA_BEHAVIOURS = {
    "bigdata": "552 5.3.4 Message too big for this system",
    "policy": "554 5.7.1 Message rejected due to content policy",
}


def behaviour_key(address):
    """"NoUser+42@example.com" -> "nouser"."""
    local = address.rsplit("@", 1)[0] if "@" in address else address
    return local.split("+", 1)[0].lower()


def utc_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def write_atomically(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Counters (touched by the asyncio thread, read by the stats HTTP thread)
# ---------------------------------------------------------------------------

class SinkStats:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_session = 0      # sequence numbers of sessions: never reset
        self.open = 0              # sessions open right now: never reset
        self.generation = 0
        self._zero()

    def _zero(self):
        self.generation += 1
        self.since = time.time()
        self.c = {"messages": 0, "messages_rejected": 0, "rcpt_rejected": 0,
                  "sessions": 0, "sessions_with_messages": 0,
                  "max_messages_per_session": 0, "auth_ok": 0, "auth_failed": 0,
                  "bytes": 0}
        self.replies = {}

    def session_opened(self):
        with self.lock:
            self.next_session += 1
            self.open += 1
            self.c["sessions"] += 1
            return self.next_session

    def session_closed(self):
        with self.lock:
            self.open -= 1

    def refused(self, counter, reply):
        code = reply[:3]
        with self.lock:
            self.c[counter] += 1
            self.replies[code] = self.replies.get(code, 0) + 1

    def auth(self, ok):
        with self.lock:
            self.c["auth_ok" if ok else "auth_failed"] += 1

    def message_accepted(self, proto, size):
        """Count one delivered message on session `proto`; returns its number in the session."""
        with self.lock:
            if proto.counted_generation != self.generation:
                proto.counted_generation = self.generation
                proto.messages_counted = 0
                self.c["sessions_with_messages"] += 1
            proto.messages_counted += 1
            proto.messages_total += 1
            self.c["messages"] += 1
            self.c["bytes"] += size
            self.c["max_messages_per_session"] = max(self.c["max_messages_per_session"],
                                                     proto.messages_counted)
            return proto.messages_total

    def snapshot(self, reset=False):
        with self.lock:
            seconds = time.time() - self.since
            snap = dict(self.c)
            snap.update({
                "replies": dict(self.replies),
                "sessions_open": self.open,
                "since": datetime.datetime.fromtimestamp(
                    self.since, datetime.timezone.utc).isoformat(timespec="milliseconds"),
                "seconds": round(seconds, 3),
                "messages_per_second": round(self.c["messages"] / seconds, 1) if seconds else 0,
            })
            if reset:
                self._zero()
            return snap


# ---------------------------------------------------------------------------
# SMTP: aiosmtpd's protocol with session numbering, and the handler hooks
# ---------------------------------------------------------------------------

class SinkSMTP(SMTP):
    """aiosmtpd's SMTP, plus a sequence number and message count per connection."""

    def __init__(self, handler, sink, **kwargs):
        super().__init__(handler, **kwargs)
        self.sink = sink
        self.seq = None               # session (connection) sequence number
        self.is_probe = False         # the Controller's own start-up connection
        self.closed = False
        self.counted_generation = 0
        self.messages_counted = 0     # since the last stats reset
        self.messages_total = 0       # since the connection opened

    def connection_made(self, transport):
        # Called again after STARTTLS on the same connection: count only once.
        if self.seq is None and not self.is_probe:
            if self.sink.probing:
                self.is_probe = True
            else:
                self.seq = self.sink.stats.session_opened()
        super().connection_made(transport)

    def connection_lost(self, error):
        super().connection_lost(error)
        if self.seq is not None and not self.closed:
            self.closed = True
            self.sink.stats.session_closed()


class SinkHandler:
    """aiosmtpd handler hooks: the behaviours of the table, storage, counters."""

    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.sink.auth:
            responses = [r for r in responses if not r[4:].startswith("AUTH")]
        # Our replies carry enhanced status codes (RFC 2034): say so.
        responses.insert(len(responses) - 1, "250-ENHANCEDSTATUSCODES")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = RCPT_BEHAVIOURS.get(behaviour_key(address))
        if reply:
            self.sink.stats.refused("rcpt_rejected", reply)
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        if sink.latency > 0:
            await asyncio.sleep(sink.latency)
        for rcpt in envelope.rcpt_tos:
            reply = DATA_BEHAVIOURS.get(behaviour_key(rcpt))
            if reply:
                sink.stats.refused("messages_rejected", reply)
                return reply

        content = envelope.original_content   # bytes, dot-stuffing already removed
        in_session = sink.stats.message_accepted(server, len(content))
        n = sink.next_message_number()
        if sink.maildir and not sink.discard:
            meta = {
                "n": n,
                "time": utc_now_iso(),
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "mail_options": list(envelope.mail_options),
                "rcpt_options": list(envelope.rcpt_options),
                "peer": list(session.peer) if session.peer else None,
                "session": server.seq,
                "message_in_session": in_session,
                "helo": session.host_name,
                "auth_login": (session.auth_data.login.decode("utf-8", "replace")
                               if session.authenticated and session.auth_data else None),
                "tls": session.ssl is not None or sink.implicit_tls,
                "smtputf8": envelope.smtp_utf8,
                "size": len(content),
            }
            base = os.path.join(sink.maildir, str(n))
            write_atomically(base + ".eml", content)
            write_atomically(base + ".json", (json.dumps(meta, indent=1) + "\n").encode())
        return "250 2.0.0 OK: queued as %d" % n


class Sink:
    """Configuration and shared state of one sink process."""

    def __init__(self, args):
        self.maildir = args.maildir
        self.discard = args.discard
        self.latency = args.latency_ms / 1000.0
        self.auth = None
        if args.auth:
            user, _, password = args.auth.partition(":")
            self.auth = (user.encode(), password.encode())
        self.implicit_tls = args.implicit_tls
        self.stats = SinkStats()
        self.probing = False
        self.message_lock = threading.Lock()
        self.last_message = 0
        if self.maildir:
            os.makedirs(self.maildir, exist_ok=True)
            numbers = [int(m.group(1)) for m in
                       (re.match(r"^(\d+)\.eml$", f) for f in os.listdir(self.maildir)) if m]
            self.last_message = max(numbers, default=0)

    def next_message_number(self):
        with self.message_lock:
            self.last_message += 1
            return self.last_message

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd authenticator: auth_data is LoginPassword(login, password) in bytes."""
        ok = (auth_data.login, auth_data.password) == self.auth
        self.stats.auth(ok)
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd itself answers "535 5.7.8 Authentication
        # credentials invalid" (with handled=True it would answer nothing).
        return AuthResult(success=False, handled=False)


class SinkController(Controller):
    """aiosmtpd's threaded Controller that can bind port 0 and numbers sessions."""

    def __init__(self, sink, handler, **kwargs):
        self.sink = sink
        super().__init__(handler, **kwargs)

    def factory(self):
        return SinkSMTP(self.handler, self.sink, **self.SMTP_kwargs)

    def _create_server(self):
        # Bind ourselves so that port 0 works: the Controller's start-up probe
        # then connects to the port actually chosen.
        sock = socket.socket(socket.AF_INET6 if ":" in self.hostname else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.hostname, self.port))
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock,
                                       ssl=self.ssl_context, backlog=1024)

    def _trigger_server(self):
        # The Controller connects once to check the server answers; that
        # connection is not a session of any client, so it is not counted.
        self.sink.probing = True
        try:
            super()._trigger_server()
        finally:
            self.sink.probing = False


# ---------------------------------------------------------------------------
# Stats over HTTP
# ---------------------------------------------------------------------------

def start_stats_server(host, port, stats):
    class StatsHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, obj):
            body = (json.dumps(obj, indent=1) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.split("?")[0] in ("/_stats", "/"):
                return self.answer(200, stats.snapshot())
            self.answer(404, {"error": "GET /_stats or POST /_stats/reset"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.split("?")[0] == "/_stats/reset":
                return self.answer(200, stats.snapshot(reset=True))
            self.answer(404, {"error": "GET /_stats or POST /_stats/reset"})

    class StatsServer(http.server.ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False

    server = StatsServer((host, port), StatsHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     name="stats-http", daemon=True).start()
    return server


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="SMTP sink for Herald's tests "
                                "(see the module docstring for the behaviour table).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--ready-file")
    p.add_argument("--maildir")
    p.add_argument("--discard", action="store_true")
    p.add_argument("--auth", metavar="USER:PASS")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--stats-port", type=int, default=None)
    p.add_argument("--stats-file")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--max-size", type=int, default=33554432)
    p.add_argument("--hostname", default="smtp-sink.test")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.auth and ":" not in args.auth:
        p.error("--auth takes USER:PASS")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (args.require_starttls or args.implicit_tls) and not args.tls_cert:
        p.error("--require-starttls and --implicit-tls need --tls-cert/--tls-key")
    if args.latency_ms < 0:
        p.error("--latency-ms must not be negative")
    return args


def write_stats_file(path, stats):
    snap = json.dumps(stats.snapshot(), indent=1) + "\n"
    if path:
        write_atomically(path, snap.encode())
    else:
        sys.stderr.write("smtp_sink stats: " + snap)
        sys.stderr.flush()


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(message)s")
    else:
        logging.getLogger("mail.log").setLevel(logging.ERROR)
    # aiosmtpd warns that AUTH without TLS is unsafe: intended here (test peer).
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

    sink = Sink(args)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    smtp_kwargs = {
        "data_size_limit": args.max_size,
        "enable_SMTPUTF8": True,
        "auth_required": bool(sink.auth),
        # With --auth: offer AUTH on plain connections.  Without: AUTH is hidden
        # from EHLO (see handle_EHLO) and refused.
        "auth_require_tls": not sink.auth,
        "authenticator": sink.authenticator if sink.auth else None,
    }
    if tls and not args.implicit_tls:
        smtp_kwargs["tls_context"] = tls
        smtp_kwargs["require_starttls"] = args.require_starttls
    controller = SinkController(sink, SinkHandler(sink), hostname=args.host, port=args.port,
                                ssl_context=tls if args.implicit_tls else None,
                                # the banner name; also avoids a DNS lookup per connection
                                server_hostname=args.hostname,
                                **smtp_kwargs)
    controller.start()

    stats_server = None
    lines = ["%d" % controller.port]
    if args.stats_port is not None:
        stats_server = start_stats_server(args.host, args.stats_port, sink.stats)
        lines.append("%d" % stats_server.server_address[1])
    if args.ready_file:
        write_atomically(args.ready_file, ("\n".join(lines) + "\n").encode())
    sys.stderr.write("smtp_sink: listening on %s:%d%s%s%s\n" % (
        args.host, controller.port,
        " (stats http://%s:%s/_stats)" % (args.host, lines[1]) if stats_server else "",
        " auth" if sink.auth else "",
        " maildir %s" % args.maildir if args.maildir and not args.discard else ""))
    sys.stderr.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: write_stats_file(args.stats_file, sink.stats))
    while not stop.wait(1.0):
        pass

    controller.stop()
    if stats_server:
        stats_server.shutdown()
        stats_server.server_close()
    if args.stats_file:
        write_stats_file(args.stats_file, sink.stats)
    sys.stderr.write("smtp_sink: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
