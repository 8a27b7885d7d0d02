-- Locales (content.lua): the tag's shape, the fallback chain, which locale a
-- client's message is written in and why, the per-locale templates'
-- completeness and name checks (compile_all); and the locale-aware date,
-- number and currency filters (lib/template/filters.lua).
local content = require("content")
local settings = require("settings")
local template = require("lib.template")
local types = require("types")

local NBSP, NNBSP = "\u{A0}", "\u{202F}"

-- Runs fn with extra files in herald.templates, then takes them out again.
local function with_templates(extra, fn)
  local saved = {}
  for name, source in pairs(extra) do
    saved[name] = herald.templates[name] or false
    herald.templates[name] = source
  end
  content.reset()
  local ok, err = pcall(fn)
  for name, old in pairs(saved) do herald.templates[name] = old or nil end
  content.reset()
  if not ok then error(err, 0) end
end

local function render(src, ctx, opts)
  return template.compile(src, "t.txt")(ctx or {}, opts)
end

describe("content.locale_tag", function()
  it("writes a tag in BCP 47's case, from - or _", function()
    assert.are.equal("fr-CA", content.locale_tag("fr_ca"))
    assert.are.equal("fr-CA", content.locale_tag("FR-CA"))
    assert.are.equal("zh-Hant-TW", content.locale_tag("ZH_hant_tw"))
    assert.are.equal("es-419", content.locale_tag("es-419"))
    assert.are.equal("de", content.locale_tag("DE"))
  end)

  it("refuses what is not a tag, without scanning a long string", function()
    for _, bad in ipairs({"", "f", "french", "french!", "fr--CA", "fr-", "fr-C", "1fr", "fr CA",
      "fr-toolongsubtag", string.rep("a", 100000)}) do
      local tag, why = content.locale_tag(bad)
      assert.is_nil(tag, bad:sub(1, 20))
      assert.is_string(why)
    end
    assert.is_nil(content.locale_tag(42))
  end)
end)

describe("content.locale_chain", function()
  it("goes from the region to the language to the default", function()
    assert.are.same({"fr-CA", "fr", "en"}, content.locale_chain("fr-CA"))
    assert.are.same({"zh-Hant-TW", "zh-Hant", "zh", "en"}, content.locale_chain("zh-Hant-TW"))
    assert.are.same({"en-GB", "en"}, content.locale_chain("en-GB"))
    assert.are.same({"en"}, content.locale_chain(nil))
  end)

  it("puts settings.locales.fallbacks of the language before the default", function()
    local saved = settings.locales.fallbacks
    settings.locales.fallbacks = {ca = {"es"}, pt = {"es-ES"}}
    local a, b = content.locale_chain("ca-ES"), content.locale_chain("pt-BR")
    settings.locales.fallbacks = saved
    assert.are.same({"ca-ES", "ca", "es", "en"}, a)
    assert.are.same({"pt-BR", "pt", "es-ES", "es", "en"}, b)
  end)
end)

