-- busted specs for scripts/whatsapp.lua: whatsapp.choose(type, context, who, now),
-- free-form text inside the client's 24-hour window, the approved template
-- (typed parameters built from the context) outside it.

local whatsapp = require("whatsapp")
local types = require("types")

local NOW = 1796000000

local function who(last, closed, locale)
  return { last_inbound = { whatsapp = last }, window_closed = { whatsapp = closed },
    locale = locale }
end

describe("whatsapp.window", function()
  it("is open within 24 h of the client's last message", function()
    local open, why = whatsapp.window(who(NOW - 3600), NOW)
    assert.is_true(open)
    assert.truthy(why:find("1.0 h ago", 1, true), why)
  end)
  it("is closed when the client never wrote", function()
    local open, why = whatsapp.window({}, NOW)
    assert.is_false(open)
    assert.truthy(why:find("never written", 1, true), why)
  end)
  it("is closed 24 h after the last message, to the second", function()
    assert.is_true((whatsapp.window(who(NOW - 24 * 3600 + 1), NOW)))
    assert.is_false((whatsapp.window(who(NOW - 24 * 3600), NOW)))
  end)
  it("is closed when Meta said so after the client's last message", function()
    local open, why = whatsapp.window(who(NOW - 3600, NOW - 60), NOW)
    assert.is_false(open)
    assert.truthy(why:find("Meta said", 1, true), why)
    -- the client wrote again after that: open
    assert.is_true((whatsapp.window(who(NOW - 30, NOW - 60), NOW)))
  end)
end)

describe("whatsapp.choose", function()
  local function example(t) return types.TYPES[t].example end

  it("sends the rendered text inside the window", function()
    local r = whatsapp.choose("welcome", example("welcome"), who(NOW - 600), NOW)
    assert.are.equal("text", r.mode)
    assert.is_nil(r.template)
    assert.truthy(r.reason:find("inside the 24-hour window", 1, true), r.reason)
  end)

  for _, t in ipairs(types.names()) do
    it("builds the approved template of " .. t .. " from its example, every parameter typed",
      function()
        local r = whatsapp.choose(t, example(t), {}, NOW)
        assert.are.equal("template", r.mode)
        assert.truthy(r.template.name:match("^[a-z0-9_]+$"))
        assert.are.equal("en_US", r.template.language)
        assert.truthy(#r.template.components >= 1)
        for _, c in ipairs(r.template.components) do
          assert.truthy(c.type == "body" or c.type == "header" or c.type == "button")
          for _, p in ipairs(c.parameters) do
            assert.are.equal("text", p.type)
            assert.truthy(p.text:match("%S"), t .. ": an empty parameter")
            assert.falsy(p.text:find("\n", 1, true))
          end
        end
      end)
  end

  it("fills the body in the template's order from the context", function()
    local ctx = example("welcome")
    local r = whatsapp.choose("welcome", ctx, {}, NOW)
    local body = r.template.components[1]
    assert.are.equal("body", body.type)
    assert.are.equal(ctx.client_name, body.parameters[1].text)
    assert.are.equal(ctx.event_type, body.parameters[3].text)
    local button = r.template.components[2]
    assert.are.same({ type = "button", sub_type = "url", index = "0",
      parameters = { { type = "text", text = ctx.plan_id } } }, button)
  end)

  it("picks the template language from the client's locale, with a fallback", function()
    local ctx = example("welcome")
    assert.are.equal("fr", whatsapp.choose("welcome", ctx, { locale = "fr-CA" }, NOW).template.language)
    assert.are.equal("es", whatsapp.choose("welcome", ctx, { locale = "es" }, NOW).template.language)
    assert.are.equal("en_US", whatsapp.choose("welcome", ctx, { locale = "de" }, NOW).template.language)
  end)

  it("refuses, with the reason, a type without a template outside the window", function()
    local settings = require("settings")
    local saved = settings.whatsapp.templates.reminder
    settings.whatsapp.templates.reminder = nil
    local ok, err = pcall(whatsapp.choose, "reminder", example("reminder"), {}, NOW)
    settings.whatsapp.templates.reminder = saved
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no approved WhatsApp template for 'reminder'", 1, true), err)
    assert.truthy(tostring(err):find("never written", 1, true), err)
  end)
end)
