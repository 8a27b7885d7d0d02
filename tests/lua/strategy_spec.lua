-- busted specs for scripts/strategy.lua: decide() and explain().

local strategy = require("strategy")
local settings = require("settings")

-- Unix seconds for a UTC calendar time (proleptic Gregorian).
local function utc(y, m, d, h, mi)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400 + h * 3600 + (mi or 0) * 60
end

local function has(text, part)
  return type(text) == "string" and text:find(part, 1, true) ~= nil
end

-- Wednesday 2026-01-14 11:00 in Paris (UTC+1): open, no quiet hours.
local NOW = utc(2026, 1, 14, 10, 0)

-- A client reachable everywhere, who opted in; override fields per test.
local function prefs(extra)
  local p = { timezone = "Europe/Paris", email = "ana@example.com", phone = "+33612345678",
              consent = { given = true, at = "2026-01-02T10:00:00Z" } }
  for k, v in pairs(extra or {}) do
    p[k] = v
  end
  return p
end

local function decide(message_type, p, request)
  local r = { message_type = message_type, plan_id = "p1", client_id = "c1", context = {} }
  for k, v in pairs(request or {}) do
    r[k] = v
  end
  return strategy.decide(r, p or prefs(), NOW)
end

describe("strategy.decide", function()
  describe("the decision matrix (DESIGN.md §3)", function()
    local rows = {
      { "welcome", "normal", "email", { "sms" } },
      { "budget_summary", "normal", "email", { "whatsapp" } },
      { "vendor_options", "high", "email", { "whatsapp", "sms" } },
      { "selection_confirmation", "normal", "email", { "sms" } },
      { "blueprint_delivery", "high", "email", { "whatsapp" } },
      { "error_notification", "critical", "sms", { "email", "whatsapp" } },
      { "reminder", "low", "email", {} },
    }
    local priority = { critical = 100, high = 75, normal = 50, low = 10 }
    for _, row in ipairs(rows) do
      local name, urgency, primary, fallbacks = row[1], row[2], row[3], row[4]
      it(name .. ": " .. urgency .. ", " .. primary .. " then " .. (#fallbacks > 0 and table.concat(fallbacks, ", ") or "nothing"), function()
        local d = decide(name)
        assert.are.equal(primary, d.primary_channel)
        assert.are.same(fallbacks, d.fallback_channels)
        assert.are.equal(urgency, d.urgency)
        assert.are.equal(priority[urgency], d.priority)
        assert.are.equal(urgency == "low", d.batch)
        assert.are.equal("number", type(d.send_at))
      end)
    end

    it("blueprint_delivery explains that email carries the PDF and whatsapp a link", function()
      local text = strategy.explain(decide("blueprint_delivery"))
      assert.is_true(has(text, "email (PDF attached): matrix primary, then whatsapp (link to the PDF)"))
    end)

    it("an unknown message_type is an error naming it", function()
      local ok, err = pcall(decide, "birthday_card")
      assert.is_false(ok)
      assert.is_true(has(err, "unknown message_type 'birthday_card'"))
      assert.is_true(has(err, "welcome"))
    end)
  end)

  describe("urgency", function()
    it("the request's urgency overrides the matrix's, with priority and timing to match", function()
      local saturday = utc(2026, 1, 17, 9, 0) -- Sat 10:00 Paris
      local r = { message_type = "welcome", urgency = "critical", plan_id = "p", client_id = "c", context = {} }
      local d = strategy.decide(r, prefs(), saturday)
      assert.are.equal("critical", d.urgency)
      assert.are.equal(100, d.priority)
      assert.are.equal(saturday, d.send_at)
      assert.is_true(has(strategy.explain(d), "welcome: critical urgency (request; the matrix says normal)"))
    end)

    it("the matrix urgency applies when the request has none (null)", function()
      local d = decide("welcome", prefs(), { urgency = herald.null })
      assert.are.equal("normal", d.urgency)
      assert.are.equal(50, d.priority)
    end)

    it("a low urgency request is batched into the digest", function()
      local d = decide("welcome", prefs(), { urgency = "low" })
      assert.is_true(d.batch)
      assert.are.equal(10, d.priority)
      assert.are.equal(utc(2026, 1, 15, 8, 0), d.send_at) -- Thu 09:00 Paris
    end)

    it("an unknown urgency is an error naming it", function()
      local ok, err = pcall(decide, "welcome", prefs(), { urgency = "urgent" })
      assert.is_false(ok)
      assert.is_true(has(err, "unknown urgency 'urgent'"))
    end)
  end)

  describe("preferences reshape the chain", function()
    it("prefs.channels reorders: whatsapp first for a client who prefers it", function()
      local d = decide("vendor_options", prefs({ channels = { "whatsapp", "sms", "email" } }))
      assert.are.equal("whatsapp", d.primary_channel)
      assert.are.same({ "sms", "email" }, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "whatsapp: preferred"))
    end)

    it("prefs.channels filters: channels the client did not list are dropped", function()
      local d = decide("vendor_options", prefs({ channels = { "sms", "email" } }))
      assert.are.equal("sms", d.primary_channel)
      assert.are.same({ "email" }, d.fallback_channels)
    end)

    it("prefs.channels never adds a channel the matrix does not use for the type", function()
      local d = decide("welcome", prefs({ channels = { "whatsapp", "email" } }))
      assert.are.equal("email", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
    end)

    it("prefs.channels with no channel of the matrix row leaves nothing, with a reason", function()
      local d = decide("welcome", prefs({ channels = { "whatsapp", "telegram" } }))
      assert.is_nil(d.primary_channel)
      assert.are.same({}, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "no usable channel"))
    end)

    it("an opted-out channel is dropped", function()
      local d = decide("welcome", prefs({ opted_out = { email = true } }))
      assert.are.equal("sms", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "email: client opted out"))
    end)

    it("opted_out written as a list works too", function()
      local d = decide("vendor_options", prefs({ opted_out = { "whatsapp" } }))
      assert.are.equal("email", d.primary_channel)
      assert.are.same({ "sms" }, d.fallback_channels)
    end)

    it("opted_out = false keeps the channel", function()
      local d = decide("welcome", prefs({ opted_out = { email = false } }))
      assert.are.equal("email", d.primary_channel)
    end)

    it("no email address: email is dropped", function()
      local d = decide("welcome", prefs({ email = herald.null }))
      assert.are.equal("sms", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "email: no email address"))
    end)

    it("no phone: sms and whatsapp are dropped", function()
      local p = prefs()
      p.phone = nil
      local d = decide("vendor_options", p)
      assert.are.equal("email", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
      local text = strategy.explain(d)
      assert.is_true(has(text, "whatsapp: no phone number"))
      assert.is_true(has(text, "sms: no phone number"))
    end)

    it("an empty phone counts as none", function()
      local d = decide("error_notification", prefs({ phone = "" }))
      assert.are.equal("email", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
    end)

    it("a forced channel goes first, the rest of the chain follows", function()
      local d = decide("vendor_options", prefs(), { channel = "sms" })
      assert.are.equal("sms", d.primary_channel)
      assert.are.same({ "email", "whatsapp" }, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "sms: forced by the request"))
    end)

    it("a forced channel outside the client's list is refused, as it would be at send time", function()
      local d = decide("welcome", prefs({ channels = { "email" } }), { channel = "whatsapp" })
      assert.are.equal("email", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "whatsapp: not among the client's allowed channels"))
    end)

    it("refusal holds the allowed-channels rule: listed, unlisted, no list, empty list", function()
      local p = prefs({ channels = { "sms" } })
      assert.is_nil(strategy.refusal("sms", p))
      assert.are.equal("not among the client's allowed channels", strategy.refusal("email", p))
      assert.is_nil(strategy.refusal("email", prefs({ channels = herald.null })))
      assert.are.equal("not among the client's allowed channels",
        strategy.refusal("email", prefs({ channels = {} })))
    end)

    it("refusal holds the suppression list: the suppressed channel alone, with its reason", function()
      local p = prefs({ suppressed = { email = "bounce" } })
      assert.are.equal("address suppressed (bounce)", strategy.refusal("email", p))
      assert.is_nil(strategy.refusal("sms", p))
      assert.is_nil(strategy.refusal("email", prefs({ suppressed = {} })))
    end)

    it("a forced channel the client opted out of is not used", function()
      local d = decide("welcome", prefs({ opted_out = { sms = true } }), { channel = "sms" })
      assert.are.equal("email", d.primary_channel)
      assert.are.same({}, d.fallback_channels)
    end)

    it("a forced channel without an address is not used", function()
      local p = prefs()
      p.phone = nil
      local d = decide("welcome", p, { channel = "whatsapp" })
      assert.are.equal("email", d.primary_channel)
    end)

    it("an unknown forced channel is an error", function()
      local ok, err = pcall(decide, "welcome", prefs(), { channel = "pigeon" })
      assert.is_false(ok)
      assert.is_true(has(err, "unknown channel 'pigeon'"))
    end)

    it("everything opted out: no primary channel, and the reasons say why", function()
      local d = decide("error_notification", prefs({ opted_out = { sms = true, email = true, whatsapp = true } }))
      assert.is_nil(d.primary_channel)
      assert.are.same({}, d.fallback_channels)
      local text = strategy.explain(d)
      assert.is_true(has(text, "sms: client opted out"))
      assert.is_true(has(text, "email: client opted out"))
      assert.is_true(has(text, "whatsapp: client opted out"))
      assert.is_true(has(text, "no usable channel: the client cannot be reached for error_notification"))
    end)

    it("no preferences at all: the matrix chain, but no address means no channel", function()
      local d = strategy.decide({ message_type = "welcome" }, nil, NOW)
      assert.is_nil(d.primary_channel)
      assert.are.equal("UTC", d.timezone)
    end)
  end)

  describe("consent (settings.consent)", function()
    it("whatsapp needs an opt-in: without one it is dropped, with a reason", function()
      local d = decide("vendor_options", prefs({ consent = herald.null }))
      assert.are.equal("email", d.primary_channel)
      assert.are.same({ "sms" }, d.fallback_channels)
      assert.is_true(has(strategy.explain(d), "whatsapp: no consent: whatsapp needs the client's opt-in"))
    end)

    it("never asked (given = false, no time) still gets transactional email and sms", function()
      local d = decide("error_notification", prefs({ consent = { given = false } }))
      assert.are.equal("sms", d.primary_channel)
      assert.are.same({ "email" }, d.fallback_channels)
    end)

    it("a withdrawal (given = false with its time) stops every channel", function()
      local d = decide("error_notification", prefs({ consent = { given = false, at = "2026-01-10T08:00:00Z" } }))
      assert.is_nil(d.primary_channel)
      assert.is_true(has(strategy.explain(d), "email: the client withdrew consent (2026-01-10T08:00:00Z)"))
    end)

    it("a forced channel without consent is not used", function()
      local d = decide("welcome", prefs({ consent = herald.null }), { channel = "whatsapp" })
      assert.are.equal("email", d.primary_channel)
    end)

    it("the rules are settings an operator edits", function()
      local saved = settings.consent
      settings.consent = { required = { sms = true, whatsapp = true }, withdrawal_stops_all = false }
      local ok, err = pcall(function()
        local d = decide("error_notification", prefs({ consent = herald.null }))
        assert.are.equal("email", d.primary_channel)
        assert.are.same({}, d.fallback_channels)
        d = decide("error_notification", prefs({ consent = { given = false, at = "2026-01-10T08:00:00Z" } }))
        assert.are.equal("email", d.primary_channel) -- only the required channels stop
      end)
      settings.consent = saved
      assert(ok, err)
    end)
  end)

  describe("strategy.refusal", function()
    it("nil for a usable channel, the reason otherwise", function()
      assert.is_nil(strategy.refusal("email", prefs()))
      assert.are.equal("client opted out", strategy.refusal("email", prefs({ opted_out = { "email" } })))
      assert.are.equal("no phone number", strategy.refusal("sms", prefs({ phone = "" })))
      assert.are.equal("unknown channel", strategy.refusal("pigeon", prefs()))
      assert.are.equal("no consent: whatsapp needs the client's opt-in",
        strategy.refusal("whatsapp", prefs({ consent = { given = false } })))
    end)
  end)

  describe("timing comes through", function()
    it("a normal message on Saturday goes on Monday 09:00 local", function()
      local saturday = utc(2026, 1, 17, 9, 0)
      local d = strategy.decide({ message_type = "welcome" }, prefs(), saturday)
      assert.are.equal(utc(2026, 1, 19, 8, 0), d.send_at)
    end)

    it("request.send_at is a lower bound", function()
      local d = decide("welcome", prefs(), { send_at = utc(2026, 1, 14, 14, 0) })
      assert.are.equal(utc(2026, 1, 14, 14, 0), d.send_at)
    end)
  end)
