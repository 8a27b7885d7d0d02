-- busted specs for scripts/inbound.lua: inbound.keyword(channel, text), what
-- a text a client sends us means (settings.inbound holds the words).

local keyword = require("inbound").keyword

describe("inbound.keyword", function()
  local cases = {
    { "sms", "STOP", "opt_out", "STOP" },
    { "sms", "  stop\n", "opt_out", "STOP" },
    { "sms", "StopAll", "opt_out", "STOPALL" },
    { "sms", "unsubscribe", "opt_out", "UNSUBSCRIBE" },
    { "sms", "Cancel", "opt_out", "CANCEL" },
    { "sms", "end", "opt_out", "END" },
    { "sms", "QUIT", "opt_out", "QUIT" },
    { "sms", "start", "opt_in", "START" },
    { "sms", "Yes", "opt_in", "YES" },
    { "sms", "UNSTOP", "opt_in", "UNSTOP" },
    { "sms", "help", "help", "HELP" },
    { "sms", "info", "help", "INFO" },
    { "whatsapp", "Stop", "opt_out", "STOP" },
    { "whatsapp", "START", "opt_in", "START" },
    -- WhatsApp has no carrier keywords: only Herald's own list
    { "whatsapp", "QUIT", "none" },
    { "whatsapp", "YES", "none" },
    -- a keyword is the whole text
    { "sms", "stop it please", "none" },
    { "sms", "STOP!", "none" },
    { "sms", "S T O P", "none" },
    { "sms", "", "none" },
    { "sms", "   ", "none" },
    { "sms", "Hello, is the venue confirmed?", "none" },
    { "email", "STOP", "none" },
    { "sms", string.rep("STOP", 5000), "none" },
  }
  for _, c in ipairs(cases) do
    it(string.format("%s %q -> %s", c[1], #c[2] > 40 and c[2]:sub(1, 20) .. "..." or c[2], c[3]),
      function()
        local r = keyword(c[1], c[2])
        assert.are.equal(c[3], r.action)
        assert.are.equal(c[4], r.keyword)
      end)
  end

  it("answers none for a text that is not a string", function()
    assert.are.equal("none", keyword("sms", nil).action)
    assert.are.equal("none", keyword("sms", 42).action)
  end)

  it("reads the words from settings.inbound, so an operator can add one", function()
    local settings = require("settings")
    local saved = settings.inbound
    settings.inbound = { sms = { opt_out = { "arret" } } }
    local ok, r = pcall(keyword, "sms", "ARRET")
    settings.inbound = saved
    assert.is_true(ok)
    assert.are.same({ action = "opt_out", keyword = "ARRET" }, r)
  end)
end)
