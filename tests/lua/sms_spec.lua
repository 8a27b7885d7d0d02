-- lib/sms: fitting a rendered text into one SMS segment by shortening its
-- variable parts, never a link; GSM-7 / UCS-2 segment counting.
local sms = require("lib.sms")
local template = require("lib.template")
local content = require("content")

local function example(message_type)
  return require("types").TYPES[message_type].example
end

local URL = "https://app.heraldevents.com/p/PLN-2025-0412"
local SRC = "Hi {{ client_name }}, welcome to Herald Events! We're planning your {{ event_type }} " ..
  "on {{ date }}. Your plan: {{ plan_url }}"
local render = template.compile(SRC, "test.sms")

local function ctx(overrides)
  local c = {client_name = "Maria Alvarez", event_type = "wedding", date = "Jun 14", plan_url = URL}
  for k, v in pairs(overrides or {}) do c[k] = v end
  return c
end

describe("lib.sms", function()
  describe("counting (herald.sms_info)", function()
    it("counts GSM-7 in 160 / 153 septets, extension characters twice", function()
      assert.same({encoding = "GSM-7", units = 160, segments = 1, per_segment = 160},
        herald.sms_info(string.rep("a", 160)))
      assert.same({encoding = "GSM-7", units = 161, segments = 2, per_segment = 153},
        herald.sms_info(string.rep("a", 161)))
      assert.equal(4, herald.sms_info("{}").units + herald.sms_info("").units)
      assert.equal("GSM-7", herald.sms_info("Café é à ü ñ £ €").encoding)
    end)

    it("counts UCS-2 in 70 / 67 characters as soon as one is outside GSM-7", function()
      -- ë is not in the GSM 03.38 basic set (é is)
      assert.equal("UCS-2", herald.sms_info("Zoë").encoding)
      assert.same({encoding = "UCS-2", units = 70, segments = 1, per_segment = 70},
        herald.sms_info("Zoë" .. string.rep("a", 67)))
      assert.same({encoding = "UCS-2", units = 71, segments = 2, per_segment = 67},
        herald.sms_info("Zoë" .. string.rep("a", 68)))
      -- an emoji outside the BMP takes two UTF-16 units
      assert.equal(3, herald.sms_info("🎉a").units)
    end)

    it("never splits an escape sequence or a surrogate pair across segments", function()
      -- 153 euros: 306 septets, but 76 whole euros a segment -> 3, as carriers count
      assert.same({encoding = "GSM-7", units = 306, segments = 3, per_segment = 153},
        herald.sms_info(string.rep("€", 153)))
      assert.equal(1, herald.sms_info(string.rep("€", 80)).segments)
      assert.equal(2, herald.sms_info(string.rep("€", 81)).segments)
      -- 67 emoji: 134 UTF-16 units, 33 whole pairs a segment -> 3
      assert.same({encoding = "UCS-2", units = 134, segments = 3, per_segment = 67},
        herald.sms_info(string.rep("🎉", 67)))
      assert.equal(1, herald.sms_info(string.rep("🎉", 35)).segments)
    end)

    it("agrees with a model packer at every boundary", function()
      -- the model: cost 2 for the GSM-7 extension characters (or a character
      -- outside the BMP in UCS-2), and a character that does not fit whole in
      -- the current segment opens the next one
      local ext = {}
      for _, c in utf8.codes("\f^{}\\[~]|€") do ext[c] = true end
      local function model(text, gsm)
        local units, costs = 0, {}
        for _, c in utf8.codes(text) do
          local n = gsm and (ext[c] and 2 or 1) or (c > 0xFFFF and 2 or 1)
          costs[#costs + 1] = n
          units = units + n
        end
        local single, multi = gsm and 160 or 70, gsm and 153 or 67
        if units <= single then return units == 0 and 0 or 1 end
        local segs, used = 1, 0
        for _, n in ipairs(costs) do
          if used + n > multi then segs, used = segs + 1, 0 end
          used = used + n
        end
        return segs
      end
      local cases = {{"a", "€", true, {159, 160, 161, 162, 305, 306, 307, 459, 460}},
        {"a", "~", true, {306}}, {"ë", "🎉", false, {69, 70, 71, 72, 133, 134, 135, 201}}}
      local checked = 0
      for _, case in ipairs(cases) do
        local filler, wide, gsm, totals = case[1], case[2], case[3], case[4]
        for _, total in ipairs(totals) do
          for p = 0, total - 2 do
            -- one wide character at p, and a second one right after when it fits
            for _, extra in ipairs({0, 1}) do
              local rest = total - 2 - p - 2 * extra
              if rest >= 0 then
                local text = filler:rep(p) .. wide .. wide:rep(extra) .. filler:rep(rest)
                local info = herald.sms_info(text)
                assert.equal(total, info.units)
                assert.equal(gsm and "GSM-7" or "UCS-2", info.encoding)
                if info.segments ~= model(text, gsm) then
                  error(("%s at %d of %d units: %d segments, model %d"):format(
                    wide, p, total, info.segments, model(text, gsm)))
                end
                checked = checked + 1
              end
            end
          end
        end
      end
      assert.is_true(checked > 4000)
    end)
  end)

  describe("shorten", function()
    it("cuts at a word boundary and ends with three dots", function()
      assert.equal("Maximiliana...", sms.shorten("Maximiliana Bartholomew-Fitzgerald", 20))
      assert.equal("Bartholom...", sms.shorten("Bartholomew-Fitzgerald", 12)) -- no space: cut in the word
      assert.equal("short", sms.shorten("short", 10))
      assert.equal("Zoë Zoë...", sms.shorten("Zoë Zoë Zoë Zoë", 10))
    end)

    it("never shortens a value holding a link", function()
      local v = "see https://example.com/a/very/long/path/that/goes/on/and/on"
      assert.equal(v, sms.shorten(v, 12))
      assert.is_true(sms.has_url("www.example.com"))
      assert.is_false(sms.has_url("Maria Alvarez"))
    end)
  end)

  describe("fit", function()
    it("leaves a text that fits alone", function()
      local r = sms.fit(render, ctx(), {"client_name", "event_type"})
      assert.equal(render(ctx()), r.text)
      assert.equal("GSM-7", r.encoding)
      assert.equal(1, r.segments)
      assert.same({}, r.shortened)
    end)

    it("shortens a very long client name to stay in one segment, the link whole", function()
      local long = "Maximiliana Alexandra Bartholomew-Fitzgerald de la Vega y Montenegro"
      local c = ctx({client_name = long})
      assert.equal(2, herald.sms_info(render(c)).segments)
      local r = sms.fit(render, c, {"client_name", "event_type"})
      assert.equal(1, r.segments)
      assert.equal("GSM-7", r.encoding)
      assert.is_truthy(#r.text <= 160)
      assert.matches("^Hi Maximiliana[%w%- ]*%.%.%., welcome", r.text)
      assert.matches(URL:gsub("%p", "%%%0") .. "$", r.text)
      assert.same({"client_name"}, r.shortened)
      assert.equal(long, c.client_name) -- the caller's context is untouched
    end)

    it("shortens the longest variable part first and can shorten several", function()
      local c = ctx({client_name = "Christopher Montgomery-Wellington",
        event_type = "fortieth wedding anniversary celebration dinner and dance"})
      local r = sms.fit(render, c, {"client_name", "event_type"})
      assert.equal(1, r.segments)
      assert.same({"client_name", "event_type"}, r.shortened)
      assert.matches("^Hi Christopher%.%.%., welcome", r.text)
      assert.matches("your fortieth wedding%.%.%. on Jun 14%.", r.text)
    end)

    it("never cuts a URL, even when the text cannot fit", function()
      local long_url = "https://app.heraldevents.com/p/" .. string.rep("x", 150)
      local c = ctx({plan_url = long_url})
      local r = sms.fit(render, c, {"client_name", "event_type", "plan_url"})
      assert.equal(2, r.segments)
      assert.is_truthy(r.text:find(long_url, 1, true))
      assert.equal("Maria Alvarez", c.client_name)
      assert.matches("Hi Maria Alvarez,", r.text) -- shortening could not save a segment: sent as rendered
    end)

    it("shortens nested values by path", function()
      local r2 = template.compile("Dear {{ client.name }}, your plan is ready: {{ url }} " ..
        string.rep("-", 60), "nested.sms")
      local c = {client = {name = string.rep("Bartholomew ", 6)}, url = URL}
      local r = sms.fit(r2, c, {"client.name"})
      assert.equal(1, r.segments)
      assert.same({"client.name"}, r.shortened)
      assert.equal(string.rep("Bartholomew ", 6), c.client.name)
    end)

    it("counts a non-GSM character as UCS-2 (70 / 67) and keeps the name", function()
      local c = ctx({client_name = "Zoë Laurent"})
      local r = sms.fit(render, c, {"client_name", "event_type"})
      assert.equal("UCS-2", r.encoding)
      local n = utf8.len(r.text)
      assert.equal(n, r.units)
      assert.equal(math.ceil(n / 67), r.segments)
      assert.equal(3, r.segments) -- 136 characters
      assert.matches("Hi Zoë Laurent,", r.text)
      local e = sms.fit(render, ctx({event_type = "party 🎉"}), {"client_name", "event_type"})
      assert.equal("UCS-2", e.encoding)
      assert.equal(utf8.len(e.text) + 1, e.units) -- the emoji is a surrogate pair
    end)

    it("replaces typographic punctuation so the text stays GSM-7", function()
      assert.equal([[It's "fine" - really... ok]], sms.normalize("It’s “fine” – really… ok"))
      local r = sms.fit(render, ctx({client_name = "Renée O’Brien"}), {"client_name"})
      assert.equal("GSM-7", r.encoding) -- é is in GSM-7; the curly apostrophe became '
      assert.matches("O'Brien", r.text)
    end)
  end)

  describe("through content.render", function()
    before_each(function() content.reset() end)

    it("keeps every example SMS in one GSM-7 segment with a very long client name", function()
      for _, t in ipairs({"welcome", "budget_summary", "vendor_options", "selection_confirmation",
        "blueprint_delivery", "error_notification", "reminder"}) do
        local c = example(t)
        c.client_name = "Maximiliana Alexandra Bartholomew-Fitzgerald de la Vega"
        c.event_type = c.event_type .. " celebration weekend with family and friends"
        local r = content.render(t, "sms", c)
        assert.equal(1, r.segments, t .. ": " .. r.text)
        assert.equal("GSM-7", r.encoding, t)
        local url = c.blueprint_url and t == "blueprint_delivery" and c.blueprint_url or c.plan_url
        assert.is_truthy(r.text:find(url, 1, true), t .. ": link cut in " .. r.text)
      end
    end)

    it("reports UCS-2 for a client name outside GSM-7", function()
      local c = example("welcome")
      c.client_name = "Zoë Laurent"
      local r = content.render("welcome", "sms", c)
      assert.equal("UCS-2", r.encoding)
      assert.equal(math.ceil(utf8.len(r.text) / 67), r.segments)
      assert.matches("Zoë Laurent", r.text)
    end)
  end)
end)
