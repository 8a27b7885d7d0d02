-- busted specs for scripts/retry.lua: policy(category, attempt, result).

local retry = require("retry")
local settings = require("settings")

local function has(text, part)
  return type(text) == "string" and text:find(part, 1, true) ~= nil
end

-- Delays of `n` calls, with their smallest and largest.
local function delays(category, attempt, result, n)
  local lo, hi, all = math.huge, -math.huge, {}
  for i = 1, n do
    local a = retry.policy(category, attempt, result)
    assert.are.equal("retry", a.action)
    all[i] = a.delay
    lo, hi = math.min(lo, a.delay), math.max(hi, a.delay)
  end
  return lo, hi, all
end

describe("retry.policy", function()
  local saved_scale, saved_random
  before_each(function()
    saved_scale, saved_random = herald.config.retry_scale, herald.random
    herald.config.retry_scale = 1
  end)
  after_each(function()
    herald.config.retry_scale, herald.random = saved_scale, saved_random
  end)

  describe("transient and auth_failure follow the schedule 60, 300, 900 s", function()
    for _, category in ipairs({ "transient", "auth_failure" }) do
      it(category .. ": 200 delays per attempt all within ±20%, spread, and growing", function()
        local prev_hi = 0
        for attempt, base in ipairs({ 60, 300, 900 }) do
          local lo, hi = delays(category, attempt, {}, 200)
          assert.is_true(lo >= base * 0.8, string.format("attempt %d: %g below %g", attempt, lo, base * 0.8))
          assert.is_true(hi <= base * 1.2, string.format("attempt %d: %g above %g", attempt, hi, base * 1.2))
          assert.is_true(hi - lo > base * 0.1, "jitter spreads the delays")
          assert.is_true(lo > prev_hi, "each attempt waits longer than the one before")
          prev_hi = hi
        end
      end)
    end

    it("jitter follows herald.random(): 0 → -20%, 0.5 → exact, just under 1 → +20%", function()
      herald.random = function() return 0 end
      assert.are.equal(48, retry.policy("transient", 1, {}).delay)
      herald.random = function() return 0.5 end
      assert.are.equal(300, retry.policy("transient", 2, {}).delay)
      herald.random = function() return 0.9999999 end
      assert.is_true(math.abs(retry.policy("transient", 3, {}).delay - 1080) < 0.001)
    end)

    it("the reason names the category and the step", function()
      local a = retry.policy("auth_failure", 2, {})
      assert.is_true(has(a.reason, "auth_failure: retry 2 of 3 after 300s"))
    end)
  end)

  describe("rate_limit", function()
    it("waits the provider's retry_after when it is longer than the schedule", function()
      local a = retry.policy("rate_limit", 1, { retry_after = 600 })
      assert.are.equal("retry", a.action)
      assert.are.equal(600, a.delay)
      assert.is_true(has(a.reason, "retry-after 600s"))
    end)

    it("waits the schedule when it is longer than retry_after", function()
      local lo, hi = delays("rate_limit", 2, { retry_after = 10 }, 200)
      assert.is_true(lo >= 240 and hi <= 360)
    end)

    it("waits the schedule when the provider gave no retry_after", function()
      local lo, hi = delays("rate_limit", 1, {}, 200)
      assert.is_true(lo >= 48 and hi <= 72)
    end)
  end)

  describe("permanent and invalid never retry", function()
    for _, category in ipairs({ "permanent", "invalid" }) do
      it(category .. " → next_channel at once, at every attempt", function()
        for attempt = 1, 4 do
          local a = retry.policy(category, attempt, {})
          assert.are.equal("next_channel", a.action)
          assert.is_nil(a.delay)
          assert.is_true(has(a.reason, category))
        end
      end)
    end
  end)

  describe("schedule exhaustion", function()
    for _, category in ipairs({ "transient", "auth_failure", "rate_limit" }) do
      it(category .. ": after the third retry → next_channel", function()
        assert.are.equal("retry", retry.policy(category, 3, {}).action)
        local a = retry.policy(category, 4, { retry_after = 5 })
        assert.are.equal("next_channel", a.action)
        assert.is_nil(a.delay)
        assert.is_true(has(a.reason, "retries used up"))
      end)
    end

    it("follows an operator's edit of settings.retry.schedule", function()
      local saved = settings.retry.schedule
      settings.retry.schedule = { 10 }
      herald.random = function() return 0.5 end
      local first, second = retry.policy("transient", 1, {}), retry.policy("transient", 2, {})
      settings.retry.schedule = saved
      assert.are.equal(10, first.delay)
      assert.are.equal("next_channel", second.action)
    end)
  end)

  it("an opted-out recipient → next_channel, whatever the category", function()
    local a = retry.policy("invalid", 1, { opted_out = true })
    assert.are.equal("next_channel", a.action)
    assert.is_true(has(a.reason, "opted out"))
    assert.are.equal("next_channel", retry.policy("transient", 1, { opted_out = true }).action)
  end)

  it("a closed WhatsApp window → retry at once (the template goes next), while the schedule lasts",
    function()
      local a = retry.policy("transient", 1, { window_closed = true })
      assert.are.equal("retry", a.action)
      assert.are.equal(0, a.delay)
      assert.is_true(has(a.reason, "template"))
      local n = #require("settings").retry.schedule
      assert.are.equal("next_channel", retry.policy("transient", n + 1, { window_closed = true }).action)
    end)

  it("an unknown category → give_up, says so and logs it", function()
    local saved_log, lines = herald.log, {}
    herald.log = function(level, msg, fields) lines[#lines + 1] = { level = level, msg = msg, fields = fields } end
    local ok, a = pcall(retry.policy, "cosmic_rays", 1, {})
    herald.log = saved_log
    assert.is_true(ok, a)
    assert.are.equal("give_up", a.action)
    assert.is_true(has(a.reason, "unknown category 'cosmic_rays'"))
    assert.are.equal(1, #lines)
    assert.are.equal("cosmic_rays", lines[1].fields.category)
  end)

  describe("herald.config.retry_scale (restored by after_each)", function()
    it("multiplies the schedule's delays (0.001: seconds become milliseconds)", function()
      herald.config.retry_scale = 0.001
      local lo, hi = delays("transient", 1, {}, 200)
      assert.is_true(lo >= 0.048 and hi <= 0.072, string.format("%g..%g", lo, hi))
    end)

    it("leaves the provider's retry_after as the provider said", function()
      herald.config.retry_scale = 0.001
      local rl = retry.policy("rate_limit", 1, { retry_after = 600 })
      assert.are.equal(600, rl.delay)
    end)
  end)

  describe("scaled schedules", function()
    it("scale the schedule but never the provider's retry_after", function()
      local saved = herald.config.retry_scale
      herald.config.retry_scale = 0.001
      local a = retry.policy("rate_limit", 1, { retry_after = 2 })
      local b = retry.policy("transient", 1, {})
      herald.config.retry_scale = saved
      assert.are.equal("retry", a.action)
      assert.are.equal(2, a.delay)
      assert.is_true(b.delay < 0.1)
    end)
  end)
end)

describe("retry.alert", function()
  local saved_scale, saved_random
  before_each(function()
    saved_scale, saved_random = herald.config.retry_scale, herald.random
    herald.config.retry_scale = 1
    herald.random = function() return 0.5 end -- no jitter
  end)
  after_each(function()
    herald.config.retry_scale, herald.random = saved_scale, saved_random
  end)

  it("retries on the alert schedule, then keeps the last step", function()
    local s = settings.retry.alert_schedule
    for i = 1, #s do
      local a = retry.alert(i, { ok = false, text = "connection refused" })
      assert.are.equal("retry", a.action)
      assert.are.equal(s[i], a.delay)
      assert.is_true(has(a.reason, "connection refused"))
    end
    assert.are.equal(s[#s], retry.alert(#s + 3, {}).delay)
  end)

  it("gives up after alert_give_up_after attempts", function()
    local a = retry.alert(settings.retry.alert_give_up_after, {})
    assert.are.equal("give_up", a.action)
    assert.is_nil(a.delay)
  end)

  it("scales with herald.config.retry_scale", function()
    herald.config.retry_scale = 0.001
    assert.are.equal(settings.retry.alert_schedule[1] * 0.001, retry.alert(1, {}).delay)
  end)
end)
