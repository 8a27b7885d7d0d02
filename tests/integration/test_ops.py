"""The operations files in ops/ hold together (issue 15, item 6).

- Prometheus: `promtool check rules` and `promtool test rules` (each alert fires
  on the series it watches), `promtool check config`; every query of the Grafana
  dashboard parses as PromQL (checked by promtool as recording rules).
- Every metric an alert or a panel names exists in a real scrape of a running
  server, and the scrape passes `promtool check metrics`; the process_* figures
  are this process's (compared with /proc/<pid> of the server).
- systemd: `systemd-analyze verify` on the unit (with the built binary in place
  of /usr/local/bin/herald), its hardening options, and an exposure level of at
  most 2.0 by `systemd-analyze security --offline`.
- Docker (no engine here; hadolint when installed): the files the Dockerfile
  copies exist, the build stage copies every top-level path CMakeLists.txt
  reads, the runtime stage installs the package of every shared library the
  binary needs (its NEEDED entries, through dpkg), and the compose file's
  services and variables are real ones.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import yaml  # noqa: E402

OPS = os.path.join(harness.SOURCE_DIR, "ops")
ALERTS = os.path.join(OPS, "prometheus", "alerts.yml")
DASHBOARD = os.path.join(OPS, "grafana", "herald-dashboard.json")
UNIT = os.path.join(OPS, "systemd", "herald.service")
DOCKERFILE = os.path.join(OPS, "docker", "Dockerfile")
COMPOSE = os.path.join(OPS, "docker", "compose.yaml")
METRIC = re.compile(r"\b((?:crm|herald|process)_[a-z0-9_]+)")


def run(*args, cwd=None):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def promtool():
    exe = shutil.which("promtool")
    if exe is None:
        raise AssertionError("promtool is not installed (Debian's prometheus; tools/deps.sh)")
    return exe


def alert_rules():
    with open(ALERTS) as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def family(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


class PrometheusFilesTest(harness.HeraldCase):
    def test_alert_rules_check_and_fire(self):
        r = run(promtool(), "check", "rules", ALERTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(promtool(), "test", "rules", "alerts.test.yml",
                cwd=os.path.join(OPS, "prometheus"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)
        r = run(promtool(), "check", "config", os.path.join(OPS, "prometheus", "prometheus.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_alerts_cover_what_the_issue_asks(self):
        exprs = {r["alert"]: r["expr"] for r in alert_rules()}
        needs = {
            "failure rate": r'crm_communications_total\{status="failed"',
            "queue age": r"crm_queue_oldest_due_age_seconds",
            "webhook signature failures": r'crm_api_errors_total\{route=~"/api/crm/webhooks/',
            "policy reload errors": r"crm_script_(failing|reload_errors_total)",
        }
        for what, rx in needs.items():
            self.assertTrue([a for a, e in exprs.items() if re.search(rx, e)],
                            "no alert on %s" % what)
        for r in alert_rules():
            self.assertIn(r["labels"]["severity"], ("critical", "warning", "info"), r["alert"])
            self.assertTrue(r["annotations"]["summary"], r["alert"])

    def test_dashboard_queries_parse(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        self.assertTrue(dash["uid"] and dash["title"])
        names = {v["name"] for v in dash["templating"]["list"]}
        self.assertEqual(names, {"datasource", "job", "instance"})
        exprs = dashboard_exprs()
        self.assertGreater(len(exprs), 20)
        for p in dash["panels"]:  # every panel fits the 24-column grid
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": "dashboard:query_%d" % i,
             "expr": e.replace("$job", "herald").replace("$instance", ".*")}
            for i, e in enumerate(exprs)]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump(rules, f)
            f.flush()
            r = run(promtool(), "check", "rules", f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class LiveMetricsTest(harness.HeraldCase):
    """A real scrape: after a message went out, so labelled series exist."""

    @classmethod
    def setUpClass(cls):
        cls.db_url, cls.drop_db = harness.fresh_database()
        super().setUpClass()
        cls.server = cls.new_server(env={"HERALD_DATABASE_URL": cls.db_url})
        token = harness.make_jwt()
        cls.sent = cls.server.post_json(
            "/api/crm/communications?wait=10",
            {"plan_id": "ops", "client_id": "ops-client", "message_type": "welcome",
             "urgency": "critical", "recipient": {"email": "ops@example.com"}},
            headers={"Authorization": "Bearer " + token})
        cls.scrape = cls.server.get("/metrics").body.decode()
        cls.health = cls.server.get("/api/crm/health", token=token).json

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    def families(self):
        return set(re.findall(r"^# TYPE (\S+) ", self.scrape, re.M))

    def value(self, name):
        m = re.search(r"^%s (\S+)$" % re.escape(name), self.scrape, re.M)
        self.assertIsNotNone(m, "%s not in the scrape" % name)
        return float(m.group(1))

    def test_scrape_passes_promtool(self):
        self.assertEqual(self.sent.status, 202, self.sent)
        self.assertIn('crm_communications_total{channel="email",status="sent",'
                      'message_type="welcome"} 1', self.scrape)
        r = subprocess.run([promtool(), "check", "metrics"], input=self.scrape,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_name_the_ops_files_use_exists(self):
        used = set()
        for e in [r["expr"] for r in alert_rules()] + dashboard_exprs():
            used |= {family(n) for n in METRIC.findall(e)}
        self.assertGreater(len(used), 15)
        missing = sorted(used - self.families())
        self.assertEqual(missing, [], "names the ops files use but /metrics lacks")

    def test_process_figures_are_the_servers(self):
        pid = self.server.proc.pid
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
        threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
        rss = self.value("process_resident_memory_bytes")
        # the scrape came a moment before this read: the same order of size
        self.assertLess(abs(rss - rss_kb * 1024), max(rss, rss_kb * 1024) * 0.5)
        self.assertEqual(self.value("process_threads"), threads)
        fds = len(os.listdir("/proc/%d/fd" % pid))
        self.assertLess(abs(self.value("process_open_fds") - fds), 10)
        self.assertGreater(self.value("process_open_fds"), 5)
        self.assertGreater(self.value("process_cpu_seconds_total"), 0)
        start = self.value("process_start_time_seconds")
        self.assertLess(abs(start - os.stat("/proc/%d" % pid).st_mtime), 120)
        self.assertGreater(self.value("process_max_fds"), 0)
        # the admin health says the same
        p = self.health["process"]
        self.assertEqual(p["threads"], threads)
        self.assertGreater(p["resident_memory_bytes"], 1 << 20)
        q = self.health["queue"]
        self.assertEqual(set(q), {"due", "scheduled", "leased", "oldest_due_age_s"})
        self.assertGreaterEqual(q["oldest_due_age_s"], 0)
        self.assertGreaterEqual(self.value("crm_queue_oldest_due_age_seconds"), 0)


class SystemdUnitTest(harness.HeraldCase):
    def unit(self):
        with open(UNIT) as f:
            text = f.read()
        keys = {}
        for ln in text.splitlines():
            if "=" in ln and not ln.startswith("#"):
                k, _, v = ln.partition("=")
                keys.setdefault(k.strip(), []).append(v.strip())
        return text, keys

    def test_hardening(self):
        _, keys = self.unit()
        want = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                "ProtectHome": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
                "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": ""}
        for k, v in want.items():
            self.assertEqual(keys.get(k), [v], k)
        self.assertEqual(keys["ReadWritePaths"], ["/var/lib/herald"])
        self.assertIn("HERALD_VAR_DIR=/var/lib/herald", keys["Environment"][0])
        self.assertEqual(keys["User"], ["herald"])

    def test_systemd_analyze(self):
        exe = shutil.which("systemd-analyze")
        if exe is None:
            self.skipTest("systemd-analyze is not installed")
        text, _ = self.unit()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "herald.service")
            with open(path, "w") as f:
                f.write(text.replace("/usr/local/bin/herald", harness.HERALD_BIN))
            r = run(exe, "verify", path)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = run(exe, "security", "--offline=yes", "--threshold=20", path)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)


class DockerFilesTest(harness.HeraldCase):
    def stages(self):
        with open(DOCKERFILE) as f:
            text = re.sub(r"\\\n", " ", f.read())
        stages = []
        for ln in text.splitlines():
            ln = ln.strip()
            if not ln or ln.startswith("#"):
                continue
            word, _, rest = ln.partition(" ")
            if word == "FROM":
                stages.append([])
            stages[-1].append((word, rest.strip()))
        return stages

    def apt_packages(self, stage):
        pkgs = set()
        for word, rest in stage:
            if word == "RUN" and "apt-get install" in rest:
                part = rest.split("apt-get install", 1)[1].split("&&")[0]
                pkgs |= {w for w in part.split() if not w.startswith("-")}
        return pkgs

    def test_hadolint_when_installed(self):
        exe = shutil.which("hadolint")
        if exe is None:
            self.skipTest("hadolint is not in Debian 12; the structural checks below run")
        r = run(exe, DOCKERFILE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_dockerfile(self):
        build, final = self.stages()
        for stage in (build, final):
            image = stage[0][1].split()[0]
            self.assertRegex(image, r"^[a-z0-9./-]+:[0-9][\w.-]*", "pinned base image")
        copied = []
        for word, rest in build + final:
            if word == "COPY" and "--from" not in rest:
                srcs = rest.split()[:-1]
                for s in srcs:
                    self.assertTrue(os.path.exists(os.path.join(harness.SOURCE_DIR, s)), s)
                    copied.append(s.rstrip("/"))
        # the build stage has what CMakeLists.txt reads from the source tree
        with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt")) as f:
            cmake = f.read()
        read = set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([A-Za-z_]+)", cmake))
        read |= set(re.findall(r"add_(?:executable|subdirectory)\([^)]*?\b((?:core|tools|tests)\b)",
                               cmake))
        read.discard("core")  # copied whole below
        build_copies = [rest.split()[0].rstrip("/") for w, rest in build if w == "COPY"]
        self.assertIn("core", build_copies)
        for top in read:
            self.assertTrue([c for c in build_copies if c == top or c.startswith(top + "/")],
                            "CMakeLists.txt reads %s/, the build stage does not copy it" % top)
        self.assertTrue(os.path.exists(os.path.join(harness.SOURCE_DIR, "tools", "bench",
                                                    "bench_policy.c")))
        # the build stage installs what tools/deps.sh builds with
        with open(os.path.join(harness.SOURCE_DIR, "tools", "deps.sh")) as f:
            deps = f.read()
        dev = set(re.findall(r"\b(lib[\w.+-]+-dev)\b", deps.split("PACKAGES=(")[1].split(")")[0]))
        self.assertEqual(sorted(dev - self.apt_packages(build)), [])
        # the runtime stage installs the package of every library the binary needs
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]", run("readelf", "-d", harness.HERALD_BIN).stdout)
        # a sanitizer build (CI's second pass) links its runtimes: not the image's
        needed = [n for n in needed if not re.match(r"lib(a|ub|l|t)san\.", n)]
        self.assertGreater(len(needed), 5)
        runtime = self.apt_packages(final)
        for lib in needed:
            owners = run("dpkg", "-S", "*/%s" % lib).stdout.splitlines()
            pkgs = {o.split(":")[0] for o in owners
                    if "i386" not in o and "-dbg" not in o.split(":")[0]}
            self.assertTrue(pkgs, "no package owns %s" % lib)
            if pkgs <= {"libc6"}:
                continue  # in every Debian image
            self.assertTrue(pkgs & runtime, "%s (from %s) is not installed by the runtime stage"
                            % (lib, sorted(pkgs)))
        self.assertIn("tzdata", runtime)  # core/base/tz.c reads /usr/share/zoneinfo
        words = [w for w, _ in final]
        self.assertIn("USER", words)
        self.assertNotEqual(dict(final)["USER"], "root")
        self.assertIn("HEALTHCHECK", words)
        entry = json.loads(dict(final)["ENTRYPOINT"])
        dest = [rest.split()[-1] for w, rest in final if w == "COPY" and "--from" in rest]
        self.assertEqual(entry[0], dest[0])

    def config_variables(self):
        names = set()
        with open(os.path.join(harness.SOURCE_DIR, "config.lua")) as f:
            names |= set(re.findall(r'env\("(HERALD_[A-Z0-9_]+)"', f.read()))
        for root, _, files in os.walk(os.path.join(harness.SOURCE_DIR, "core")):
            for n in files:
                with open(os.path.join(root, n)) as f:
                    names |= set(re.findall(r'"(HERALD_[A-Z0-9_]+)"', f.read()))
        return names

    def test_compose(self):
        with open(COMPOSE) as f:
            doc = yaml.safe_load(f)
        services = doc["services"]
        for name in ("herald", "postgres", "redis", "mailpit"):
            self.assertIn(name, services)
        known = self.config_variables()
        self.assertIn("HERALD_SMTP_URL", known)
        for name, svc in services.items():
            image = svc.get("image", "")
            self.assertFalse(image.endswith(":latest") or (image and ":" not in image), name)
            for dep in svc.get("depends_on", {}):
                self.assertIn(dep, services, "%s depends on %s" % (name, dep))
            if "build" in svc:
                ctx = os.path.normpath(os.path.join(os.path.dirname(COMPOSE),
                                                    svc["build"]["context"]))
                self.assertEqual(ctx, harness.SOURCE_DIR)
                self.assertTrue(os.path.exists(os.path.join(ctx, svc["build"]["dockerfile"])))
            for var in svc.get("environment", {}) if name in ("herald", "migrate") else ():
                self.assertIn(var, known, "%s: %s is read by nothing" % (name, var))
        env = services["herald"]["environment"]
        hosts = {k: re.match(r"\w+://(?:[^@/]*@)?([\w.-]+)", env[k]).group(1)
                 for k in ("HERALD_DATABASE_URL", "HERALD_REDIS_URL", "HERALD_SMTP_URL")}
        self.assertEqual(hosts, {"HERALD_DATABASE_URL": "postgres", "HERALD_REDIS_URL": "redis",
                                 "HERALD_SMTP_URL": "mailpit"})
        self.assertEqual(env["HERALD_EMAIL_DRIVER"], "smtp")
        self.assertEqual(services["migrate"]["command"], ["migrate"])
        self.assertEqual(services["herald"]["depends_on"]["migrate"]["condition"],
                         "service_completed_successfully")


if __name__ == "__main__":
    harness.main()