describe("content.choose_locale", function()
  it("lists the locales templates/ has, the default first", function()
    assert.are.same({"en", "es", "fr"}, content.locales())
  end)

  it("gives a fr-CA client French without a fallback reason", function()
    for _, channel in ipairs({"email", "sms", "whatsapp"}) do
      local r = content.choose_locale("welcome", channel, "fr-CA")
      assert.are.equal("fr", r.locale)
      assert.are.equal("fr-CA", r.requested)
      assert.is_nil(r.fallback)
    end
  end)

  it("gives a de client the default, with the reason", function()
    local r = content.choose_locale("reminder", "sms", "de")
    assert.are.equal("en", r.locale)
    assert.are.equal("no templates for de (templates/de/ does not exist); written in the default, en",
      r.fallback)
  end)

  it("gives an en-GB client the default's templates as its own language", function()
    local r = content.choose_locale("welcome", "email", "en_GB")
    assert.are.equal("en", r.locale)
    assert.is_nil(r.fallback)
  end)

  it("says why when the client's locale is no tag, and echoes only a short one", function()
    local r = content.choose_locale("welcome", "email", "fr!!")
    assert.are.equal("en", r.locale)
    assert.matches("not a locale tag", r.fallback, 1, true)
    assert.are.equal("fr!!", r.requested)
    r = content.choose_locale("welcome", "email", string.rep("x", 5000))
    assert.is_nil(r.requested)
    assert.matches("not a locale tag", r.fallback, 1, true)
  end)

  it("no locale: the default, nothing to record", function()
    local r = content.choose_locale("welcome", "email", nil)
    assert.are.equal("en", r.locale)
    assert.is_nil(r.fallback)
  end)

  it("takes a region's folder, and what it lacks from its language's", function()
    with_templates({["fr-CA/welcome.subject"] = "Bienvenue au Québec, {{ client_name }}"}, function()
      local r = content.choose_locale("welcome", "email", "fr-CA")
      assert.are.equal("fr-CA", r.locale)
      local out = content.render("welcome", "email", types.TYPES.welcome.example, {locale = "fr-CA"})
      assert.are.equal("Bienvenue au Québec, Maria Alvarez", out.subject)
      assert.matches("Merci d’avoir choisi", out.text, 1, true) -- from fr/welcome.txt
      assert.are.equal("fr-CA", out.locale)
      -- an fr client does not read fr-CA's
      out = content.render("welcome", "email", types.TYPES.welcome.example, {locale = "fr"})
      assert.matches("^Bienvenue chez", out.subject)
      assert.is_true(content.compile_all())
    end)
  end)

  it("follows settings.locales.fallbacks to another language, and says so", function()
    local saved = settings.locales.fallbacks
    settings.locales.fallbacks = {ca = {"es"}}
    local r = content.choose_locale("welcome", "sms", "ca")
    settings.locales.fallbacks = saved
    assert.are.equal("es", r.locale)
    assert.are.equal("no templates for ca (templates/ca/ does not exist); written in es", r.fallback)
  end)
end)

describe("content.render in a locale", function()
  local ex = types.TYPES.budget_summary.example

  it("writes the email, SMS and WhatsApp of a fr-CA client in French", function()
    local email = content.render("budget_summary", "email", ex, {locale = "fr-CA"})
    assert.are.equal("Votre corporate retreat : 3 façons de respecter votre budget", email.subject)
    assert.matches('<html lang="fr">', email.html, 1, true)
    assert.matches("Se désabonner", email.html, 1, true)
    assert.matches("48" .. NNBSP .. "000,00" .. NBSP .. "$US", email.text, 1, true)
    assert.matches("du 18 septembre 2025", email.text, 1, true)
    assert.are.equal("fr", email.locale)
    assert.are.equal("fr-CA", email.locale_requested)
    assert.is_nil(email.locale_fallback)
    local sms = content.render("budget_summary", "sms", ex, {locale = "fr-CA"})
    assert.matches("^Bonjour ", sms.text)
    -- plain spaces in a text: a no-break one would make it UCS-2
    assert.matches("48 000,00 $US", sms.text, 1, true)
    assert.are.equal("GSM-7", sms.encoding)
    local wa = content.render("budget_summary", "whatsapp", ex, {locale = "fr-CA"})
    assert.matches("Budget : *48" .. NNBSP .. "000,00" .. NBSP .. "$US*", wa.text, 1, true)
    assert.are.equal("fr", wa.locale)
  end)

  it("writes Spanish for es", function()
    local email = content.render("budget_summary", "email", ex, {locale = "es"})
    assert.matches("^Su corporate retreat: 3 formas", email.subject)
    assert.matches("48.000,00" .. NBSP .. "US$", email.text, 1, true)
    assert.matches("del 18 de septiembre de 2025", email.text, 1, true)
    assert.matches("Darse de baja", email.html, 1, true)
  end)

  it("writes the default for de, with the reason in the result", function()
    local email = content.render("budget_summary", "email", ex, {locale = "de"})
    assert.matches("^Your corporate retreat budget", email.subject)
    assert.matches("$48,000.00", email.text, 1, true)
    assert.are.equal("en", email.locale)
    assert.are.equal("de", email.locale_requested)
    assert.matches("no templates for de", email.locale_fallback, 1, true)
  end)

  it("gives a field's default in the locale's language", function()
    local ctx = {event_type = "mariage", event_date = "2027-03-12", plan_id = "P-1",
      plan_url = "https://example.com/p", error_summary = "Le traiteur a annulé."}
    local fr = content.render("error_notification", "email", ctx, {locale = "fr"})
    assert.matches("Bonjour Madame, Monsieur,", fr.text, 1, true)
    assert.matches("Que faire ? Contactez-nous : nous trouverons ensemble une solution.", fr.text,
      1, true)
    assert.matches("du 12 mars 2027", fr.text, 1, true)
    local en = content.render("error_notification", "email", ctx)
    assert.matches("Hi there,", en.text, 1, true)
  end)
end)

