"""A policy script that runs away cannot hold the engine. strategy.decide,
edited live to loop inside pcall (which once caught the instruction budget's
error and looped for ever), makes POST /api/crm/communications answer 422
policy_error within a second, every time; health keeps answering; and SIGTERM
stops the server promptly (no thread is left inside Lua)."""
import os
import shutil
import tempfile
import time
import unittest
import uuid

import harness

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())


def auth(scope):
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope=scope))}


class RunawayScriptTest(harness.HeraldCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="herald-budget-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.scripts = os.path.join(self.dir, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), self.scripts)
        # Its own database: the workers of this server must not claim (and
        # stall on) other tests' jobs while its policy is broken.
        db_url, drop_db = harness.fresh_database()
        self.addCleanup(drop_db)
        self.server = self.new_server(env={"HERALD_DATABASE_URL": db_url,
                                           "HERALD_SCRIPTS_DIR": self.scripts,
                                           "HERALD_OUTBOX_DIR": os.path.join(self.dir, "out")})

    def generation(self):
        return self.server.get("/api/crm/health").json["scripts"]["generation"]

    def send(self):
        body = {"plan_id": "p", "client_id": "client-" + uuid.uuid4().hex[:12],
                "message_type": "welcome", "urgency": "normal",
                "recipient": {"email": "zoe@example.com"}}
        t0 = time.time()
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth("send read"), timeout=5)
        return r, time.time() - t0

    def test_a_decide_that_loops_inside_pcall_is_a_prompt_422(self):
        preview = self.server.request("POST", "/api/crm/strategy/preview",
                                      json_body={"message_type": "welcome"},
                                      headers=auth("read"))
        self.assertEqual(preview.status, 200, preview)
        gen = self.generation()

        strategy = os.path.join(self.scripts, "strategy.lua")
        with open(strategy) as f:
            text = f.read()
        edited = text.replace("function strategy.decide(", "function strategy.decide(...)\n"
                              "  while true do pcall(function() while true do end end) end\n"
                              "end\nfunction strategy._unused(", 1)
        self.assertNotEqual(edited, text, "strategy.lua layout changed; update the test")
        with open(strategy + ".tmp~", "w") as f:
            f.write(edited)
        os.replace(strategy + ".tmp~", strategy)
        deadline = time.time() + 5
        while self.generation() == gen:
            self.assertLess(time.time(), deadline, "the edit was not loaded")
            time.sleep(0.05)

        # More requests than HTTP threads (http.threads, 16): each thread
        # trips, drops its state and builds a fresh one for the next request.
        for _ in range(20):
            r, took = self.send()
            self.assertError(r, 422, "policy_error")
            message = r.json["error"]["message"]
            self.assertIn("strategy.lua:", message)
            self.assertTrue("instruction budget exceeded" in message
                            or "deadline of 50 ms exceeded" in message, message)
            self.assertLess(took, 1.0, "answered after %.2f s" % took)
            t0 = time.time()
            h = self.server.get("/api/crm/health", timeout=5)
            self.assertEqual(h.status, 200, h)
            self.assertLess(time.time() - t0, 1.0)

        t0 = time.time()
        code = self.server.stop(timeout=10)
        took = time.time() - t0
        self.assertEqual(code, 0, "herald serve did not exit cleanly after SIGTERM")
        self.assertLess(took, 5.0, "SIGTERM took %.1f s" % took)


if __name__ == "__main__":
    unittest.main()
