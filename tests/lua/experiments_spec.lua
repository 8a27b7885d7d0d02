-- busted specs for scripts/experiments.lua: deterministic assignment by a
-- hash of experiment and client, weights honoured, disabled -> control, and
-- what strategy.decide records.

local settings = require("settings")
local experiments = require("experiments")
local strategy = require("strategy")

local function with(exps, fn)
  local saved = settings.experiments
  settings.experiments = exps
  local ok, err = pcall(fn)
  settings.experiments = saved
  if not ok then error(err, 0) end
end

local AB = {
  welcome_subject = {
    message_type = "welcome",
    variants = {
      { name = "control", weight = 70 },
      { name = "short", weight = 30, subject = "Welcome, {{ client_name }}!" },
    },
  },
}

describe("experiments.assign", function()
  it("splits 10,000 clients within 2 % of the weights", function()
    with(AB, function()
      local n = { control = 0, short = 0 }
      for i = 1, 10000 do
        local name, arm = experiments.assign("welcome", "client-" .. i)
        assert.are.equal("welcome_subject", name)
        n[arm.name] = n[arm.name] + 1
      end
      assert.is_true(math.abs(n.control / 10000 - 0.70) <= 0.02, n.control)
      assert.is_true(math.abs(n.short / 10000 - 0.30) <= 0.02, n.short)
    end)
  end)

  it("gives a client the same arm every time, and other types none", function()
    with(AB, function()
      local _, a = experiments.assign("welcome", "ana")
      for _ = 1, 20 do
        local _, b = experiments.assign("welcome", "ana")
        assert.are.equal(a.name, b.name)
      end
      assert.is_nil(experiments.assign("reminder", "ana"))
      assert.is_nil(experiments.assign("welcome", nil))
    end)
  end)

  it("sends everyone the control when the experiment is off", function()
    local off = { welcome_subject = { message_type = "welcome", enabled = false,
      variants = AB.welcome_subject.variants } }
    with(off, function()
      for i = 1, 100 do assert.is_nil(experiments.assign("welcome", "c" .. i)) end
    end)
  end)

  it("renders an arm's subject", function()
    with(AB, function()
      assert.are.equal("Welcome, Ana!",
        experiments.subject("welcome_subject", "short", { client_name = "Ana" }))
      assert.is_nil(experiments.subject("welcome_subject", "control", {}))
    end)
  end)
end)

describe("strategy.decide with an experiment", function()
  it("records the experiment and the arm, with a reason", function()
    with(AB, function()
      local d = strategy.decide({ message_type = "welcome", urgency = "high", client_id = "ana" },
        { email = "ana@example.com" }, 1796000000)
      local _, arm = experiments.assign("welcome", "ana")
      assert.are.equal("welcome_subject", d.experiment)
      assert.are.equal(arm.name, d.variant)
      assert.truthy(table.concat(d.reasons, "; "):find("experiment welcome_subject: variant "
        .. arm.name, 1, true))
    end)
  end)

  it("puts an arm's channel first and delays an arm's send", function()
    local exps = { w = { message_type = "welcome", variants = {
      { name = "control", weight = 0 },
      { name = "by_sms", weight = 1, channel = "sms", delay_minutes = 30 } } } }
    with(exps, function()
      local prefs = { email = "ana@example.com", phone = "+33612345678",
        consent = { given = true } }
      local d = strategy.decide({ message_type = "welcome", urgency = "high", client_id = "ana",
        channel = nil }, prefs, 1796000000)
      local base
      with({}, function()
        base = strategy.decide({ message_type = "welcome", urgency = "high", client_id = "ana" },
          prefs, 1796000000)
      end)
      assert.are.equal("by_sms", d.variant)
      if base.primary_channel ~= "sms" and (base.fallback_channels[1] == "sms"
          or base.fallback_channels[2] == "sms") then
        assert.are.equal("sms", d.primary_channel)
      end
      assert.are.equal(base.send_at + 1800, d.send_at)
    end)
  end)
end)
