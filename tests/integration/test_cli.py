"""The `herald` command line: --help on each command, one-line usage errors
with exit 2, configuration errors with exit 1, `herald version`."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import HeraldCase, cli

COMMANDS = ["serve", "migrate", "check", "token", "apikey", "version"]
BAD_CONFIG = ('return {http={listen=8080}, database={url="postgresql://x@127.0.0.1/x"}, '
              'redis={url="redis://127.0.0.1:1/0"}}\n')
GOOD_CONFIG = ('return {http={listen="127.0.0.1:18080"}, '
               'database={url="postgresql://x@127.0.0.1/x"}, '
               'redis={url="redis://127.0.0.1:1/0"}}\n')


class CliTest(HeraldCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-it-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # a private var dir: nothing here may write development keys into the checkout
        self.env = harness.base_env(HERALD_VAR_DIR=os.path.join(self.tmp, "var"))

    def run_cli(self, *args, **kw):
        kw.setdefault("env", self.env)
        return cli(*args, **kw)

    def assertUsageError(self, r, *needles):
        """Exit 2 and exactly one line on stderr containing each needle."""
        self.assertEqual(r.code, 2, r)
        self.assertTrue(r.stderr.endswith("\n"), r)
        self.assertEqual(r.stderr.count("\n"), 1, "expected exactly one stderr line: %r" % r)
        for n in needles:
            self.assertIn(n, r.stderr, r)
        self.assertEqual(r.stdout, "", r)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- help -------------------------------------------------------------------

    def test_help_on_each_command(self):
        for cmd in COMMANDS:
            with self.subTest(command=cmd):
                r = self.run_cli(cmd, "--help")
                self.assertEqual(r.code, 0, r)
                self.assertTrue(r.stdout.startswith("usage: herald " + cmd), r)
                self.assertEqual(r.stderr, "", r)

    def test_top_level_help(self):
        r = self.run_cli("--help")
        self.assertEqual(r.code, 0, r)
        self.assertIn("usage: herald", r.stdout)
        for cmd in COMMANDS:
            self.assertRegex(r.stdout, r"(?m)^\s+%s\b" % cmd)

    def test_no_command_is_a_usage_error(self):
        r = self.run_cli()
        self.assertEqual(r.code, 2, r)
        self.assertIn("usage", r.stderr)

    # -- usage errors -------------------------------------------------------------

    def test_unknown_flag_on_each_command(self):
        for cmd in COMMANDS:
            with self.subTest(command=cmd):
                self.assertUsageError(self.run_cli(cmd, "--bogus-flag"), "--bogus-flag")
        self.assertUsageError(self.run_cli("token", "-Z"), "-Z")
        self.assertUsageError(self.run_cli("serve", "--frobnicate=1"), "--frobnicate")

    def test_missing_flag_value(self):
        self.assertUsageError(self.run_cli("token", "--sub"), "--sub")
        self.assertUsageError(self.run_cli("migrate", "--dir"), "--dir")

    def test_bad_ttl(self):
        for ttl in ["abc", "10x", "", "0", "-5", "99999999999999999999999"]:
            with self.subTest(ttl=ttl):
                r = self.run_cli("token", "--sub", "a", "--scopes", "send", "--ttl", ttl)
                self.assertUsageError(r, "--ttl")
                if ttl:
                    self.assertIn(ttl, r.stderr)

    def test_bad_scopes(self):
        for scopes in ["bogus", "send,bogus", "", ",", "SEND"]:
            with self.subTest(scopes=scopes):
                r = self.run_cli("token", "--sub", "a", "--scopes", scopes)
                self.assertUsageError(r, "--scopes")
                if scopes.strip(","):
                    self.assertIn(scopes.split(",")[-1], r.stderr)
        r = self.run_cli("apikey", "create", "--name", harness.unique(), "--scopes", "bogus")
        self.assertUsageError(r, "bogus")

    def test_token_needs_sub_and_scopes(self):
        self.assertUsageError(self.run_cli("token", "--scopes", "send"), "--sub")
        self.assertUsageError(self.run_cli("token", "--sub", "a"), "--scopes")

    def test_unexpected_arguments(self):
        self.assertUsageError(self.run_cli("version", "extra"), "extra")
        self.assertUsageError(self.run_cli("migrate", "extra"), "extra")
        self.assertUsageError(self.run_cli("apikey"))
        self.assertUsageError(self.run_cli("apikey", "frobnicate"), "frobnicate")
        self.assertUsageError(self.run_cli("apikey", "revoke"))

    def test_bad_listen_flag_is_a_usage_error(self):
        self.assertUsageError(self.run_cli("serve", "--listen", "8080"), "--listen")
        self.assertUsageError(self.run_cli("serve", "--listen", "host:99999"), "--listen")

    def test_unknown_command(self):
        r = self.run_cli("frobnicate")
        self.assertEqual(r.code, 2, r)
        self.assertIn("frobnicate", r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r)
        self.assertEqual(r.stdout, "")

    # -- configuration --------------------------------------------------------------

    def test_config_error_names_file_key_and_value(self):
        path = self.write("bad.lua", BAD_CONFIG)
        r = self.run_cli("check", "--config", path)
        self.assertEqual(r.code, 1, r)
        self.assertEqual(r.stderr,
                         'herald: %s: http.listen: expected "host:port", got 8080\n' % path)
        self.assertEqual(r.stdout, "")

    def test_config_error_through_herald_config(self):
        path = self.write("bad.lua", BAD_CONFIG)
        env = dict(self.env, HERALD_CONFIG=path)
        r = self.run_cli("check", env=env)
        self.assertEqual(r.code, 1, r)
        self.assertIn('%s: http.listen: expected "host:port", got 8080' % path, r.stderr)

    def test_serve_refuses_a_bad_config(self):
        path = self.write("bad.lua", BAD_CONFIG)
        r = self.run_cli("serve", "--config", path, timeout=20)
        self.assertEqual(r.code, 1, r)
        self.assertIn("http.listen", r.stderr)

    def test_missing_required_key(self):
        path = self.write("nored.lua", 'return {http={listen="127.0.0.1:1"}, '
                                       'database={url="postgresql://x@127.0.0.1/x"}}\n')
        r = self.run_cli("check", "--config", path)
        self.assertEqual(r.code, 1, r)
        self.assertIn("redis.url", r.stderr)
        self.assertIn(path, r.stderr)

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "does-not-exist.lua")
        r = self.run_cli("check", "--config", path)
        self.assertEqual(r.code, 1, r)
        self.assertIn(path, r.stderr)

    def test_valid_configs_check_ok(self):
        path = self.write("good.lua", GOOD_CONFIG)
        r = self.run_cli("check", "--config", path)
        self.assertEqual(r.code, 0, r)
        self.assertIn("ok", r.stdout)
        r = self.run_cli("check")  # the default config.lua
        self.assertEqual(r.code, 0, r)

    # -- version --------------------------------------------------------------------

    def test_version(self):
        r = self.run_cli("version")
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.stdout, r"^herald \d+\.\d+\.\d+\n$")
        self.assertEqual(r.stderr, "")
        # `herald --version` is the same thing
        self.assertEqual(re.match(r"^herald (\S+)", r.stdout).group(1),
                         self.run_cli("--version").stdout.split()[-1])


class ServeLifecycleTest(HeraldCase):
    """`herald serve` start-up refusals, --listen and a clean SIGINT stop."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-it-serve-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.env = harness.base_env(HERALD_VAR_DIR=os.path.join(self.tmp, "var"),
                                    HERALD_LISTEN="127.0.0.1:%d" % harness.free_port())

    def serve(self, *args, env=None, timeout=20):
        return cli("serve", *args, env=env or self.env, timeout=timeout)

    @staticmethod
    def _reap(p):
        if p.poll() is None:
            p.kill()
            p.wait()

    def test_listen_flag_wins_and_sigint_stops_cleanly(self):
        port = harness.free_port()
        err = open(os.path.join(self.tmp, "stderr.log"), "wb")
        self.addCleanup(err.close)
        p = subprocess.Popen([harness.HERALD_BIN, "serve", "--listen", "127.0.0.1:%d" % port],
                             cwd=harness.SOURCE_DIR, env=self.env, stdout=err, stderr=err)
        self.addCleanup(self._reap, p)
        deadline = time.time() + 15
        r = None
        while time.time() < deadline and p.poll() is None:
            try:
                r = harness.http_request(port, "GET", "/api/crm/health", timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        self.assertIsNotNone(r, "herald serve --listen did not answer on %d" % port)
        self.assertEqual(r.status, 200, r)
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=10), 0, "exit code after SIGINT")
        with self.assertRaises(OSError):
            harness.http_request(port, "GET", "/api/crm/health", timeout=2)

    def test_port_in_use_is_an_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            r = self.serve("--listen", "127.0.0.1:%d" % port)
        self.assertEqual(r.code, 1, r)
        self.assertIn(str(port), r.stderr)

    def test_short_jwt_secret_is_refused(self):
        env = dict(self.env, HERALD_JWT_SECRET="x" * 31)
        r = self.serve(env=env)
        self.assertEqual(r.code, 1, r)
        self.assertIn("HERALD_JWT_SECRET", r.stderr)
        t = cli("token", "--sub", "a", "--scopes", "send", env=env)
        self.assertEqual(t.code, 1, t)
        self.assertIn("HERALD_JWT_SECRET", t.stderr)
        self.assertEqual(t.stdout, "")

    def test_bad_encryption_key_is_refused(self):
        for key in ["!!not-base64!!", base64.b64encode(b"\0" * 16).decode()]:
            with self.subTest(key=key):
                r = self.serve(env=dict(self.env, HERALD_ENCRYPTION_KEY=key))
                self.assertEqual(r.code, 1, r)
                self.assertIn("HERALD_ENCRYPTION_KEY", r.stderr)


if __name__ == "__main__":
    harness.main()
