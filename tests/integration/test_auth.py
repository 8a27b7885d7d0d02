"""Authentication: API key exchange, refresh rotation and reuse detection,
revocation, scopes, and every rejected-token case of the HS256 verifier."""

import hashlib
import json
import subprocess
import threading
import time

import harness
from harness import HeraldCase, b64url, claims, make_jwt, segment, sign

ME = "/api/crm/auth/me"
TOKEN = "/api/crm/auth/token"
REFRESH = "/api/crm/auth/refresh"
APIKEYS = "/api/crm/apikeys"


class AuthCase(HeraldCase):
    start_server = True

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()

    def exchange(self, key):
        return self.server.post_json(TOKEN, {"api_key": key})

    def refresh(self, refresh_token):
        return self.server.post_json(REFRESH, {"refresh_token": refresh_token})

    def me(self, token):
        return self.server.get(ME, token=token)


class TokenExchangeTest(AuthCase):

    def test_exchange_gives_a_working_access_token(self):
        name, key = harness.create_api_key("send,read,admin")
        r = self.exchange(key)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0], "application/json")
        doc = r.json
        self.assertEqual(doc["token_type"], "Bearer")
        self.assertEqual(doc["expires_in"], 3600)
        self.assertEqual(doc["scope"], "send read admin")
        self.assertIsInstance(doc["refresh_token"], str)
        self.assertGreaterEqual(len(doc["refresh_token"]), 32)
        self.assertIsInstance(doc["refresh_expires_in"], int)
        self.assertGreater(doc["refresh_expires_in"], 3600)
        self.assertEqual(r.header("Cache-Control"), "no-store")

        hdr, payload, _ = harness.jwt_parts(doc["access_token"])
        self.assertEqual(hdr["alg"], "HS256")
        self.assertEqual(payload["iss"], "herald")
        self.assertEqual(payload["aud"], "herald-api")
        self.assertEqual(payload["sub"], "apikey:" + name)
        self.assertEqual(payload["exp"] - payload["iat"], 3600)
        self.assertLessEqual(abs(payload["iat"] - time.time()), 30)
        self.assertTrue(payload.get("jti"))
        # signed with the configured secret
        h, p, s = doc["access_token"].split(".")
        self.assertEqual(sign(h + "." + p), s)

        me = self.me(doc["access_token"])
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json["sub"], "apikey:" + name)
        self.assertEqual(set(me.json["scope"].split()), {"send", "read", "admin"})
        self.assertEqual(me.json["exp"], payload["exp"])
        self.assertEqual(me.json["jti"], payload["jti"])

    def test_scopes_of_the_key_are_the_scopes_of_the_token(self):
        name, key = harness.create_api_key("send,read")
        r = self.exchange(key)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json["scope"].split()), {"send", "read"})
        me = self.me(r.json["access_token"])
        self.assertEqual(me.status, 200, me)
        self.assertEqual(set(me.json["scope"].split()), {"send", "read"})

    def test_two_exchanges_give_distinct_tokens(self):
        _, key = harness.create_api_key("read")
        a, b = self.exchange(key), self.exchange(key)
        self.assertEqual((a.status, b.status), (200, 200))
        self.assertNotEqual(a.json["refresh_token"], b.json["refresh_token"])
        self.assertNotEqual(harness.jwt_parts(a.json["access_token"])[1]["jti"],
                            harness.jwt_parts(b.json["access_token"])[1]["jti"])

    def test_bad_api_keys_are_401(self):
        _, key = harness.create_api_key("read")
        prefix_part = key[:key.rindex("_") + 1]
        wrong_secret = prefix_part + ("A" if key[-1] != "A" else "B") * (len(key) - len(prefix_part))
        cases = {
            "wrong secret for a real prefix": wrong_secret,
            "last char changed": key[:-1] + ("x" if key[-1] != "x" else "y"),
            "truncated": key[:-1],
            "extended": key + "x",
            "no hk_ prefix": key[3:],
            "unknown well-formed": "hk_000000000000_" + "A" * 43,
            "garbage": "not-a-key",
            "just the prefix": "hk_",
            "whitespace around": " " + key + " ",
            "very long": "hk_" + "a" * 5000,
            "sql-ish": "hk_' OR '1'='1_" + "x" * 30,
        }
        for what, bad in cases.items():
            with self.subTest(what=what):
                r = self.exchange(bad)
                err = self.assertError(r, 401, "unauthorized")
                self.assertNotIn(key, r.body.decode("utf-8", "replace"))
                self.assertIsInstance(err["message"], str)
        # the real key still works: the rejections above are about the input
        self.assertEqual(self.exchange(key).status, 200)

    def test_missing_or_mistyped_field_is_400(self):
        cases = {"missing": {}, "other field": {"key": "hk_x"}, "null": {"api_key": None},
                 "number": {"api_key": 42}, "array": {"api_key": ["hk_x"]},
                 "empty": {"api_key": ""}}
        for what, doc in cases.items():
            with self.subTest(what=what):
                self.assertError(self.exchange_doc(doc), 400)

    def exchange_doc(self, doc):
        return self.server.post_json(TOKEN, doc)

    def test_herald_token_cli_output_is_accepted(self):
        r = harness.cli("token", "--sub", "ops-tool", "--scopes", "send,read", "--ttl", "60")
        self.assertEqual(r.code, 0, r)
        tok = r.stdout.strip()
        self.assertEqual(tok.count("."), 2, r)
        me = self.me(tok)
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json["sub"], "ops-tool")
        self.assertEqual(set(me.json["scope"].split()), {"send", "read"})
        self.assertLessEqual(abs(me.json["exp"] - (time.time() + 60)), 10)
        # and its scopes are enforced: no admin
        self.assertError(self.server.get(APIKEYS, token=tok), 403, "forbidden")

    def test_herald_token_signed_with_another_secret_is_rejected(self):
        env = harness.base_env(HERALD_JWT_SECRET="another-secret-of-at-least-32-bytes-long!")
        r = harness.cli("token", "--sub", "ops-tool", "--scopes", "admin", env=env)
        self.assertEqual(r.code, 0, r)
        self.assertUnauthorized(self.me(r.stdout.strip()))