describe("content.compile_all and locales", function()
  it("refuses a locale whose templates are incomplete", function()
    with_templates({["de/welcome.subject"] = "Willkommen, {{ client_name }}!"}, function()
      local ok, errs = content.compile_all()
      assert.is_nil(ok)
      local all = table.concat(errs, "\n")
      assert.matches("templates/de:0: locale de is incomplete: no blueprint_delivery.subject", all, 1,
        true)
      assert.matches("remove the folder", all, 1, true)
    end)
  end)

  it("checks a locale's templates against the type, naming the locale's file", function()
    with_templates({["fr/welcome.subject"] = "Bienvenue {{ clientname }}"}, function()
      local ok, errs = content.compile_all()
      assert.is_nil(ok)
      assert.matches("fr/welcome.subject:1:", table.concat(errs, "\n"), 1, true)
      assert.matches("clientname", table.concat(errs, "\n"), 1, true)
    end)
  end)

  it("compiles a locale's template with the locale's layout, naming its file", function()
    with_templates({["fr/layout.txt"] = "{% block content %}{% endblock %}\n{{ nope( }}"}, function()
      local ok, errs = content.compile_all()
      assert.is_nil(ok)
      assert.matches("fr/layout.txt:2:", table.concat(errs, "\n"), 1, true)
    end)
  end)

  it("refuses a folder that is no locale tag, and one for the default", function()
    with_templates({["partials/x.html"] = "x", ["en/welcome.subject"] = "x"}, function()
      local ok, errs = content.compile_all()
      assert.is_nil(ok)
      local all = table.concat(errs, "\n")
      assert.matches("partials/x.html:0: a folder of templates/ is a locale's", all, 1, true)
      assert.matches("en/welcome.subject:0: the default locale's templates", all, 1, true)
    end)
  end)

  it("accepts the shipped templates", function()
    assert.is_true(content.compile_all())
  end)
end)

describe("the date filter in a locale", function()
  local d = {d = "2027-03-12"}
  it("writes the named formats per locale", function()
    local want = {
      en = {"3/12/27", "Mar 12, 2027", "March 12, 2027", "Friday, March 12, 2027"},
      fr = {"12/03/2027", "12 mars 2027", "12 mars 2027", "vendredi 12 mars 2027"},
      es = {"12/3/27", "12 mar 2027", "12 de marzo de 2027", "viernes, 12 de marzo de 2027"},
    }
    for locale, list in pairs(want) do
      for i, f in ipairs({"short", "medium", "long", "full"}) do
        assert.are.equal(list[i], render('{{ d|date("' .. f .. '") }}', d, {locale = locale}),
          locale .. " " .. f)
      end
      assert.are.equal(list[3], render("{{ d|date }}", d, {locale = locale}))
    end
  end)

  it("uses the locale's words in a pattern", function()
    assert.are.equal("sam. 1 févr.", render('{{ d|date("%a %e %b") }}', {d = "2025-02-01"},
      {locale = "fr-CA"}))
    assert.are.equal("miércoles, agosto", render('{{ d|date("%A, %B") }}', {d = "2029-08-01"},
      {locale = "es"}))
    assert.are.equal("3:05 p. m.", render('{{ d|date("%-I:%M %p") }}', {d = "2027-03-12T15:05"},
      {locale = "es"}))
  end)

  it("takes a locale= argument over the render's", function()
    assert.are.equal("12 de marzo de 2027", render('{{ d|date("long", locale="es") }}', d,
      {locale = "fr"}))
    local ok, err = pcall(render, '{{ d|date(locale="xx") }}', d)
    assert.is_false(ok)
    assert.matches("date: no formatting data for locale 'xx'", err, 1, true)
  end)

  it("is English outside a locale render, and after one", function()
    render("{{ d|date }}", d, {locale = "fr"})
    assert.are.equal("March 12, 2027", render("{{ d|date }}", d))
  end)

  it("refuses a long string before matching it", function()
    local ok, err = pcall(render, "{{ d|date }}", {d = string.rep("2", 70000)}, {locale = "fr"})
    assert.is_false(ok)
    assert.matches("a string of 70000 bytes", err, 1, true)
  end)
end)

