-- types.lua and lib/schema.lua: every shipped message type's declaration
-- refuses a context that lacks a required field or holds a wrong value,
-- naming the field's path; every type renders on every channel, with its
-- example and with only its required fields, without a slot that prints
-- nothing ("", None, nil, [], {}) unless the template guards it, in every
-- locale of templates/ (written in that locale); a template
-- that reads an undeclared or unguarded optional field fails
-- content.compile_all (so `herald check` and a live reload) with file and line.
local types = require("types")
local content = require("content")
local S = require("lib.schema")

local CHANNELS = {"email", "sms", "whatsapp"}

local function copy(v)
  if type(v) ~= "table" then return v end
  local c = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do c[k] = copy(x) end
  return c
end

-- A table as JSON would bring it: lists marked as herald.array.
local function as_json(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = as_json(x) end
  if v[1] ~= nil then return herald.array(c) end
  return c
end

-- The example cut down to what the declaration requires (plan_id included:
-- the engine always gives it).
local function required_only(fields, value)
  local out = {}
  for name, f in pairs(fields) do
    local v = value[name]
    if v ~= nil and (not S.is_optional(f) or f.from) then
      if f.kind == "object" then
        v = required_only(f.fields, v)
      elseif f.kind == "list" and f.of.kind == "object" then
        local items = {}
        for i, item in ipairs(v) do items[i] = required_only(f.of.fields, item) end
        v = items
      end
      out[name] = v
    end
  end
  return out
end

local function paths(problems)
  local list = {}
  for _, p in ipairs(problems) do list[#list + 1] = p.path end
  return table.concat(list, ", ")
end

-- A value of the wrong kind for a field, and one that is the right kind but
-- out of its limits (nil when the kind has none).
local function wrong_values(f)
  local k = f.kind
  local bad = {}
  if k == "string" then
    bad = {42, "", "   ", string.rep("x", (f.max or 4096) + 1)}
  elseif k == "date" then
    bad = {"2025-02-30", "14/06/2025", "2025-06-14T10:00:00Z", 20250614}
  elseif k == "url" then
    bad = {"javascript:alert(1)", "ftp://example.com/x", "https://", "https://a b.com/", 7}
  elseif k == "email" then
    bad = {"maria", "maria@", "@example.com", "maria@example"}
  elseif k == "currency" then
    bad = {"usd", "US", "EURO", 840}
  elseif k == "money" then
    bad = {"lots", -1, 1e13, true}
  elseif k == "integer" then
    bad = {"12", 1.5, (f.max or 1e9) + 1, (f.min or -1e9) - 1}
  elseif k == "number" then
    bad = {"4.5", (f.max or 1e9) + 1, (f.min or -1e9) - 1}
  elseif k == "boolean" then
    bad = {"true", 1}
  elseif k == "list" then
    bad = {"a list", herald.null}
    if f.max then
      local long = {}
      for i = 1, f.max + 1 do long[i] = "x" end
      bad[#bad + 1] = herald.array(long)
    end
  elseif k == "object" then
    bad = {"an object", herald.array({1, 2})}
  end
  return bad
end

for _, name in ipairs(types.names()) do
  local t = types.TYPES[name]
  describe("message type " .. name, function()
    it("accepts its example with no warning", function()
      local r = types.check(name, as_json(t.example))
      assert.is_true(r.known)
      assert.are.equal("", paths(r.problems))
      assert.are.equal(0, #r.warnings)
    end)

    it("names each missing required field", function()
      local function each_required(fields, value, prefix, fn)
        for field, f in pairs(fields) do
          local path = prefix == "" and field or (prefix .. "." .. field)
          if not S.is_optional(f) then fn(field, path, value) end
          if f.kind == "list" and f.of.kind == "object" and value[field] then
            each_required(f.of.fields, value[field][1], path .. "[0]", fn)
          elseif f.kind == "object" and value[field] then
            each_required(f.fields, value[field], path, fn)
          end
        end
      end
      local n = 0
      local ex = t.example
      each_required(t.fields, ex, "", function(field, path, holder)
        n = n + 1
        local saved = holder[field]
        holder[field] = nil
        local r = types.check(name, as_json(ex))
        holder[field] = saved
        assert.are.equal(path, paths(r.problems), "without " .. path)
        assert.matches("missing", r.problems[1].got, 1, true)
      end)
      assert.is_true(n > 0)
    end)

    it("names each field holding a wrong value, never quoting it", function()
      local ex = t.example
      local fieldnames = {}
      for field in pairs(t.fields) do fieldnames[#fieldnames + 1] = field end
      table.sort(fieldnames)
      for _, field in ipairs(fieldnames) do
        local f = t.fields[field]
        for _, v in ipairs(wrong_values(f)) do
          local ctx = copy(ex)
          ctx[field] = v
          local r = types.check(name, as_json(ctx))
          assert.are.equal(field, paths(r.problems),
            ("%s = %s (%s)"):format(field, tostring(v), S.describe(v)))
          if type(v) == "string" and #v > 3 then
            assert.not_matches(v, r.problems[1].got, 1, true)
          end
        end
      end
    end)

    it("keeps an undeclared field with a warning", function()
      local ctx = copy(t.example)
      ctx.budgetTotal = 5
      local r = types.check(name, as_json(ctx))
      assert.are.equal("", paths(r.problems))
      assert.are.equal("budgetTotal", r.warnings[1].path)
    end)

    for _, which in ipairs({"its example", "only its required fields"}) do
      for _, channel in ipairs(CHANNELS) do
        for _, locale in ipairs(content.locales()) do
          it(("renders on %s in %s with %s, no slot printing nothing"):format(channel, locale, which),
            function()
            local ctx = which == "its example" and copy(t.example)
              or required_only(t.fields, t.example)
            local empty = {}
            content.trace = function(text, tname, line, guarded)
              local s = tostring(type(text) == "table" and text[1] or text)
              local bare = s:gsub("^%s+", ""):gsub("%s+$", "")
              if not guarded and (bare == "" or bare == "None" or bare == "nil" or bare == "[]"
                or bare == "{}" or bare == "none") then
                empty[#empty + 1] = ("%s:%d printed %q"):format(tname, line, s)
              end
              return text
            end
            content.reset()
            local ok, out = pcall(content.render, name, channel, ctx, {locale = locale})
            content.trace = nil
            content.reset()
            assert.is_true(ok, tostring(out))
            assert.are.equal("", table.concat(empty, "; "))
            assert.are.equal(locale, out.locale) -- written in the locale asked for
            assert.is_nil(out.locale_fallback)
          end)
        end
      end
    end
  end)
end

describe("types.check", function()
  it("says an undeclared type is unknown", function()
    assert.is_false(types.check("birthday_wishes", {}).known)
  end)

  it("names list items from 0, nested", function()
    local ctx = as_json(copy(types.TYPES.vendor_options.example))
    ctx.categories[2].vendors[1].url = "javascript:alert(1)"
    ctx.categories[1].vendors[2].price = "cheap"
    local r = types.check("vendor_options", ctx)
    assert.are.equal("categories[0].vendors[1].price, categories[1].vendors[0].url",
      paths(r.problems))
  end)

  it("refuses null and an object where a list is declared", function()
    local ctx = as_json(copy(types.TYPES.welcome.example))
    ctx.venue = herald.null
    ctx.next_steps = {} -- JSON {}: an object, not a list
    local r = types.check("welcome", ctx)
    assert.are.equal("next_steps, venue", paths(r.problems))
    assert.are.equal("null", r.problems[2].got)
  end)

  it("refuses undeclared fields when the type is strict", function()
    local saved = types.TYPES.reminder.strict
    types.TYPES.reminder.strict = true
    local ctx = as_json(copy(types.TYPES.reminder.example))
    ctx.extra = "x"
    local r = types.check("reminder", ctx)
    types.TYPES.reminder.strict = saved
    assert.are.equal("extra", paths(r.problems))
  end)
end)

describe("types.prepare", function()
  it("fills declared defaults and leaves the caller's table alone", function()
    local ctx = required_only(types.TYPES.error_notification.fields,
      types.TYPES.error_notification.example)
    local p = types.prepare("error_notification", ctx)
    assert.are.equal("there", p.client_name)
    assert.matches("get in touch", p.action)
    assert.is_nil(ctx.action)
  end)

  it("requires what the engine fills in (plan_id) when rendering", function()
    local ctx = copy(types.TYPES.welcome.example)
    ctx.plan_id = nil
    assert.is_true(types.check("welcome", as_json(ctx)).known)
    assert.are.equal(0, #types.check("welcome", as_json(ctx)).problems)
    local ok, err = pcall(types.prepare, "welcome", ctx)
    assert.is_false(ok)
    assert.matches("plan_id: expected", err, 1, true)
  end)
end)

describe("content.compile_all against the declarations", function()
  local saved = {}
  local function put(name, src)
    if saved[name] == nil then saved[name] = herald.templates[name] end
    herald.templates[name] = src
  end
  after_each(function()
    for name, src in pairs(saved) do herald.templates[name] = src end
    saved = {}
    content.reset()
  end)

  it("passes for the shipped templates", function()
    local ok, errs = content.compile_all()
    assert.is_true(ok, table.concat(errs or {}, "\n"))
  end)

  it("names an undeclared variable with file and line", function()
    put("budget_ready.sms", "Hi {{ client_name }},\n{{ budgetTotal|currency(currency) }}")
    local ok, errs = content.compile_all()
    assert.is_nil(ok)
    assert.are.equal("budget_ready.sms:2: 'budgetTotal' is not declared by message type "
      .. "'budget_summary' (scripts/types.lua)", errs[1])
  end)

  it("names an undeclared attribute of a list's items", function()
    put("vendors_ready.sms", "{% for c in categories %}{% for v in c.vendors %}"
      .. "{{ v.colour }}{% endfor %}{% endfor %} {{ plan_url }}")
    local ok, errs = content.compile_all()
    assert.is_nil(ok)
    assert.matches("vendors_ready.sms:1: 'v.colour' is not declared", errs[1], 1, true)
  end)

  it("refuses an optional field printed without a guard, accepts it guarded", function()
    put("welcome.sms", "Hi {{ client_name }}, at {{ venue }}: {{ plan_url }}")
    local ok, errs = content.compile_all()
    assert.is_nil(ok)
    assert.matches("welcome.sms:1: optional field 'venue' is printed without a guard", errs[1],
      1, true)
    for _, src in ipairs({
      "Hi {{ client_name }}{% if venue %}, at {{ venue }}{% endif %}: {{ plan_url }}",
      "Hi {{ client_name }}, at {{ venue|default('a place to be chosen') }}: {{ plan_url }}",
      "Hi {{ client_name }}{{ (', at ' ~ venue) if venue else '' }}: {{ plan_url }}",
    }) do
      put("welcome.sms", src)
      ok, errs = content.compile_all()
      assert.is_true(ok, table.concat(errs or {}, "\n"))
    end
  end)

  it("sees through extends and include", function()
    put("layout.txt", (herald.templates["layout.txt"]) .. "\n{{ footer_note }}")
    local ok, errs = content.compile_all()
    assert.is_nil(ok)
    assert.matches("layout.txt:%d+: 'footer_note' is not declared", errs[1])
  end)
end)

describe("the JSON Schema of a type", function()
  it("is draft 2020-12 with the declared required fields", function()
    local s = S.json_schema(types.TYPES.reminder.fields, {title = "reminder"})
    assert.are.equal("https://json-schema.org/draft/2020-12/schema", s["$schema"])
    local req = {}
    for _, r in ipairs(s.required) do req[#req + 1] = r end
    assert.are.equal("due_date,due_item,event_date,event_type,plan_url", table.concat(req, ","))
    assert.are.equal("array", s.properties.other_items.type)
    assert.are.equal("date", s.properties.due_date.format)
  end)
end)