class RefreshTest(AuthCase):

    def test_refresh_rotates_and_reuse_revokes_the_family(self):
        name, key = harness.create_api_key("send,read")
        first = self.exchange(key)
        self.assertEqual(first.status, 200, first)
        r1 = first.json["refresh_token"]

        second = self.refresh(r1)
        self.assertEqual(second.status, 200, second)
        r2 = second.json["refresh_token"]
        self.assertNotEqual(r2, r1, "refresh must rotate the refresh token")
        self.assertEqual(second.json["token_type"], "Bearer")
        self.assertEqual(second.json["expires_in"], 3600)
        self.assertEqual(set(second.json["scope"].split()), {"send", "read"})
        self.assertIn("refresh_expires_in", second.json)
        me = self.me(second.json["access_token"])
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json["sub"], "apikey:" + name)

        # the spent token presented again: reuse detected
        reuse = self.refresh(r1)
        self.assertError(reuse, 401, "refresh_token_reused")
        # ... and the newest token of the family is dead too
        after = self.refresh(r2)
        self.assertError(after, 401)
        self.assertNotEqual(after.status, 200)
        # while an independent login of the same key is unaffected
        other = self.exchange(key)
        self.assertEqual(other.status, 200, other)
        self.assertEqual(self.refresh(other.json["refresh_token"]).status, 200)

    def test_rotation_chain_each_token_single_use(self):
        _, key = harness.create_api_key("read")
        tok = self.exchange(key).json["refresh_token"]
        seen = {tok}
        for _ in range(3):
            r = self.refresh(tok)
            self.assertEqual(r.status, 200, r)
            tok = r.json["refresh_token"]
            self.assertNotIn(tok, seen)
            seen.add(tok)
        self.assertEqual(len(seen), 4)
        # the newest one is still good, exactly once more
        last = self.refresh(tok)
        self.assertEqual(last.status, 200, last)
        self.assertError(self.refresh(tok), 401, "refresh_token_reused")

    def test_reuse_of_an_older_token_revokes_newest(self):
        _, key = harness.create_api_key("read")
        r1 = self.exchange(key).json["refresh_token"]
        r2 = self.refresh(r1).json["refresh_token"]
        r3 = self.refresh(r2).json["refresh_token"]
        self.assertError(self.refresh(r1), 401, "refresh_token_reused")
        self.assertError(self.refresh(r3), 401)

    def test_concurrent_refreshes_of_one_token_let_exactly_one_win(self):
        _, key = harness.create_api_key("read")
        tok = self.exchange(key).json["refresh_token"]
        results = []
        barrier = threading.Barrier(4)

        def worker():
            barrier.wait()
            results.append(self.refresh(tok))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 4)
        winners = [r for r in results if r.status == 200]
        self.assertEqual(len(winners), 1, [(r.status, r.body) for r in results])
        for r in results:
            if r.status != 200:
                self.assertError(r, 401, "refresh_token_reused")
        # the losers' reuse revoked the family, the winner's new token included
        self.assertError(self.refresh(winners[0].json["refresh_token"]), 401)

    def test_unknown_refresh_token_is_401(self):
        for bad in ["nope", "A" * 43, b64url(b"\0" * 32)]:
            with self.subTest(token=bad):
                self.assertError(self.refresh(bad), 401, "unauthorized")

    def test_access_token_is_not_a_refresh_token(self):
        _, key = harness.create_api_key("read")
        r = self.exchange(key)
        self.assertError(self.refresh(r.json["access_token"]), 401)

    def test_missing_refresh_token_field_is_400(self):
        for doc in [{}, {"refresh_token": None}, {"refresh_token": 1}, {"refresh_token": ""}]:
            with self.subTest(doc=doc):
                self.assertError(self.server.post_json(REFRESH, doc), 400)

    def test_revoked_key_cannot_exchange_or_refresh(self):
        name, key = harness.create_api_key("send")
        t = self.exchange(key)
        self.assertEqual(t.status, 200, t)
        rt = t.json["refresh_token"]

        r = harness.cli("apikey", "revoke", name)
        self.assertEqual(r.code, 0, r)
        self.assertIn(name, r.stdout)

        self.assertError(self.exchange(key), 401, "unauthorized")
        self.assertError(self.refresh(rt), 401)
        # revoking again: nothing active by that name
        again = harness.cli("apikey", "revoke", name)
        self.assertEqual(again.code, 1, again)
        # the list shows it revoked
        lst = harness.cli("apikey", "list", "--json")
        self.assertEqual(lst.code, 0, lst)
        mine = [k for k in json.loads(lst.stdout) if k["name"] == name]
        self.assertEqual(len(mine), 1, lst.stdout[:500])
        self.assertIsNotNone(mine[0]["revoked_at"])


