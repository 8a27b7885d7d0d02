-- busted specs for scripts/classify.lua: classify(channel, result).
-- One `it` per row: channel, what the transport saw, and the expected
-- category, may_have_been_sent and (where it matters) opted_out / reason.

local classify = require("classify").classify

local function has(text, part)
  return type(text) == "string" and text:find(part, 1, true) ~= nil
end

local function smtp(code, enhanced, stage)
  return { ok = false, kind = "smtp", smtp_code = code, enhanced_code = enhanced, smtp_stage = stage }
end

local function http(status, code, extra)
  local r = { ok = false, kind = "http", http_status = status, provider_code = code, request_sent = true }
  for k, v in pairs(extra or {}) do
    r[k] = v
  end
  return r
end

local function io(err)
  return { ok = false, kind = "io", io_error = err, request_sent = false,
    text = "outbox: cannot create a file in var/outbox/email: something" }
end

local function net(err, sent)
  return { ok = false, kind = "network", network_error = err, request_sent = sent }
end

-- { title, channel, result, category, may_have_been_sent, more = {field = value}, reason = "part" }
local ROWS = {
  -- SMTP: reply codes
  { "SMTP 421 at connect", "email", smtp(421, nil, "connect"), "transient", false },
  { "SMTP 450 at rcpt", "email", smtp(450, nil, "rcpt"), "transient", false },
  { "SMTP 451 at data", "email", smtp(451, nil, "data"), "transient", false },
  { "SMTP 452 at rcpt", "email", smtp(452, nil, "rcpt"), "transient", false },
  { "SMTP 4xx not in the table", "email", smtp(471, nil, "rcpt"), "transient", false, reason = "unknown code 471" },
  { "SMTP 550 without enhanced code", "email", smtp(550, nil, "rcpt"), "permanent", false },
  { "SMTP 554 at eom", "email", smtp(554, nil, "eom"), "permanent", false },
  { "SMTP 5xx not in the table", "email", smtp(599, nil, "data"), "permanent", false, reason = "unknown code 599" },
  { "SMTP 530 auth required", "email", smtp(530, "5.7.0", "mail"), "auth_failure", false },
  { "SMTP 534 mechanism too weak", "email", smtp(534, "5.7.9", "auth"), "auth_failure", false },
  { "SMTP 535 bad credentials (5.7.8 does not make it policy)", "email", smtp(535, "5.7.8", "auth"), "auth_failure", false },
  { "SMTP 538 encryption required", "email", smtp(538, "5.7.11", "auth"), "auth_failure", false },
  { "SMTP 552 during RCPT", "email", smtp(552, "5.2.2", "rcpt"), "transient", false },
  { "SMTP 552 at data", "email", smtp(552, "5.3.4", "data"), "permanent", false },
  { "SMTP 552 at eom", "email", smtp(552, nil, "eom"), "permanent", false },
  -- SMTP: enhanced codes
  { "SMTP 550 5.1.1 bad mailbox", "email", smtp(550, "5.1.1", "rcpt"), "invalid", false, reason = "bad destination mailbox" },
  { "SMTP 550 5.1.2 bad domain", "email", smtp(550, "5.1.2", "rcpt"), "invalid", false },
  { "SMTP 553 5.1.3 bad syntax", "email", smtp(553, "5.1.3", "rcpt"), "invalid", false },
  { "SMTP 556 5.1.10 null MX", "email", smtp(556, "5.1.10", "rcpt"), "invalid", false },
  { "SMTP 550 5.1.6 (other 5.1.x)", "email", smtp(550, "5.1.6", "rcpt"), "invalid", false },
  { "SMTP 550 5.7.1 policy", "email", smtp(550, "5.7.1", "rcpt"), "permanent", false },
  { "SMTP 550 5.7.26 policy (DMARC)", "email", smtp(550, "5.7.26", "eom"), "permanent", false },
  { "SMTP 451 4.7.1 greylisted", "email", smtp(451, "4.7.1", "rcpt"), "transient", false },
  { "SMTP 4.4.2 without a reply code", "email", smtp(nil, "4.4.2", "data"), "transient", false },
  { "SMTP 5.6.0 without a reply code", "email", smtp(nil, "5.6.0", "data"), "permanent", false },

  -- Twilio (SMS)
  { "Twilio 21211 invalid number", "sms", http(400, 21211), "invalid", false },
  { "Twilio 21614 not a mobile number", "sms", http(400, 21614), "invalid", false },
  { "Twilio 20003 auth", "sms", http(401, 20003), "auth_failure", false },
  { "Twilio 20429 rate limit", "sms", http(429, 20429, { retry_after = 30 }), "rate_limit", false,
    more = { retry_after = 30 } },
  { "Twilio 21610 opted out", "sms", http(400, 21610), "invalid", false, more = { opted_out = true } },
  { "Twilio 30003 unreachable", "sms", http(nil, 30003), "transient", false },
  { "Twilio 30004 blocked", "sms", http(nil, 30004), "permanent", false },
  { "Twilio 30005 unknown destination", "sms", http(nil, 30005), "invalid", false },
  { "Twilio 30006 landline", "sms", http(nil, 30006), "invalid", false },
  { "Twilio 30007 carrier filtering", "sms", http(nil, 30007), "permanent", false },
  { "Twilio 30008 unknown", "sms", http(nil, 30008), "transient", false },
  { "Twilio code given as a string", "sms", http(400, "21211"), "invalid", false },
  { "Twilio unknown code falls back to the HTTP status", "sms", http(400, 29999), "permanent", false,
    reason = "unknown Twilio code 29999" },
  { "Twilio unknown code with a 503", "sms", http(503, 29999), "transient", true, reason = "unknown Twilio code 29999" },

  -- Meta (WhatsApp)
  { "Meta 190 token expired", "whatsapp", http(401, 190), "auth_failure", false },
  { "Meta 4 app rate limit", "whatsapp", http(400, 4), "rate_limit", false },
  { "Meta 80007 WABA rate limit", "whatsapp", http(400, 80007), "rate_limit", false },
  { "Meta 130429 throughput", "whatsapp", http(400, 130429, { retry_after = 12 }), "rate_limit", false,
    more = { retry_after = 12 } },
  { "Meta 131056 pair rate limit", "whatsapp", http(400, 131056), "rate_limit", false },
  { "Meta 131026 undeliverable", "whatsapp", http(400, 131026), "invalid", false },
  { "Meta 131030 not in allowed list", "whatsapp", http(400, 131030), "invalid", false },
  { "Meta 131047 re-engagement window closed", "whatsapp", http(400, 131047), "transient", false,
    reason = "re-engagement window" },
  { "Meta 132001 template missing", "whatsapp", http(404, 132001), "invalid", false,
    reason = "template does not exist" },
  { "Meta 132000 parameter count", "whatsapp", http(400, 132000), "invalid", false,
    reason = "parameter count mismatch" },
  { "Meta 132015 template paused", "whatsapp", http(400, 132015), "invalid", false,
    reason = "paused" },
  { "Meta unknown code falls back to the HTTP status", "whatsapp", http(500, 999999), "transient", true,
    reason = "unknown Meta code 999999" },

  -- HTTP status without a provider code
  { "HTTP 401", "whatsapp", http(401), "auth_failure", false },
  { "HTTP 403", "sms", http(403), "auth_failure", false },
  { "HTTP 404", "sms", http(404), "permanent", false },
  { "HTTP 408", "sms", http(408), "transient", false },
  { "HTTP 429 (never received: false)", "sms", http(429, nil, { retry_after = 7 }), "rate_limit", false,
    more = { retry_after = 7 } },
  { "HTTP 400", "whatsapp", http(400), "permanent", false },
  { "HTTP 422", "sms", http(422), "permanent", false },
  { "HTTP 500 (may have been sent)", "sms", http(500), "transient", true },
  { "HTTP 502", "whatsapp", http(502), "transient", true },
  { "HTTP 503", "sms", http(503, nil, { retry_after = 3 }), "transient", true, more = { retry_after = 3 } },
  { "HTTP 504", "email", http(504), "transient", true },

  -- Network errors
  { "connect_failed", "sms", net("connect_failed"), "transient", false },
  { "dns_failed", "email", net("dns_failed"), "transient", false },
  { "tls_failed", "whatsapp", net("tls_failed"), "transient", false },
  { "tls_failed is never 'sent', whatever request_sent says", "whatsapp", net("tls_failed", true), "transient", false },
  { "timeout after the request was sent", "sms", net("timeout", true), "transient", true },
  { "timeout before the request was sent", "sms", net("timeout", false), "transient", false },
  { "timeout, request_sent not given", "whatsapp", net("timeout"), "transient", false },
  { "SMTP timeout after DATA end (network_error wins over kind)", "email",
    { ok = false, kind = "smtp", smtp_stage = "eom", network_error = "timeout", request_sent = true },
    "transient", true },
  { "unknown network error after sending", "sms", net("reset", true), "transient", true,
    reason = "unknown network error 'reset'" },

  -- Local I/O (the outbox driver's directory): retried on the channel, never sent
  { "outbox disk full", "email", io("ENOSPC"), "transient", false, reason = "no space left" },
  { "outbox read-only", "email", io("EROFS"), "transient", false, reason = "read-only" },
  { "outbox not writable", "sms", io("EACCES"), "transient", false, reason = "permission denied" },
  { "outbox I/O error", "whatsapp", io("EIO"), "transient", false },
  { "outbox path under a file", "email", io("ENOTDIR"), "transient", false, reason = "not a directory" },
  { "outbox unknown errno", "email", io("errno 200"), "transient", false, reason = "local I/O errno 200" },
  { "outbox without an errno", "email", { ok = false, kind = "io" }, "transient", false },
  { "a refusal before any I/O stays invalid", "email",
    { ok = false, kind = "local", text = "recipient: bad address" }, "invalid", false },
}

describe("classify.classify", function()
  for _, row in ipairs(ROWS) do
    local title, channel, result, category, sent = row[1], row[2], row[3], row[4], row[5]
    it(string.format("%s (%s) → %s, may_have_been_sent = %s", title, channel, category, tostring(sent)), function()
      local c = classify(channel, result)
      assert.are.equal(category, c.category)
      assert.are.equal(sent, c.may_have_been_sent)
      assert.are.equal("string", type(c.reason))
      for k, v in pairs(row.more or {}) do
        assert.are.equal(v, c[k], k)
      end
      if not (row.more and row.more.opted_out) then
        assert.is_nil(c.opted_out)
      end
      if not (row.more and row.more.retry_after) then
        assert.is_nil(c.retry_after)
      end
      if row.reason then
        assert.is_true(has(c.reason, row.reason), c.reason)
      end
    end)
  end

  it("the same provider code means different things on different channels", function()
    -- 4 is Meta's rate limit; for Twilio it is an unknown code.
    assert.are.equal("rate_limit", classify("whatsapp", http(400, 4)).category)
    local c = classify("sms", http(400, 4))
    assert.are.equal("permanent", c.category)
    assert.is_true(has(c.reason, "unknown Twilio code 4"))
  end)

  it("a known code's reason names provider, code and meaning", function()
    local c = classify("whatsapp", http(400, 131047))
    assert.is_true(has(c.reason, "Meta 131047"))
    assert.is_true(has(c.reason, "24 h"))
    assert.is_true(c.window_closed)
    assert.is_nil(classify("whatsapp", http(400, 131026)).window_closed)
  end)

  describe("engine-side outcomes", function()
    it("a local refusal is invalid and was never sent", function()
      local c = classify("email", { ok = false, kind = "local",
        text = "subject: contains a line break (header injection refused)" })
      assert.are.equal("invalid", c.category)
      assert.is_false(c.may_have_been_sent)
      assert.matches("header injection", c.reason)
    end)

    it("a connection lost after the request was written may have been sent", function()
      local sent = classify("sms", { kind = "network", network_error = "connection_lost",
        request_sent = true })
      assert.are.equal("transient", sent.category)
      assert.is_true(sent.may_have_been_sent)
      local unsent = classify("sms", { kind = "network",
        network_error = "connection_lost", request_sent = false })
      assert.is_false(unsent.may_have_been_sent)
    end)
  end)
end)
