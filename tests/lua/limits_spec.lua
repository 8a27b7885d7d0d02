-- busted specs for scripts/limits.lua: which buckets a send draws from, the
-- per-client caps (exempt urgencies), and the checks a reload makes of
-- settings.limits and settings.caps (a bad value fails the load, by name).

local settings = require("settings")

-- limits.lua checks its settings when it loads and reads them at each call:
-- load it afresh under `limits` and `caps`, and give fn (when given) the
-- module while they hold; returns the load's success and module or error.
local function load_with(limits, caps, fn)
  local saved_l, saved_c = settings.limits, settings.caps
  settings.limits, settings.caps = limits, caps
  package.loaded.limits = nil
  local ok, mod = pcall(require, "limits")
  local fn_ok, fn_err = true, nil
  if ok and fn then fn_ok, fn_err = pcall(fn, mod) end
  package.loaded.limits = nil
  settings.limits, settings.caps = saved_l, saved_c
  if not fn_ok then error(fn_err, 0) end
  return ok, mod
end

describe("limits.buckets", function()
  it("draws from the sender's bucket and the channel's, defaults per = 1, burst = 0.2 s of sends, at least 2", function()
    local ok = load_with({ buckets = {
      ["sms:+15550001111"] = { rate = 1 },
      sms = { rate = 30, per = 1, burst = 5 },
      ["email:relay"] = { rate = 14 },
    } }, {}, function(limits)
    local b = limits.buckets("sms", "+15550001111", "welcome", "high")
    local slow = { factor = 0.5, floor = 1 / 64, recover_seconds = 20 }
    assert.are.same({
      { key = "sms:+15550001111", rate = 1, per = 1, burst = 2, slow = slow },
      { key = "sms", rate = 30, per = 1, burst = 5, slow = slow },
    }, b)
    -- another sender: only the channel's bucket
    assert.are.same({ { key = "sms", rate = 30, per = 1, burst = 5, slow = slow } },
      limits.buckets("sms", "+15559999999", "welcome", "high"))
    assert.are.same({ { key = "email:relay", rate = 14, per = 1, burst = 3, slow = slow } },
      limits.buckets("email", "relay", "welcome", "low"))
    assert.are.same({}, limits.buckets("whatsapp", "1055500", "welcome", "low"))
    end)
    assert.is_true(ok)
  end)

  it("gives an undeclared burst 0.2 s of slack at the bucket's rate, and keeps a declared one", function()
    local ok = load_with({ buckets = {
      ["whatsapp:1055500"] = { rate = 80 },        -- 16 sends in 0.2 s
      ["sms:+15550002222"] = { rate = 30, per = 60 }, -- 0.1 in 0.2 s: at least 2
      ["sms:+15550003333"] = { rate = 5, burst = 1 }, -- declared: no slack
    } }, {}, function(limits)
      assert.are.equal(16, limits.buckets("whatsapp", "1055500", "welcome", "low")[1].burst)
      assert.are.equal(2, limits.buckets("sms", "+15550002222", "welcome", "low")[1].burst)
      assert.are.equal(1, limits.buckets("sms", "+15550003333", "welcome", "low")[1].burst)
    end)
    assert.is_true(ok)
  end)

  it("slows down as settings.limits.slow_down and a bucket's own slow_down say", function()
    local ok = load_with({ slow_down = { factor = 0.25, recover_seconds = 60 }, buckets = {
      ["sms:+15550001111"] = { rate = 1, slow_down = { floor = 0.5 } },
      sms = { rate = 30 },
    } }, {}, function(limits)
    local b = limits.buckets("sms", "+15550001111", "welcome", "high")
    assert.are.same({ factor = 0.25, floor = 0.5, recover_seconds = 60 }, b[1].slow)
    assert.are.same({ factor = 0.25, floor = 1 / 64, recover_seconds = 60 }, b[2].slow)
    end)
    assert.is_true(ok)
  end)

  it("refuses a slow_down out of range at load, naming it", function()
    for _, c in ipairs({
      { { slow_down = { factor = 1 } }, "settings.limits.slow_down.factor: a share above 0 and below 1" },
      { { slow_down = { floor = 0 } }, "settings.limits.slow_down.floor" },
      { { slow_down = { recover_seconds = -5 } }, "settings.limits.slow_down.recover_seconds: seconds" },
      { { slow_down = { halve = true } }, "settings.limits.slow_down.halve: not a setting" },
      { { buckets = { sms = { rate = 1, slow_down = { factor = 2 } } } },
        'settings.limits.buckets["sms"].slow_down.factor' },
    }) do
      c[1].buckets = c[1].buckets or {}
      local ok, err = load_with(c[1], {})
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), err)
    end
  end)

  it("refuses a mistyped bucket at load, naming it", function()
    local cases = {
      { { ["sms:+1"] = { rate = 0 } }, 'settings.limits.buckets["sms:+1"].rate' },
      { { ["sms:+1"] = { rate = 1, per = -1 } }, '.per: seconds, above 0' },
      { { ["sms:+1"] = { rate = 1, burst = 1.5 } }, '.burst: a whole number' },
      { { ["SMS has spaces"] = { rate = 1 } }, 'settings.limits.buckets["SMS has spaces"]' },
    }
    for _, c in ipairs(cases) do
      local ok, err = load_with({ buckets = c[1] }, {})
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), err)
    end
  end)
end)

describe("limits.cap", function()
  it("caps a channel per rolling day; exempt urgencies and uncapped channels are nil", function()
    local ok = load_with({ buckets = {} },
      { sms = { per_day = 3, over = "digest" }, email = { per_day = 10 },
        exempt = { critical = true } },
      function(limits)
    assert.are.same({ count = 3, per = 86400, over = "digest" },
      limits.cap("sms", "welcome", "high"))
    assert.are.same({ count = 10, per = 86400, over = "wait" },
      limits.cap("email", "welcome", "low"))
    assert.is_nil(limits.cap("sms", "error_notification", "critical"))
    assert.is_nil(limits.cap("whatsapp", "welcome", "high"))
    end)
    assert.is_true(ok)
  end)

  it("refuses caps out of range or on an unknown channel at load", function()
    for _, c in ipairs({
      { { sms = { per_day = 0 } }, "settings.caps.sms.per_day: a whole number from 1 to 1000000" },
      { { sms = { per_day = 1000001 } }, "settings.caps.sms.per_day" },
      { { sms = { per_day = 2.5 } }, "settings.caps.sms.per_day" },
      { { fax = { per_day = 3 } }, "settings.caps.fax: a channel" },
      { { sms = { per_day = 3, over = "drop" } }, 'settings.caps.sms.over: "wait"' },
    }) do
      local ok, err = load_with({ buckets = {} }, c[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), err)
    end
  end)

  it("ships with no cap and critical exempt", function()
    local ok = load_with(settings.limits, settings.caps, function(limits)
      assert.is_nil(limits.cap("sms", "welcome", "critical"))
      assert.is_nil(limits.cap("email", "welcome", "low"))
      assert.are.same({}, limits.buckets("sms", "+15550001111", "welcome", "high"))
    end)
    assert.is_true(ok)
  end)
end)