class ScopeTest(AuthCase):

    def test_send_only_token_is_forbidden_on_apikeys(self):
        _, key = harness.create_api_key("send")
        tok = self.exchange(key).json["access_token"]
        r = self.server.get(APIKEYS, token=tok)
        self.assertError(r, 403, "forbidden")
        # authenticated fine elsewhere
        self.assertEqual(self.me(tok).status, 200)

    def test_read_send_token_is_forbidden_on_apikeys(self):
        tok = make_jwt(claims(scope="send read"))
        self.assertError(self.server.get(APIKEYS, token=tok), 403, "forbidden")

    def test_unknown_scope_grants_nothing(self):
        tok = make_jwt(claims(scope="superuser"))
        r = self.server.get(APIKEYS, token=tok)
        self.assertIn(r.status, (401, 403), r)
        self.assertError(r, r.status)

    def test_admin_lists_keys_without_secrets(self):
        name, key = harness.create_api_key("admin")
        sname, skey = harness.create_api_key("send")
        tok = self.exchange(key).json["access_token"]
        r = self.server.get(APIKEYS, token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0], "application/json")
        keys = r.json["api_keys"]
        self.assertIsInstance(keys, list)
        by_name = {k["name"]: k for k in keys}
        self.assertIn(name, by_name)
        self.assertIn(sname, by_name)
        self.assertEqual(by_name[sname]["scopes"], ["send"])
        self.assertTrue(key.startswith("hk_" + by_name[name]["prefix"]))
        self.assertIsNone(by_name[name]["revoked_at"])
        text = r.body.decode()
        for k, secret in [(name, key), (sname, skey)]:
            self.assertNotIn(secret, text)
            # the secret part is what follows "hk_<prefix>_" (it may itself hold
            # "_", base64url, so not whatever follows the last one)
            tail = secret[len("hk_" + by_name[k]["prefix"] + "_"):]
            self.assertGreater(len(tail), 16, secret)
            self.assertNotIn(tail, text)
            self.assertNotIn(hashlib.sha256(secret.encode()).hexdigest(), text)
        for entry in keys:
            for field in entry:
                self.assertNotIn("secret", field.lower(), entry)
                self.assertNotIn("hash", field.lower(), entry)
                self.assertNotIn(field.lower(), ("key", "api_key"), entry)


