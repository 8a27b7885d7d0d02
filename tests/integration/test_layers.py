"""tools/check-layers, the layering check CI runs: on a copy of core/ with
planted violations (a bad include in store/ and in base/, a relative include
that climbs out of its folder, an lrt_call in http/, a 700-line file, an
include in main.c, a folder without a rule) it fails naming each at its file
and line; a small clean tree passes; comments and strings fool it neither
way. Whether the real tree passes is checked by .ci/run, not here."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("HERALD_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(SOURCE, "tools", "check-layers")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True,
                          text=True, timeout=60)


def violations(root):
    r = run(root)
    lines = [l for l in r.stderr.splitlines() if not l.startswith("check-layers:")]
    return r.returncode, set(lines)


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def append(root, rel, text):
    """Appends text (one line) to the file; returns its line number."""
    path = os.path.join(root, rel)
    with open(path) as f:
        n = len(f.read().splitlines())
    with open(path, "a") as f:
        f.write(text + "\n")
    return n + 1


class PlantedTest(unittest.TestCase):
    """Violations planted into a copy of the real core/: each appears, exactly,
    beside whatever the copy reported before (so the test holds whether or not
    the real tree is clean yet)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-layers-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        shutil.copytree(os.path.join(SOURCE, "core"), os.path.join(self.tmp, "core"))
        self.rc0, self.before = violations(self.tmp)

    def assertPlanted(self, *expected):
        rc, after = violations(self.tmp)
        self.assertEqual(rc, 1)
        self.assertEqual(after - self.before, set(expected))

    def test_store_includes_http(self):
        n = append(self.tmp, "core/store/repo_auth.c", '#include "http/api.h"')
        self.assertPlanted("core/store/repo_auth.c:%d: folder store may not include http/api.h "
                           "(allowed: store, base, crypto)" % n)

    def test_base_includes_engine(self):
        n = append(self.tmp, "core/base/buf.h", '#  include "engine/app.h" /* planted */')
        self.assertPlanted("core/base/buf.h:%d: folder base may not include engine/app.h "
                           "(allowed: base)" % n)

    def test_relative_include_is_resolved(self):
        n = append(self.tmp, "core/store/pg.c", '#include "../http/server.h"')
        self.assertPlanted("core/store/pg.c:%d: folder store may not include http/server.h "
                           "(allowed: store, base, crypto)" % n)

    def test_http_never_includes_transport(self):
        n = append(self.tmp, "core/http/router.c", '#include "transport/mime.h"')
        self.assertPlanted("core/http/router.c:%d: folder http may not include transport/mime.h "
                           "(allowed: http, base, crypto, obs, lua, store, cache, engine, limit)" % n)

    def test_lrt_call_outside_policy(self):
        n = append(self.tmp, "core/http/router.c",
                   'static int x(void) { return lrt_call (0, "a", "b", 0, 0, 0, 0); }')
        self.assertPlanted("core/http/router.c:%d: lrt_call may appear only in core/lua/ and "
                           "core/engine/policy.c (call the typed policy layer)" % n)

    def test_lrt_call_within_outside_policy(self):
        n = append(self.tmp, "core/engine/dispatch.c",
                   'static int x(void) { return lrt_call_within(0, 0, "a", "b", 0, 0, 0, 0); }')
        self.assertPlanted("core/engine/dispatch.c:%d: lrt_call may appear only in core/lua/ and "
                           "core/engine/policy.c (call the typed policy layer)" % n)

    def test_file_of_700_lines(self):
        write(self.tmp, "core/base/long.c", "/* long.c */\n" + "int x;\n" * 699)
        write(self.tmp, "core/base/short.c", "/* short.c */\n" + "int y;\n" * 698)
        self.assertPlanted("core/base/long.c:700: 700 lines; a file under core/ must have fewer "
                           "than 700 (split it along a real seam)")

    def test_main_includes_only_cli(self):
        n = append(self.tmp, "core/main.c", '#include "http/api.h"')
        self.assertPlanted("core/main.c:%d: core/main.c may not include http/api.h "
                           "(allowed: cli)" % n)

    def test_folder_without_rule(self):
        write(self.tmp, "core/domain/x.c", '#include "base/err.h"\n')
        self.assertPlanted("core/domain/x.c:1: folder domain has no layer rule (add one to "
                           "tools/check-layers and docs/architecture.md)")

    def test_all_at_once(self):
        a = append(self.tmp, "core/store/repo_auth.c", '#include "http/api.h"')
        b = append(self.tmp, "core/base/log.c", '#include "engine/app.h"')
        c = append(self.tmp, "core/http/api.c", "void f(void) { lrt_call(0); }")
        write(self.tmp, "core/cache/big.h", "\n" * 750)
        rc, after = violations(self.tmp)
        self.assertEqual(rc, 1)
        self.assertEqual(after - self.before, {
            "core/store/repo_auth.c:%d: folder store may not include http/api.h "
            "(allowed: store, base, crypto)" % a,
            "core/base/log.c:%d: folder base may not include engine/app.h (allowed: base)" % b,
            "core/http/api.c:%d: lrt_call may appear only in core/lua/ and core/engine/policy.c "
            "(call the typed policy layer)" % c,
            "core/cache/big.h:700: 750 lines; a file under core/ must have fewer than 700 "
            "(split it along a real seam)"})


