-- content.lua: every message type renders on every channel with its example
-- context (its example in scripts/types.lua), emails carry the CAN-SPAM footer and
-- balanced HTML, SMS texts fit one GSM-7 segment.
local content = require("content")
local settings = require("settings")

local TYPES = {"welcome", "budget_summary", "vendor_options", "selection_confirmation",
  "blueprint_delivery", "error_notification", "reminder"}
local CHANNELS = {"email", "sms", "whatsapp"}

local function example(message_type)
  return require("types").TYPES[message_type].example
end

local VOID = {area = true, base = true, br = true, col = true, embed = true, hr = true, img = true,
  input = true, link = true, meta = true, source = true, track = true, wbr = true}

-- nil when every opened element is closed in order (void elements need no end
-- tag), else a description of the first problem.
local function unbalanced(html)
  html = html:gsub("<!%-%-.-%-%->", ""):gsub("<![^>]*>", "")
  html = html:gsub("(<style[^>]*>).-(</style>)", "%1%2")
  local stack = {}
  for slash, name, rest in html:gmatch("<(/?)([%a][%w]*)([^>]*)>") do
    name = name:lower()
    if slash == "/" then
      local top = table.remove(stack)
      if top ~= name then return ("</%s> closes <%s>"):format(name, tostring(top)) end
    elseif not VOID[name] and not rest:match("/%s*$") then
      stack[#stack + 1] = name
    end
  end
  if #stack > 0 then return "unclosed <" .. stack[#stack] .. ">" end
  return nil
end

local function plain(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

describe("content", function()
  before_each(function() content.reset() end)

  describe("the tag balance checker", function()
    it("accepts balanced HTML with void elements and rejects the rest", function()
      assert.is_nil(unbalanced('<!DOCTYPE html><html><head><meta charset="utf-8"></head>' ..
        '<body><p>a<br>b<img src="x"/></p><!-- <b> --></body></html>'))
      assert.equal("</p> closes <b>", unbalanced("<p><b>x</p></b>"))
      assert.equal("</tr> closes <td>", unbalanced("<table><tr><td>x</tr></table>"))
      assert.equal("unclosed <div>", unbalanced("<div><p>x</p>"))
    end)
  end)

  it("trims white space as the patterns ^%s+ and %s+$ do, on generated strings", function()
    local alphabet = {" ", "\t", "\n", "\v", "\f", "\r", "a", "<", "\0", "\xc2\xa0", "é"}
    math.randomseed(16)
    for _ = 1, 5000 do
      local parts = {}
      for i = 1, math.random(0, 12) do parts[i] = alphabet[math.random(#alphabet)] end
      local s = table.concat(parts)
      assert.are.equal((s:gsub("^%s+", ""):gsub("%s+$", "")), content._trim(s), ("%q"):format(s))
    end
  end)

  it("compiles every template", function()
    local ok, errors = content.compile_all()
    assert.is_nil(errors)
    assert.is_true(ok)
  end)

  it("has a template for every message type on every channel", function()
    for _, t in ipairs(TYPES) do
      for _, ch in ipairs(CHANNELS) do
        local names = content.TEMPLATES[t][ch]
        assert.is_not_nil(names, t .. " on " .. ch)
        local list = type(names) == "table" and {names.subject, names.html, names.text} or {names}
        for _, n in ipairs(list) do assert.is_string(herald.templates[n], n) end
      end
    end
  end)

  for _, t in ipairs(TYPES) do
    describe(t, function()
      it("renders an email with balanced HTML, a one-line subject and the CAN-SPAM footer", function()
        local ctx = example(t)
        local r = content.render(t, "email", ctx)
        assert.is_string(r.subject)
        assert.is_truthy(#r.subject > 0)
        assert.is_nil(r.subject:find("[\r\n]"))
        assert.equal(r.subject, (r.subject:gsub("^%s+", ""):gsub("%s+$", "")))
        assert.is_nil(unbalanced(r.html))
        local company = content.context(t, "email", ctx).company
        for _, body in ipairs({r.html, r.text}) do
          assert.matches(plain(company.name), body)
          assert.matches(plain(company.address), body)
          assert.matches(plain(herald.config.public_url .. "/u/"), body)
        end
        assert.matches('<a href="' .. plain(herald.config.public_url) .. '/u/[^"]+"[^>]*>Unsubscribe</a>', r.html)
        assert.matches(plain(ctx.client_name), r.html)
        assert.matches(plain(ctx.client_name), r.text)
        assert.is_nil(r.text:find("<%/?%a[^>]*>"), "HTML tag in the text part")
        assert.is_nil(r.text:find("&%a+;"), "HTML entity in the text part")
        assert.matches("<!DOCTYPE html>", r.html)
        assert.matches('width="600"', r.html)
      end)

      it("renders an SMS in one GSM-7 segment", function()
        local r = content.render(t, "sms", example(t))
        assert.equal("GSM-7", r.encoding)
        assert.equal(1, r.segments)
        assert.is_truthy(#r.text <= 160)
        assert.equal(herald.sms_info(r.text).segments, r.segments)
        assert.matches("https://", r.text)
        assert.is_nil(r.text:find("{{", 1, true))
        assert.equal(r.text, (r.text:gsub("^%s+", ""):gsub("%s+$", "")))
      end)

      it("renders a WhatsApp text", function()
        local ctx = example(t)
        local r = content.render(t, "whatsapp", ctx)
        assert.is_string(r.text)
        assert.matches(plain(ctx.client_name), r.text)
        assert.matches("https://", r.text)
        assert.is_nil(r.text:find("<%/?%a[^>]*>"))
        assert.equal(r.text, (r.text:gsub("^%s+", ""):gsub("%s+$", "")))
      end)
    end)
  end

  it("puts the per-type data in the messages", function()
    local budget = content.render("budget_summary", "email", example("budget_summary"))
    assert.matches("%$48,000%.00", budget.html)
    assert.matches("Balanced", budget.text)
    assert.matches("%$44,750%.50", budget.text)
    local vendors = content.render("vendor_options", "whatsapp", example("vendor_options"))
    assert.matches("Zoë Laurent Photography: %$2,400%.00", vendors.text)
    local vhtml = content.render("vendor_options", "email", example("vendor_options")).html
    assert.matches('href="https://vendors%.heraldevents%.com/v/saffron%-and%-salt"', vhtml)
    assert.matches("Saffron &amp; Salt", vhtml)
    local sel = content.render("selection_confirmation", "email", example("selection_confirmation"))
    assert.matches("Cavallo Point Lodge", sel.text)
    assert.matches("Total: %$27,150%.00", sel.text)
    local bp = content.render("blueprint_delivery", "whatsapp", example("blueprint_delivery"))
    assert.matches("https://app%.heraldevents%.com/b/PLN%-2025%-0533%.pdf", bp.text)
    local err = content.render("error_notification", "sms", example("error_notification"))
    assert.matches("Please pick a new one by May 30%.", err.text)
    local rem = content.render("reminder", "email", example("reminder"))
    assert.matches("Final guest count", rem.subject)
    assert.matches("June 20", rem.subject)
    local welcome = content.render("welcome", "email", example("welcome"))
    assert.matches("Saturday, June 14, 2025", welcome.text)
  end)

  it("escapes client data in HTML but not in text, SMS or WhatsApp", function()
    local ctx = example("welcome")
    ctx.client_name = [[<script>alert("x")</script> O'Hara & Co]]
    local r = content.render("welcome", "email", ctx)
    assert.is_nil(r.html:find("<script>", 1, true))
    assert.matches("&lt;script&gt;alert%(&#34;x&#34;%)&lt;/script&gt; O&#39;Hara &amp; Co", r.html)
    assert.is_nil(unbalanced(r.html))
    assert.matches(plain(ctx.client_name), r.text)
    assert.matches(plain(ctx.client_name), r.subject)
    assert.matches(plain("O'Hara & Co"), content.render("welcome", "whatsapp", ctx).text)
  end)

  it("takes company and unsubscribe_url from the context when given", function()
    local ctx = example("reminder")
    ctx.company = {name = "Bloom & Vine Weddings", address = "22 Rue des Fleurs, 75004 Paris"}
    ctx.unsubscribe_url = "https://herald.example.com/u/tok123"
    local r = content.render("reminder", "email", ctx)
    assert.matches("Bloom &amp; Vine Weddings", r.html)
    assert.matches("22 Rue des Fleurs, 75004 Paris", r.html)
    assert.matches('href="https://herald%.example%.com/u/tok123"', r.html)
    assert.matches("Unsubscribe: https://herald%.example%.com/u/tok123", r.text)
  end)

  it("asks for List-Unsubscribe on the types settings.unsubscribe lists (all but errors)", function()
    assert.is_true(content.render("reminder", "email", example("reminder")).unsubscribe)
    assert.is_false(content.render("error_notification", "email",
      example("error_notification")).unsubscribe)
    local saved = settings.unsubscribe
    settings.unsubscribe = { default = false, reminder = true }
    local ok, err = pcall(function()
      assert.is_true(content.unsubscribe("reminder"))
      assert.is_false(content.unsubscribe("welcome"))
    end)
    settings.unsubscribe = saved
    assert(ok, err)
  end)

  it("fills the company defaults and does not modify the caller's context", function()
    local ctx = example("welcome")
    local c = content.context("welcome", "email", ctx)
    assert.is_nil(ctx.company)
    assert.is_nil(ctx.unsubscribe_url)
    assert.is_string(c.company.name)
    assert.is_string(c.company.address)
    assert.equal("welcome", c.message_type)
    assert.equal("email", c.channel)
  end)

  it("puts the support email in every email footer, from settings or the context", function()
    for _, t in ipairs(TYPES) do
      local r = content.render(t, "email", example(t))
      assert.matches("Questions%? support@example%.com", r.text)
      assert.matches('href="mailto:support@example%.com"', r.html)
    end
    local ctx = example("reminder")
    ctx.company = {support_email = "help@bloom-vine.fr"}
    local r = content.render("reminder", "email", ctx)
    assert.matches("Questions%? help@bloom%-vine%.fr", r.text)
    assert.not_matches("support@example%.com", r.html)
  end)

  it("identity() reports the shipped placeholder address and support email", function()
    local id = content.identity()
    assert.equal(2, #id.problems)
    assert.matches("address is the shipped placeholder", id.problems[1])
    assert.matches("support_email is a placeholder", id.problems[2])
    local settings = require("settings")
    local saved = settings.company
    settings.company = {name = "Bloom & Vine", address = "8 Quai des Fleurs, 69002 Lyon",
      support_email = "help@bloom-vine.fr"}
    local ok = content.identity()
    settings.company = {name = "Bloom & Vine", address = "  ", support_email = "nobody"}
    local bad = content.identity()
    settings.company = saved
    assert.same({}, ok.problems)
    assert.equal("help@bloom-vine.fr", ok.company.support_email)
    assert.equal(2, #bad.problems)
    assert.matches("address is empty", bad.problems[1])
  end)

  it("raises an error naming an unknown message type or channel", function()
    local ok, err = pcall(content.render, "birthday_wishes", "email", {})
    assert.is_false(ok)
    assert.matches("unknown message type 'birthday_wishes'", err)
    ok, err = pcall(content.render, "welcome", "pigeon", {})
    assert.is_false(ok)
    assert.matches("unknown channel 'pigeon'", err)
  end)

  it("refuses a context that does not match its type's declaration, naming each field", function()
    local ctx = example("budget_summary")
    local bad = {}
    for k, v in pairs(ctx) do bad[k] = v end
    bad.strategies = {{name = "x", total = "lots", description = "d"}}
    bad.event_type = nil
    local ok, err = pcall(content.render, "budget_summary", "email", bad)
    assert.is_false(ok)
    assert.matches("does not match message type 'budget_summary'", err, 1, true)
    assert.matches("event_type: expected a string of 1 to 100 characters, got nothing", err, 1, true)
    assert.matches("strategies[0].total: expected an amount", err, 1, true)
    assert.not_matches("lots", err, 1, true) -- never the value
  end)

  it("raises a template error with the template name and line", function()
    local saved = herald.templates["budget_ready.sms"]
    herald.templates["budget_ready.sms"] = "Hi {{ client_name }},\n{{ total_budget / 0 }}"
    content.reset()
    local ok, err = pcall(content.render, "budget_summary", "sms", example("budget_summary"))
    herald.templates["budget_ready.sms"] = saved
    content.reset()
    assert.is_false(ok)
    assert.matches("^budget_ready%.sms:2: ", err)
  end)

  describe("compile_all", function()
    local saved
    before_each(function() saved = {} end)
    after_each(function()
      for name, src in pairs(saved) do
        herald.templates[name] = src ~= false and src or nil
      end
      content.reset()
    end)
    local function put(name, src)
      if saved[name] == nil then saved[name] = herald.templates[name] or false end
      herald.templates[name] = src
    end

    it("reports a broken template as name:line: message", function()
      put("reminder.sms", "Reminder:\n{{ due_item|nope }}")
      local ok, errors = content.compile_all()
      assert.is_nil(ok)
      assert.same({"reminder.sms:2: unknown filter 'nope'"}, errors)
    end)

    it("reports a template a message type needs that is missing", function()
      put("welcome.whatsapp", nil)
      local ok, errors = content.compile_all()
      assert.is_nil(ok)
      assert.equal(1, #errors)
      assert.matches("^welcome%.whatsapp:0: missing", errors[1])
    end)

    it("reports a broken layout through the templates that extend it", function()
      put("layout.html", "<html>{% block content %}</html>")
      local ok, errors = content.compile_all()
      assert.is_nil(ok)
      assert.matches("^layout%.html:1: unclosed 'block'", errors[1])
    end)

    it("recompiles a template whose source changed", function()
      local ctx = example("reminder")
      local before = content.render("reminder", "whatsapp", ctx).text
      put("reminder.whatsapp", "Changed {{ client_name }}")
      assert.equal("Changed Elena Petrova", content.render("reminder", "whatsapp", ctx).text)
      assert.is_not.equal(before, "Changed Elena Petrova")
    end)
  end)
end)