class RejectedTokenTest(AuthCase):
    """Each case over HTTP against /api/crm/auth/me: 401, JSON error,
    WWW-Authenticate. The valid-token tests make the rejections meaningful."""

    def assertRejected(self, token=None, header=None, what=None):
        headers = {}
        if header is not None:
            headers["Authorization"] = header
        elif token is not None:
            headers["Authorization"] = "Bearer " + token
        r = self.server.get(ME, headers=headers)
        self.assertUnauthorized(r, what)
        self.assertNotIn("sub", r.json or {}, what)

    def assertAccepted(self, token, what=None):
        r = self.me(token)
        self.assertEqual(r.status, 200, "%s: %r" % (what, r))
        return r.json

    def test_valid_python_minted_token_is_accepted(self):
        c = claims(sub="python:valid", scope="read")
        doc = self.assertAccepted(make_jwt(c))
        self.assertEqual(doc["sub"], "python:valid")
        self.assertEqual(doc["scope"], "read")
        self.assertEqual(doc["jti"], c["jti"])
        self.assertEqual(doc["exp"], c["exp"])

    def test_alg_none_in_any_case(self):
        for alg in ["none", "None", "NONE", "nOnE"]:
            with self.subTest(alg=alg):
                tok = make_jwt(claims(), header={"alg": alg, "typ": "JWT"}, signature="")
                self.assertTrue(tok.endswith("."))
                self.assertRejected(tok, what="alg %s" % alg)
                # and with a signature that would be valid for HS256
                h = segment({"alg": alg, "typ": "JWT"}) + "." + segment(claims())
                self.assertRejected(h + "." + sign(h), what="alg %s + HS256 MAC" % alg)

    def test_other_algorithms(self):
        c = claims()
        hs512 = make_jwt(c, header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512)
        self.assertRejected(hs512, what="HS512")
        hs384 = make_jwt(c, header={"alg": "HS384", "typ": "JWT"}, digest=hashlib.sha384)
        self.assertRejected(hs384, what="HS384")
        # RS256 header carrying an HMAC-SHA256 made with the secret: the
        # classic key-confusion forgery; only a pinned HS256 refuses it.
        self.assertRejected(make_jwt(c, header={"alg": "RS256", "typ": "JWT"}), what="RS256")
        self.assertRejected(make_jwt(c, header={"alg": "hs256", "typ": "JWT"}), what="hs256")

    def test_critical_header_extension(self):
        self.assertRejected(make_jwt(claims(), header={"alg": "HS256", "typ": "JWT",
                                                       "crit": ["exp"], "exp": 1}),
                            what="crit")

    def test_duplicate_members_cannot_smuggle_values(self):
        # RFC 7515/7519: duplicate names are rejected, or the last one wins.
        # Either way these must fail; a first-one-wins parser accepts them.
        now = int(time.time())
        good = claims()
        body = json.dumps(good, separators=(",", ":"))[:-1] + ',"exp":%d}' % (now - 3600)
        self.assertRejected(make_jwt(body), what="exp valid first, expired last")
        hdr = '{"alg":"HS256","typ":"JWT","alg":"none"}'
        self.assertRejected(make_jwt(claims(), header=hdr), what="alg HS256 first, none last")

    def test_header_without_alg(self):
        self.assertRejected(make_jwt(claims(), header={"typ": "JWT"}), what="no alg")
        self.assertRejected(make_jwt(claims(), header={"alg": None, "typ": "JWT"}),
                            what="alg null")

    def test_bad_signature(self):
        tok = make_jwt(claims())
        self.assertAccepted(tok)
        h, p, s = tok.split(".")
        mid = len(s) // 2
        flipped = s[:mid] + ("A" if s[mid] != "A" else "B") + s[mid + 1:]
        self.assertRejected(h + "." + p + "." + flipped, what="flipped signature char")
        self.assertRejected(make_jwt(claims(), key=b"x" * 40), what="other key")
        self.assertRejected(h + "." + p + "." + s[:-4], what="short signature")
        self.assertRejected(h + "." + p + "." + s + b64url(b"\0"), what="long signature")
        self.assertRejected(h + "." + p + "." + b64url(b"\0" * 32), what="zero signature")

    def test_tampered_payload_with_the_original_signature(self):
        c = claims(scope="read", sub="python:tamper")
        tok = make_jwt(c)
        self.assertAccepted(tok)
        h, _, s = tok.split(".")
        forged = dict(c, scope="send read admin")
        self.assertRejected(h + "." + segment(forged) + "." + s, what="scope raised")
        forged = dict(c, exp=c["exp"] + 86400)
        self.assertRejected(h + "." + segment(forged) + "." + s, what="exp extended")

    def test_missing_exp(self):
        self.assertRejected(make_jwt(claims(exp=None)), what="no exp")

    def test_missing_sub_or_scope(self):
        self.assertRejected(make_jwt(claims(sub=None)), what="no sub")
        self.assertRejected(make_jwt(claims(scope=None)), what="no scope")

    def test_non_numeric_exp(self):
        self.assertRejected(make_jwt(claims(exp=str(int(time.time()) + 300))),
                            what="exp as string")

    def test_expiry_leeway_is_60_seconds(self):
        now = int(time.time())
        self.assertRejected(make_jwt(claims(iat=now - 600, exp=now - 120)), what="exp -120 s")
        self.assertAccepted(make_jwt(claims(iat=now - 600, exp=now - 30)), what="exp -30 s")

    def test_future_nbf(self):
        now = int(time.time())
        self.assertRejected(make_jwt(claims(nbf=now + 300)), what="nbf +300 s")
        self.assertAccepted(make_jwt(claims(nbf=now - 10)), what="nbf -10 s")

    def test_wrong_issuer_or_audience(self):
        self.assertRejected(make_jwt(claims(iss="someone-else")), what="wrong iss")
        self.assertRejected(make_jwt(claims(iss=None)), what="no iss")
        self.assertRejected(make_jwt(claims(aud="other-api")), what="wrong aud")
        self.assertRejected(make_jwt(claims(aud=None)), what="no aud")
        self.assertRejected(make_jwt(claims(aud=["other-api"])), what="aud list without us")

    def test_malformed_tokens(self):
        tok = make_jwt(claims())
        self.assertAccepted(tok)
        h, p, s = tok.split(".")
        # a payload segment with a character outside the base64url alphabet;
        # the MAC is computed over the exact bytes so only decoding can refuse it
        bad_p = p[:10] + "*" + p[11:]
        plus_p = p[:10] + "+" + p[11:]
        cases = {
            "two segments": h + "." + p,
            "four segments": tok + "." + s,
            "bad base64url char": h + "." + bad_p + "." + sign(h + "." + bad_p),
            "standard base64 char": h + "." + plus_p + "." + sign(h + "." + plus_p),
            "padding": h + "." + p + "==" + "." + sign(h + "." + p + "=="),
            "empty": "",
            "dots only": "..",
            "empty header": "." + p + "." + s,
            "empty payload": h + ".." + sign(h + "."),
            "payload not JSON": h + "." + b64url(b"not json") + "." +
                                sign(h + "." + b64url(b"not json")),
            "payload a JSON array": h + "." + b64url(b"[1]") + "." +
                                    sign(h + "." + b64url(b"[1]")),
            "header not JSON": b64url(b"xx") + "." + p + "." + sign(b64url(b"xx") + "." + p),
            "spaces inside": h + ". " + p + "." + s,
        }
        for what, bad in cases.items():
            with self.subTest(what=what):
                self.assertRejected(bad, what=what)

    def test_no_or_wrong_authorization_header(self):
        tok = make_jwt(claims())
        self.assertRejected(what="no Authorization header")
        self.assertRejected(header="Basic dXNlcjpwYXNzd29yZA==", what="Basic scheme")
        self.assertRejected(header="Basic " + tok, what="Basic with a JWT")
        self.assertRejected(header="Bearer", what="Bearer without token")
        self.assertRejected(header="Bearer ", what="Bearer and a space")
        self.assertRejected(header=tok, what="token without scheme")
        self.assertRejected(header="Token " + tok, what="Token scheme")