CLEAN = {
    "core/main.c": '/* main.c */\n#include "cli/cli.h"\n#include <stdio.h>\n',
    "core/cli/cli.h": '#include "base/err.h"\n#include "engine/app.h"\n#include "http/api.h"\n',
    "core/cli/serve.c": '#include "cli/cli.h"\n#include "transport/t.h"\n#include "obs/m.h"\n',
    "core/base/err.h": '#include <stdarg.h>\n#include "err_impl.h"\n',
    "core/base/err_impl.h": "/* next to err.h: a bare name is base's own */\n",
    "core/crypto/hash.c": '#include "base/err.h"\n#include "crypto/hash.h"\n',
    "core/crypto/hash.h": "\n",
    "core/obs/m.h": '#include "base/err.h"\n',
    "core/lua/runtime.c": '#include "crypto/hash.h"\nint g(void) { return lrt_call(0); }\n',
    "core/store/pg.c": '#include "crypto/hash.h"\n#include "base/err.h"\n',
    "core/cache/redis.c": '#include "crypto/hash.h"\n',
    "core/transport/t.h": '#include "obs/m.h"\n#include "crypto/hash.h"\n',
    "core/engine/app.h": ('#include "store/pg.h"\n#include "cache/r.h"\n#include "lua/l.h"\n'
                          '#include "transport/t.h"\n#include "obs/m.h"\n'),
    "core/engine/policy.c": '#include "engine/app.h"\nint p(void) { return lrt_call(1); }\n',
    "core/http/api.h": ('#include "engine/app.h"\n#include "store/pg.h"\n#include "lua/l.h"\n'
                        '#include "obs/m.h"\n#include "cache/r.h"\n'),
    # what must not count: commented-out includes, lrt_call in comments and
    # strings, a name that merely ends in lrt_call
    "core/http/api.c": ('#include "http/api.h"\n'
                        '/* #include "transport/t.h"\n   lrt_call(x) */\n'
                        '// #include "cli/cli.h" and lrt_call(y)\n'
                        'static const char *s = "lrt_call(z) \\" lrt_call(";\n'
                        "static const char q = '\"';\n"
                        "int my_lrt_call(int);\n"),
    "core/store/long.c": "int x;\n" * 699,
}


class CleanTreeTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-layers-clean-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        for rel, text in CLEAN.items():
            write(self.tmp, rel, text)

    def test_clean_tree_passes(self):
        r = run(self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertIn("%d files under core/" % len(CLEAN), r.stdout)

    def test_one_planted_include_fails_it(self):
        # the same tree, one line more: a string after it must not hide it
        n = append(self.tmp, "core/http/api.c", '#include "transport/t.h" // "')
        r = run(self.tmp)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines()[0],
                         "core/http/api.c:%d: folder http may not include transport/t.h "
                         "(allowed: http, base, crypto, obs, lua, store, cache, engine, limit)" % n)
        self.assertEqual(len(r.stderr.splitlines()), 2)  # the violation and the summary


class UsageTest(unittest.TestCase):

    def test_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for needle in ("http       base, crypto, obs, lua, store, cache, engine",
                       "core/main.c", "lrt_call", "700"):
            self.assertIn(needle, r.stdout)

    def test_executable(self):
        self.assertTrue(os.access(SCRIPT, os.X_OK))

    def test_not_a_tree(self):
        tmp = tempfile.mkdtemp(prefix="herald-layers-none-")
        self.addCleanup(shutil.rmtree, tmp, True)
        r = run(tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn("has no core/ folder", r.stderr)


if __name__ == "__main__":
    unittest.main()
