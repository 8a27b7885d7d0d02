"""The web dashboard (issue 15 item 4) in a real browser: headless Chromium
(Debian's chromium + chromium-driver, driven by python3-selenium) against the
real server, PostgreSQL and Redis. It signs in with an API key, lists the
messages (and filters them), opens one (its reasons, its timeline of attempts
and events, the email as the client saw it in a sandboxed iframe, the SMS
text), draws the delivery funnel from the analytics API, shows the policy's
status and previews a decision. Each page is saved as a screenshot under
build/artifacts/dashboard/ (HERALD_ARTIFACTS_DIR). Skipped, saying so, when
Chromium is not installed (tools/deps.sh installs it)."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import harness

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from selenium.common.exceptions import StaleElementReferenceException
except ImportError:  # pragma: no cover - tools/deps.sh installs python3-selenium
    webdriver = None

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
SID, TOKEN = "AC00000000000000000000000000000000", "test-token"
ARTIFACTS = os.environ.get("HERALD_ARTIFACTS_DIR") or os.path.join(
    os.path.dirname(harness.HERALD_BIN), "artifacts", "dashboard")


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


@unittest.skipUnless(webdriver and CHROMIUM and DRIVER,
                     "chromium, chromium-driver or python3-selenium is not installed")
class DashboardTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-dash-")
        cls.fake, port = harness.start_fake_providers(cls.tmp, hang_seconds=1)
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url,
            "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"),
            "HERALD_RETRY_SCALE": "0.001", "HERALD_ANALYTICS_REFRESH_SECONDS": "1",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006"})
        r = harness.cli("apikey", "create", "--name", "dash-" + uuid.uuid4().hex[:6],
                        "--scopes", "admin,read",
                        env=harness.base_env(HERALD_DATABASE_URL=cls.db_url))
        assert r.code == 0, r
        cls.api_key = r.stdout.splitlines()[0].strip()
        os.makedirs(ARTIFACTS, exist_ok=True)
        opts = Options()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,1000", "--user-data-dir=" + os.path.join(cls.tmp, "chr")):
            opts.add_argument(a)
        cls.browser = webdriver.Chrome(service=Service(DRIVER), options=opts)
        cls.browser.set_page_load_timeout(30)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.browser.quit()
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, True)

    # -- helpers --------------------------------------------------------------

    def client(self, **extra):
        cid = "client-" + uuid.uuid4().hex[:10]
        doc = {"client_id": cid, "name": "Zoë Martin", "email": cid + "@example.com",
               "timezone": "UTC", "consent": {"given": True, "source": "test"}}
        doc.update(extra)
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body=doc)
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, message_type="welcome", **extra):
        body = {"plan_id": "plan-1", "client_id": cid, "message_type": message_type,
                "urgency": "critical"}
        body.update(extra)
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def settle(self, comm_id, timeout=20):
        deadline = time.time() + timeout
        while True:
            r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
            if r.json["status"] in ("sent", "failed", "suppressed") or time.time() > deadline:
                return r.json
            time.sleep(0.05)

    def url(self, path=""):
        return "http://127.0.0.1:%d/dashboard%s" % (self.server.port, path)

    def wait(self, cond, timeout=15):
        # the pages re-render as they poll: an element found a moment ago may
        # be replaced before it is read, so a stale one means "look again"
        return WebDriverWait(self.browser, timeout,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)

    def shot(self, name):
        path = os.path.join(ARTIFACTS, name + ".png")
        self.assertTrue(self.browser.save_screenshot(path), path)
        self.assertGreater(os.path.getsize(path), 5000, path)

    def visible(self, id_):
        return self.wait(EC.visibility_of_element_located((By.ID, id_)))

    # -- the walk -------------------------------------------------------------

    def test_an_operator_signs_in_and_walks_every_page(self):
        b = self.browser
        cid = self.client(phone="+14155550123")
        sent = self.settle(self.send(cid, "vendor_options"))
        self.assertEqual(sent["status"], "sent", sent)
        failed_client = self.client(phone="+14155550001", channels=["sms"])
        failed = self.settle(self.send(failed_client, "welcome"))
        self.assertEqual(failed["status"], "failed", failed)

        # served from the binary, with a policy that runs only its own script
        r = self.server.request("GET", "/dashboard")
        self.assertEqual(r.status, 200)
        self.assertIn("script-src 'self'", r.header("Content-Security-Policy"))
        self.assertEqual(self.server.request("GET", "/dashboard/nope.js").status, 404)

        b.get(self.url())
        self.visible("login")
        self.shot("1-login")
        b.find_element(By.ID, "api-key").send_keys("hk_wrong")
        b.find_element(By.CSS_SELECTOR, "#login-form button").click()
        self.wait(lambda d: "refused" in d.find_element(By.ID, "login-error").text)
        key = b.find_element(By.ID, "api-key")
        key.clear()
        key.send_keys(self.api_key)
        b.find_element(By.CSS_SELECTOR, "#login-form button").click()

        # the messages, newest first, and a filter
        self.visible("messages")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#message-table tbody tr.link")) >= 2)
        rows = b.find_elements(By.CSS_SELECTOR, "#message-table tbody tr.link")
        self.assertEqual(rows[0].get_attribute("data-id"), failed["id"])
        self.shot("2-messages")
        Select(b.find_element(By.ID, "f-status")).select_by_visible_text("failed")
        b.find_element(By.CSS_SELECTOR, "#filters button").click()
        self.wait(lambda d: [r.get_attribute("data-id") for r in d.find_elements(
            By.CSS_SELECTOR, "#message-table tbody tr.link")] == [failed["id"]])

        # the failed one: its timeline says why
        b.find_element(By.CSS_SELECTOR, "#message-table tbody tr.link").click()
        self.visible("detail")
        self.wait(lambda d: int(d.find_element(By.ID, "timeline").get_attribute("data-count") or 0) >= 1)
        timeline = b.find_element(By.ID, "timeline").text
        self.assertIn("21211", timeline)
        self.assertIn("failed", timeline)
        self.assertTrue(b.find_element(By.ID, "detail-reasons").text)
        self.wait(lambda d: "Hi Zoë Martin" in d.find_element(By.ID, "preview-text").text)
        self.shot("3-failed-message")

        # the sent email, as the client saw it, in a sandboxed iframe
        b.get(self.url("#/message/" + sent["id"]))
        self.visible("detail")
        frame = self.wait(EC.visibility_of_element_located((By.ID, "preview-frame")))
        self.assertEqual(frame.get_attribute("sandbox"), "")
        self.assertIn("Subject:", b.find_element(By.ID, "preview-subject").text)
        b.switch_to.frame(frame)
        self.wait(lambda d: "Zoë Martin" in d.find_element(By.TAG_NAME, "body").text)
        b.switch_to.default_content()
        self.shot("4-email-preview")
        b.find_element(By.CSS_SELECTOR, "#preview-tabs button[data-channel='whatsapp']").click()
        self.wait(lambda d: "Hi Zoë Martin" in d.find_element(By.ID, "preview-text").text)

        # the funnel, drawn from the analytics rollups
        b.find_element(By.ID, "nav-funnel").click()
        self.visible("funnel")
        deadline = time.time() + 20
        while int(b.find_element(By.ID, "funnel-chart").get_attribute("data-bars") or 0) < 1:
            self.assertLess(time.time(), deadline, "the funnel never drew a bar")
            time.sleep(1)
            b.find_element(By.CSS_SELECTOR, "#funnel-form button").click()
        painted = b.execute_script(
            "const c = document.getElementById('funnel-chart');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
        self.assertGreater(painted, 1000)
        self.assertIn("email", b.find_element(By.ID, "funnel-table").text)
        self.shot("5-funnel")

        # the policy: status and a decision preview
        b.find_element(By.ID, "nav-policy").click()
        self.visible("policy")
        self.wait(lambda d: "Generation" in d.find_element(By.ID, "policy-status").text)
        self.assertIn("none", b.find_element(By.ID, "policy-status").text)  # no last error
        try:
            self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pv-type option")) >= 5)
        except Exception:
            self.shot("6-policy-failed")
            self.fail("no message types: " + b.find_element(By.ID, "policy-error").text)
        Select(b.find_element(By.ID, "pv-type")).select_by_visible_text("welcome")
        b.find_element(By.CSS_SELECTOR, "#preview-form button").click()
        self.wait(lambda d: d.find_element(By.ID, "pv-explanation").text)
        self.assertIn("Primary channel", b.find_element(By.ID, "pv-result").text)
        self.shot("6-policy")
        prefs = b.find_element(By.ID, "pv-prefs")
        prefs.clear()
        prefs.send_keys("{not json")
        b.find_element(By.CSS_SELECTOR, "#preview-form button").click()
        self.wait(lambda d: "not JSON" in d.find_element(By.ID, "policy-error").text)

        # signing out forgets the token
        b.find_element(By.ID, "logout").click()
        self.visible("login")
        self.assertIsNone(b.execute_script("return sessionStorage.getItem('herald.token')"))

    def test_the_preview_endpoint_answers_precisely(self):
        cid = self.client()
        sent = self.settle(self.send(cid))
        q = "/api/crm/communications/%s/preview" % sent["id"]
        r = self.server.get(q + "?channel=email", headers=auth())
        self.assertEqual(r.status, 200, r)
        self.assertIn("Zoë Martin", r.json["html"])
        self.assertNotIn("/t/c/", r.json["html"])  # no tracking in a preview
        self.assertError(self.server.get(q + "?channel=fax", headers=auth()), 400,
                         "invalid_request")
        self.assertError(self.server.get("/api/crm/communications/%s/preview" % uuid.uuid4(),
                                         headers=auth()), 404, "not_found")
        self.assertUnauthorized(self.server.get(q))
        # an erased client's message has nothing left to render
        admin = {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="admin"))}
        self.assertEqual(self.server.request("DELETE", "/api/crm/clients/" + cid,
                                             headers=admin).status, 200)
        self.assertError(self.server.get(q, headers=auth()), 409, "conflict")


if __name__ == "__main__":
    harness.main()