OTHER_SECRET = "another-secret-of-at-least-32-bytes-long!"


def kid_of(secret):
    """The key id Herald gives a JWT secret: SHA-256("herald-jwt-kid" || secret)[:4], hex."""
    if isinstance(secret, str):
        secret = secret.encode()
    return hashlib.sha256(b"herald-jwt-kid" + secret).digest()[:4].hex()


class SigningKeyRotationTest(AuthCase):
    """Issue 17, item 14: tokens name their signing key (kid); older keys in
    HERALD_JWT_OLD_SECRETS still verify, so a rotation logs nobody out."""

    def test_tokens_carry_the_kid_of_the_signing_key(self):
        _, key = harness.create_api_key("read")
        tok = self.exchange(key).json["access_token"]
        hdr, _, _ = harness.jwt_parts(tok)
        self.assertEqual(hdr, {"alg": "HS256", "typ": "JWT", "kid": kid_of(harness.JWT_SECRET)})
        r = harness.cli("token", "--sub", "ops", "--scopes", "read")
        self.assertEqual(harness.jwt_parts(r.stdout.strip())[0]["kid"],
                         kid_of(harness.JWT_SECRET), r)

    def test_rotated_server_accepts_old_tokens_while_the_old_key_is_configured(self):
        _, key = harness.create_api_key("read,admin")
        old_tok = self.exchange(key).json["access_token"]
        rotated = self.new_server(env={"HERALD_JWT_SECRET": OTHER_SECRET,
                                       "HERALD_JWT_OLD_SECRETS": harness.JWT_SECRET.decode()})
        me = rotated.get(ME, token=old_tok)
        self.assertEqual(me.status, 200, me)
        # what it issues now is signed by the new key and names it
        new_tok = rotated.post_json(TOKEN, {"api_key": key}).json["access_token"]
        self.assertEqual(harness.jwt_parts(new_tok)[0]["kid"], kid_of(OTHER_SECRET))
        self.assertEqual(rotated.get(ME, token=new_tok).status, 200)
        # a token from before key ids (no kid) under the old key still works
        legacy = make_jwt(claims(scope="read"))
        self.assertNotIn("kid", harness.jwt_parts(legacy)[0])
        self.assertEqual(rotated.get(ME, token=legacy).status, 200)
        # the old key removed: its tokens are refused (unknown kid), the new ones kept
        pruned = self.new_server(env={"HERALD_JWT_SECRET": OTHER_SECRET})
        self.assertUnauthorized(pruned.get(ME, token=old_tok))
        self.assertIn("unknown key id", pruned.get(ME, token=old_tok).json["error"]["message"])
        self.assertUnauthorized(pruned.get(ME, token=legacy))
        self.assertEqual(pruned.get(ME, token=new_tok).status, 200)

    def test_unknown_or_relabelled_kid_is_401(self):
        good = make_jwt(claims(scope="read"), header={"alg": "HS256", "typ": "JWT",
                                                      "kid": kid_of(harness.JWT_SECRET)})
        self.assertEqual(self.me(good).status, 200)
        unknown = make_jwt(claims(scope="read"), header={"alg": "HS256", "kid": "deadbeef"})
        self.assertUnauthorized(self.me(unknown))
        self.assertIn("unknown key id", self.me(unknown).json["error"]["message"])
        for bad in (7, "", "a b", ["x"]):
            with self.subTest(kid=bad):
                self.assertUnauthorized(self.me(make_jwt(claims(scope="read"),
                                                         header={"alg": "HS256", "kid": bad})))

    def test_bad_old_secrets_are_refused_at_start(self):
        for value, want in (("short", "expected 32 to 128 bytes"),
                            (",".join([OTHER_SECRET + str(i) for i in range(9)]), "at most 8")):
            with self.subTest(value=value[:20]):
                env = harness.base_env(HERALD_JWT_OLD_SECRETS=value)
                r = harness.cli("token", "--sub", "x", "--scopes", "read", env=env)
                self.assertEqual(r.code, 1, r)
                self.assertIn("HERALD_JWT_OLD_SECRETS", r.stderr)
                self.assertIn(want, r.stderr)