describe("the currency and number filters in a locale", function()
  it("place the symbol and separators as the locale writes them", function()
    local cases = {
      {"en", "EUR", 1234.5, "€1,234.50"}, {"en", "USD", 1234.5, "$1,234.50"},
      {"en", "USD", -1234.5, "-$1,234.50"}, {"en", "CHF", 5, "CHF 5.00"},
      {"fr", "EUR", 1234.5, "1" .. NNBSP .. "234,50" .. NBSP .. "€"},
      {"fr", "USD", 12345678.9, "12" .. NNBSP .. "345" .. NNBSP .. "678,90" .. NBSP .. "$US"},
      {"fr", "JPY", 1234, "1" .. NNBSP .. "234" .. NBSP .. "JPY"},
      {"fr", "EUR", 999.99, "999,99" .. NBSP .. "€"},
      {"es", "EUR", 1234.5, "1.234,50" .. NBSP .. "€"},
      {"es", "USD", -0.004, "0,00" .. NBSP .. "US$"},
      {"es", "CHF", 5, "5,00" .. NBSP .. "CHF"},
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[4], render("{{ x|currency(code) }}", {x = c[3], code = c[2]},
        {locale = c[1]}), table.concat({c[1], c[2], tostring(c[3])}, " "))
    end
  end)

  it("write plain spaces when the render asks (an SMS)", function()
    assert.are.equal("1 234,50 €", render("{{ x|currency('EUR') }}", {x = 1234.5},
      {locale = "fr", plain_spaces = true}))
  end)

  it("number: up to three decimals, or as many as asked", function()
    assert.are.equal("4,8", render("{{ x|number }}", {x = 4.8}, {locale = "fr"}))
    assert.are.equal("1" .. NNBSP .. "234,568", render("{{ x|number }}", {x = 1234.5678},
      {locale = "fr"}))
    assert.are.equal("12.345", render("{{ x|number }}", {x = 12345}, {locale = "es"}))
    assert.are.equal("1,234.50", render("{{ x|number(2) }}", {x = 1234.5}))
    assert.are.equal("-0,5", render("{{ x|number }}", {x = -0.5}, {locale = "es"}))
    local ok, err = pcall(render, "{{ x|number(-1) }}", {x = 1})
    assert.is_false(ok)
    assert.matches("decimals must be an integer from 0 to 10", err, 1, true)
  end)

  it("refuse what is not a number, never quoting a long string", function()
    local ok, err = pcall(render, "{{ x|currency }}", {x = string.rep("9", 100)}, {locale = "fr"})
    assert.is_false(ok)
    assert.matches("currency: expected a number, got str", err, 1, true)
    assert.not_matches("9999", err, 1, true)
  end)
end)

describe("whatsapp.choose and the locale", function()
  local whatsapp = require("whatsapp")
  local ctx = {client_name = "Zoë", event_type = "mariage", event_date = "2027-03-12",
    plan_id = "P-1", plan_url = "https://example.com/p"}

  local function template(locale)
    local r = whatsapp.choose("welcome", ctx, {locale = locale}, os.time())
    assert.are.equal("template", r.mode)
    local body
    for _, c in ipairs(r.template.components) do
      if c.type == "body" then body = c.parameters end
    end
    return r.template.language, body[4].text
  end

  it("sends the template in the language the text would be written in", function()
    assert.are.same({"fr", "12 mars 2027"}, {template("fr-CA")})
    assert.are.same({"es", "12 de marzo de 2027"}, {template("es")})
    assert.are.same({"en_US", "March 12, 2027"}, {template("de")})
    assert.are.same({"en_US", "March 12, 2027"}, {template(nil)})
    -- the client's own variant when it is the language written in
    assert.are.same({"en_GB", "March 12, 2027"}, {template("en-GB")})
  end)

  it("follows settings.locales.fallbacks like the text", function()
    local saved = settings.locales.fallbacks
    settings.locales.fallbacks = {ca = {"es"}}
    content.reset()
    local ok, lang, date = pcall(template, "ca")
    settings.locales.fallbacks = saved
    content.reset()
    assert.is_true(ok, tostring(lang))
    assert.are.same({"es", "12 de marzo de 2027"}, {lang, date})
  end)
end)