end)

describe("strategy.explain", function()
  it("reads a quiet-hours case in plain words", function()
    local now = utc(2026, 1, 14, 20, 3) -- 21:03 in Paris
    local d = strategy.decide({ message_type = "vendor_options" },
      prefs({ channels = { "email" }, quiet_hours = { start = "21:00", ["end"] = "08:00" } }), now)
    assert.are.equal(utc(2026, 1, 15, 7, 0), d.send_at)
    assert.are.equal("vendor_options: high urgency; client allows email; matrix has email, whatsapp, sms → email; "
      .. "email: preferred; 21:03 local is in quiet hours 21:00–08:00 → sent 08:00", strategy.explain(d))
  end)

  it("joins the decision's reasons with '; '", function()
    assert.are.equal("a; b", strategy.explain({ reasons = { "a", "b" } }))
  end)

  it("says so when a decision has no reasons", function()
    assert.are.equal("no reasons recorded", strategy.explain({}))
  end)
end)

describe("strategy.when", function()
  -- what the engine asks before each attempt: decide's send time, without the chain
  it("gives decide's send time and urgency on generated requests", function()
    local types = {}
    for name in pairs(require("matrix")) do types[#types + 1] = name end
    table.sort(types)
    local zones = {"Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Lord_Howe"}
    local urgencies = {"low", "normal", "high", "critical", herald.null}
    local quiet = {nil, {start = "21:00", ["end"] = "08:00"}, {start = "12:00", ["end"] = "13:30"}}
    math.randomseed(2026)
    for _ = 1, 600 do
      local request = {message_type = types[math.random(#types)],
                       urgency = urgencies[math.random(#urgencies)]}
      if math.random(4) == 1 then request.send_at = NOW + math.random(0, 3 * 86400) end
      local p = prefs({timezone = zones[math.random(#zones)], quiet_hours = quiet[math.random(3)],
                       digest_time = math.random(2) == 1 and "07:30" or nil})
      local now = NOW + math.random(0, 14 * 86400)
      local d = strategy.decide(request, p, now)
      local w = strategy.when(request, p, now)
      assert.are.equal(d.send_at, w.send_at)
      assert.are.equal(d.urgency, w.urgency)
      assert.is_table(w.reasons)
    end
  end)

  it("says why a message waits", function()
    -- 22:00 in Paris, quiet hours until 08:00
    local w = strategy.when({message_type = "vendor_options", urgency = "high"},
      prefs({quiet_hours = {start = "21:00", ["end"] = "08:00"}}), utc(2026, 1, 14, 21, 0))
    assert.is_true(w.send_at > utc(2026, 1, 14, 21, 0) + 60)
    assert.is_true(has(table.concat(w.reasons, "; "), "quiet hours"))
  end)

  it("refuses an unknown message type or urgency as decide does", function()
    local ok, err = pcall(strategy.when, {message_type = "birthday_card"}, prefs(), NOW)
    assert.is_false(ok)
    assert.is_true(has(err, "strategy.when: unknown message_type 'birthday_card'"))
    ok, err = pcall(strategy.when, {message_type = "welcome", urgency = "urgent"}, prefs(), NOW)
    assert.is_false(ok)
    assert.is_true(has(err, "unknown urgency 'urgent'"))
  end)
end)