class RevocationTest(AuthCase):
    """Issue 17, item 14: an access token's jti can be revoked (CLI and admin
    API); the deny list is in Redis, PostgreSQL keeps the durable record."""

    start_server = False

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()
        cls.redis = harness.PrivateRedis().start()
        cls.server = cls.new_server(redis=cls.redis.url)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.cleanup()

    def token(self, scopes="read"):
        _, key = harness.create_api_key(scopes)
        return self.exchange(key).json["access_token"]

    def cli_env(self):
        return harness.base_env(HERALD_REDIS_URL=self.redis.url)

    def revoke(self, arg, *flags):
        return harness.cli("token", "revoke", arg, *flags, env=self.cli_env())

    def restart_redis(self):
        port = self.redis.port
        self.redis.kill()
        self.redis = type(self).redis = harness.PrivateRedis(port=port).start()

    def test_cli_revoke_is_401_at_once_and_after_a_redis_restart(self):
        tok, other = self.token(), self.token()
        jti, exp = harness.jwt_parts(tok)[1]["jti"], harness.jwt_parts(tok)[1]["exp"]
        self.assertEqual(self.me(tok).status, 200)
        r = self.revoke(jti, "--expires-at", exp)
        self.assertEqual(r.code, 0, r)
        self.assertUnauthorized(self.me(tok))
        self.assertIn("revoked", self.me(tok).json["error"]["message"])
        self.assertEqual(self.me(other).status, 200)
        # Redis restarts empty: the deny list is reloaded from PostgreSQL
        t0 = int(time.time())
        self.restart_redis()
        self.assertUnauthorized(self.me(tok))
        self.assertEqual(self.me(other).status, 200)
        # ... and Redis holds it again, for the token's remaining life (+ the leeway)
        ttl = int(subprocess.run(["redis-cli", "-p", str(self.redis.port), "TTL",
                                  "herald:deny:v1:jti:" + jti],
                                 capture_output=True, text=True).stdout.strip() or -2)
        self.assertGreater(ttl, exp + 60 - time.time() - 30)
        self.assertLessEqual(ttl, exp + 60 - t0)
        rows = int(subprocess.run(["psql", "-X", "-A", "-t", "-d", harness.database_url(), "-c",
                                   "SELECT count(*) FROM crm_audit_log WHERE action = "
                                   "'token.revoke' AND target = 'jti:%s'" % jti],
                                  capture_output=True, text=True).stdout.strip())
        self.assertEqual(rows, 1)

    def test_revoked_while_redis_is_down_is_refused_from_postgresql(self):
        tok, other = self.token(), self.token()
        self.redis.kill()
        try:
            r = self.revoke(tok)  # the whole token: its jti and exp are read from it
            self.assertEqual(r.code, 1, r)
            self.assertIn("PostgreSQL", r.stderr)
            self.assertUnauthorized(self.me(tok))
            self.assertEqual(self.me(other).status, 200)
        finally:
            self.restart_redis()
        # Redis back, empty: the revocation made while it was down holds
        self.assertUnauthorized(self.me(tok))
        self.assertEqual(self.me(other).status, 200)

    def test_admin_api_revokes(self):
        admin, tok = self.token("admin"), self.token("read")
        jti = harness.jwt_parts(tok)[1]["jti"]
        r = self.server.post_json("/api/crm/auth/revoke", {"jti": jti},
                                  headers={"Authorization": "Bearer " + tok})
        self.assertEqual(r.status, 403, r)  # needs admin
        r = self.server.post_json("/api/crm/auth/revoke", {"jti": jti},
                                  headers={"Authorization": "Bearer " + admin})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["jti"], r.json["revoked"]), (jti, True))
        self.assertUnauthorized(self.me(tok))
        for body, what in (({}, "jti"), ({"jti": ""}, "jti"), ({"jti": "a b"}, "jti"),
                           ({"jti": "x" * 64}, "jti"), ({"jti": jti, "expires_at": 1.5},
                                                        "expires_at"),
                           ({"jti": jti, "expires_at": 10 ** 20}, "expires_at")):
            with self.subTest(body=body):
                r = self.server.post_json("/api/crm/auth/revoke", body,
                                          headers={"Authorization": "Bearer " + admin})
                self.assertEqual(r.status, 400, r)
                self.assertIn(what, r.json["error"]["message"])

    def test_cli_usage(self):
        r = harness.cli("token", "revoke", "--help")
        self.assertEqual(r.code, 0, r)
        self.assertIn("usage: herald token revoke", r.stdout)
        self.assertEqual(harness.cli("token", "revoke").code, 2)
        self.assertEqual(harness.cli("token", "revoke", "a b").code, 2)
        self.assertEqual(harness.cli("token", "revoke", "j", "--expires-at", "soon").code, 2)
        # a forged token is not taken at its word
        r = self.revoke(make_jwt(claims(scope="read"), key=b"x" * 40))
        self.assertEqual(r.code, 1, r)
        self.assertIn("invalid token", r.stderr)


if __name__ == "__main__":
    harness.main()
