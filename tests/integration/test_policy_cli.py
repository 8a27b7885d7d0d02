"""The operator's policy commands against the shipped scripts and templates:
herald check, herald render and herald console (from a pipe and a terminal)."""
import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
import unittest

import harness

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())


def run(*args, stdin=None, env=None):
    e = harness.base_env(**(env or {}))
    p = subprocess.run([harness.HERALD_BIN, *args], cwd=SRC, env=e, input=stdin,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class PolicyCommandsTest(unittest.TestCase):

    def copy_policy(self):
        d = tempfile.mkdtemp(prefix="herald-pcli-")
        self.addCleanup(shutil.rmtree, d, True)
        shutil.copytree(os.path.join(SRC, "scripts"), os.path.join(d, "scripts"))
        shutil.copytree(os.path.join(SRC, "templates"), os.path.join(d, "templates"))
        return {"HERALD_SCRIPTS_DIR": os.path.join(d, "scripts"),
                "HERALD_TEMPLATES_DIR": os.path.join(d, "templates")}, d

    def test_check_renders_every_example(self):
        code, out, err = run("check")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"policy: ok \(\d+ scripts, \d+ templates, \d+ locales, \d+ example renders\)")

    def test_check_names_a_broken_template_and_line(self):
        env, d = self.copy_policy()
        with open(os.path.join(d, "templates", "welcome.sms"), "a") as f:
            f.write("\n{{ client_name | no_such_filter }}\n")
        lines = open(os.path.join(d, "templates", "welcome.sms")).read().count("\n")
        code, out, err = run("check", env=env)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("welcome.sms:%d:" % lines, err)
        self.assertIn("no_such_filter", err)

    def test_check_names_a_broken_script_and_line(self):
        env, d = self.copy_policy()
        with open(os.path.join(d, "scripts", "retry.lua"), "a") as f:
            f.write("\nlocal = 1\n")
        n = open(os.path.join(d, "scripts", "retry.lua")).read().count("\n")
        code, out, err = run("check", env=env)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("retry.lua:%d:" % n, err)

    def test_check_refuses_the_placeholder_identity_in_production(self):
        env, d = self.copy_policy()
        code, out, err = run("check", env=dict(env, HERALD_ENV="production"))
        self.assertEqual(code, 1, (out, err))
        self.assertIn("HERALD_ENV=production: settings.company.address is the shipped "
                      "placeholder", err)
        self.assertIn("settings.company.support_email is a placeholder", err)
        # the same files pass outside production: the switch is explicit
        code, out, err = run("check", env=dict(env, HERALD_ENV="development"))
        self.assertEqual(code, 0, (out, err))
        path = os.path.join(d, "scripts", "settings.lua")
        src = open(path).read()
        src = src.replace("1200 Market Street, Suite 400, San Francisco, CA 94102, USA",
                          "8 Quai des Fleurs, 69002 Lyon, France")
        src = src.replace("support@example.com", "help@bloom-vine.fr")
        open(path, "w").write(src)
        code, out, err = run("check", env=dict(env, HERALD_ENV="production"))
        self.assertEqual(code, 0, (out, err))
        # every email footer names the identity, support address included
        code, out, err = run("render", "welcome", "--channel", "email", env=env)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.count("8 Quai des Fleurs, 69002 Lyon, France"), 2, out)
        self.assertIn("Questions? help@bloom-vine.fr", out)
        self.assertIn('href="mailto:help@bloom-vine.fr"', out)
        # an empty address is refused as well
        open(path, "w").write(src.replace("8 Quai des Fleurs, 69002 Lyon, France", " "))
        code, out, err = run("check", env=dict(env, HERALD_ENV="production"))
        self.assertEqual(code, 1, (out, err))
        self.assertIn("settings.company.address is empty", err)

    def test_render_email_and_sms(self):
        code, out, err = run("render", "budget_summary", "--channel", "email")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("Subject: "), out[:200])
        self.assertIn("----- text/plain -----", out)
        self.assertIn("<html", out)
        code, out, err = run("render", "welcome", "--channel", "sms")
        self.assertEqual(code, 0, err)
        self.assertIn("----- GSM-7, 1 segment -----", out)
        code, out, err = run("render", "welcome", "--channel", "sms", "--json")
        self.assertEqual(code, 0, err)
        self.assertIn('"segments":', out)

    def test_render_errors(self):
        code, _, err = run("render", "welcome", "--channel", "fax")
        self.assertEqual(code, 2)
        self.assertIn("--channel", err)
        code, _, err = run("render")
        self.assertEqual(code, 2)
        code, _, err = run("render", "welcome", "--context", "/nonexistent.json")
        self.assertEqual(code, 1)
        self.assertIn("/nonexistent.json", err)
        code, _, err = run("render", "no_such_type")
        self.assertEqual(code, 1)
        self.assertIn("no_such_type: not a message type declared in scripts/types.lua", err)

    def test_console_from_a_pipe(self):
        code, out, err = run("console", stdin=(
            "explain{message_type='welcome', prefs={email='a@b.c', timezone='Asia/Tokyo'},"
            " now=1795856400}\n"
            "render('welcome', 'sms').encoding\n"
            "decide{message_type='error_notification', prefs={phone='+14155550100'}}"
            ".primary_channel\n"))
        self.assertEqual(code, 0, err)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 3, out)
        self.assertIn("→ sent Mon 09:00", lines[0])
        self.assertEqual(lines[1], '"GSM-7"')
        self.assertEqual(lines[2], '"sms"')

    def test_console_sandbox_and_errors_from_a_pipe(self):
        code, out, err = run("console", stdin="io.open('/etc/passwd')\n")
        self.assertEqual(code, 1)
        self.assertIn("io", err)
        code, out, err = run("console", stdin="while true do end\n")
        self.assertEqual(code, 1)
        self.assertIn("instruction budget exceeded", err)

    def test_console_in_a_terminal(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(SRC)
            os.execve(harness.HERALD_BIN, [harness.HERALD_BIN, "console"], harness.base_env())
        out = b""

        def read_until(marker, timeout=30):
            nonlocal out
            deadline = time.time() + timeout
            while marker not in out and time.time() < deadline:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            return marker in out

        status = None
        try:
            self.assertTrue(read_until(b"> "), out)
            # a statement spread over two lines, then its value
            os.write(fd, b"x = {1,\r")
            self.assertTrue(read_until(b">> "), out)
            os.write(fd, b"2}\r")
            os.write(fd, b"#x * 21\r")
            self.assertTrue(read_until(b"42\r\n> "), out)
            # Ctrl-D at an empty prompt quits. Under load the line editor may
            # still be switching the terminal mode when it arrives, so give it a
            # moment, try twice, and then hang up the terminal (end of input),
            # which must end the console cleanly too.
            time.sleep(0.5)
            status = None
            for attempt in range(3):
                if attempt < 2:
                    os.write(fd, b"\x04")
                else:
                    os.close(fd)
                    fd = None
                deadline = time.time() + (3 if attempt < 2 else 20)
                while status is None and time.time() < deadline:
                    if fd is not None:
                        read_until(b"never", timeout=0.2)
                    else:
                        time.sleep(0.1)
                    done, st = os.waitpid(pid, os.WNOHANG)
                    if done:
                        status = st
                if status is not None:
                    break
        finally:
            if status is None:
                os.kill(pid, 9)
                _, status = os.waitpid(pid, 0)
            if fd is not None:
                os.close(fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)


if __name__ == "__main__":
    unittest.main()
