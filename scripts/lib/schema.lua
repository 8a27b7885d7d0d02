-- lib/schema.lua - what a message type's context must hold: the field kinds
-- scripts/types.lua declares with, the check of a context against a
-- declaration, and the same declaration as JSON Schema (draft 2020-12) for the
-- workflows that call Herald (GET /api/crm/message-types).
--
--   local S = require("lib.schema")
--   fields = {
--     client_name = S.string{max = 100, default = "there"},
--     event_date  = S.date{},
--     vendors     = S.list(S.object{name = S.string{max = 100}, url = S.url{optional = true}},
--                          {max = 20}),
--   }
--   S.check(fields, context, {strict = false, render = false})
--     -> problems, warnings   (lists; empty when the context is fine)
--   S.prepare(fields, context, locale?) -> a copy of context with the defaults filled
--       in (a field's defaults = {fr = "..."} in the locale's language)
--   S.json_schema(fields, {strict = ...}) -> a JSON Schema table
--
-- Kinds: string, integer, number, boolean, date (YYYY-MM-DD, a real day),
-- url (http or https), email, currency (ISO 4217 code), money (an amount >= 0),
-- list(of, opts), object(fields, opts). Every field is required unless it says
-- optional = true or has a default; `from = "request"` marks a field the engine
-- fills in itself before rendering (plan_id from the request): optional in a
-- request, required when rendering. Options: max / min (characters for strings,
-- items for lists, the value for numbers), enum (strings), description.
--
-- The check and the JSON Schema are one definition read twice: whatever one
-- accepts, the other accepts (tests/integration/test_message_types.py compares
-- them with python3-jsonschema on generated contexts). Strings count
-- characters (code points) as JSON Schema does; a string must hold something
-- other than spaces; null is never a value (leave the field out instead).
-- Problems name the field's path (vendors[2].url, lists counted from 0), what
-- was expected and what came, described by its kind and size, never its value.

local M = {}

local ARRAY_MT = herald and herald.array and getmetatable(herald.array({})) or nil
local NULL = herald and herald.null

local MAX_PROBLEMS = 50
local STRING_MAX = 4096 -- acceptance refuses longer strings anyway (accept.c)
local MONEY_MAX = 1e12

local function kind(name)
  return function(opts)
    local f = {kind = name}
    for k, v in pairs(opts or {}) do f[k] = v end
    return f
  end
end

M.string, M.integer, M.number, M.boolean = kind("string"), kind("integer"), kind("number"),
  kind("boolean")
M.date, M.url, M.email = kind("date"), kind("url"), kind("email")
M.currency, M.money = kind("currency"), kind("money")

function M.list(of, opts)
  local f = kind("list")(opts)
  f.of = of
  return f
end

function M.object(fields, opts)
  local f = kind("object")(opts)
  f.fields = fields
  return f
end

function M.is_optional(f) return f.optional == true or f.default ~= nil or f.from ~= nil end

---------------------------------------------------------------------------
-- What a value is, in words that never quote it.

-- JSON arrays arrive marked (herald.array); a JSON object is a plain table.
-- An empty plain table is ambiguous: a request's context (from JSON) must say
-- what it means, a context built in Lua (`lenient`: tests, the console) may
-- use {} for an empty list.
local function is_array(v, lenient)
  if type(v) ~= "table" then return false end
  if ARRAY_MT and getmetatable(v) == ARRAY_MT then return true end
  if ARRAY_MT and not lenient then return false end
  return getmetatable(v) == nil and (v[1] ~= nil or next(v) == nil)
end

local function is_object(v)
  return type(v) == "table" and v ~= NULL and getmetatable(v) == nil and v[1] == nil
end

local function describe(v)
  if v == nil then return "nothing" end
  if v == NULL then return "null" end
  local t = type(v)
  if t == "string" then
    return ("a string of %d characters"):format(utf8.len(v) or #v)
  elseif t == "boolean" then
    return "a boolean"
  elseif t == "number" then
    if math.type(v) == "integer" or v == math.floor(v) then return "an integer" end
    return "a number with a fraction"
  elseif is_array(v) then
    return ("a list of %d items"):format(#v)
  elseif t == "table" then
    return "an object"
  end
  return t
end

local function range_words(min, max, unit)
  if min and max then return ("%s to %s %s"):format(min, max, unit) end
  if max then return ("at most %s %s"):format(max, unit) end
  if min then return ("at least %s %s"):format(min, unit) end
  return nil
end

local function expected(f)
  local k = f.kind
  if k == "string" then
    local r = range_words(f.min or 1, f.max or STRING_MAX, "characters")
    if f.enum then return "one of " .. table.concat(f.enum, ", ") end
    return "a string of " .. r
  elseif k == "integer" or k == "number" then
    local what = k == "integer" and "an integer" or "a number"
    local lo, hi = f.min, f.max
    if lo and hi then return ("%s from %s to %s"):format(what, lo, hi) end
    if lo then return ("%s of at least %s"):format(what, lo) end
    if hi then return ("%s of at most %s"):format(what, hi) end
    return what
  elseif k == "boolean" then
    return "true or false"
  elseif k == "date" then
    return "a date like 2026-06-14 (YYYY-MM-DD)"
  elseif k == "url" then
    return "an http or https URL"
  elseif k == "email" then
    return "an email address"
  elseif k == "currency" then
    return "a currency code of 3 capital letters (ISO 4217)"
  elseif k == "money" then
    return ("an amount from 0 to %s"):format(f.max or "1000000000000")
  elseif k == "list" then
    return "a list of " .. range_words(f.min or 0, f.max, "items")
  elseif k == "object" then
    return "an object"
  end
  return k
end

---------------------------------------------------------------------------
-- The formats, written once as patterns that mean the same in Lua and in
-- the JSON Schema's ECMA-262 regular expressions.

-- END is "nothing follows": `$` alone also matches before a final newline in
-- Python's re (python3-jsonschema), never in ECMA-262 or here.
local END = "(?![\\s\\S])"
local DATE_RE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}" .. END
local URL_RE = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][!-~]*)?" .. END
local EMAIL_RE = "^[!-?A-~]+@[!-?A-Z^-~]+\\.[!-?A-Z^-~]+" .. END
local CURRENCY_RE = "^[A-Z]{3}" .. END
local SOMETHING_RE = "[^\\u0000-\\u0020]" -- not only spaces and control characters

local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MDAYS = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

local function is_date(s)
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return false end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if y < 1 or m < 1 or m > 12 or d < 1 then return false end
  return d <= (m == 2 and leap(y) and 29 or MDAYS[m])
end

local function is_url(s)
  local rest = s:match("^https?://(.*)$")
  if not rest then return false end
  local host, tail = rest:match("^([%w%.%-]+)(.*)$")
  if not host then return false end
  local port, after = tail:match("^:(%d+)(.*)$")
  if port then
    if #port > 5 then return false end
    tail = after
  elseif tail:sub(1, 1) == ":" then
    return false
  end
  if tail == "" then return true end
  return tail:find("^[/?#][!-~]*$") ~= nil
end

local function is_email(s)
  -- local part: printable ASCII but '@'; domain: the same but '@' and '[' '\' ']'
  -- with a dot that has something on both sides
  local at = s:find("@", 1, true)
  if not at then return false end
  local lp, dom = s:sub(1, at - 1), s:sub(at + 1)
  if not lp:find("^[!-?A-~]+$") then return false end
  if not dom:find("^[!-?A-Z^-~]+$") then return false end
  return dom:find("^.+%..+$") ~= nil
end

---------------------------------------------------------------------------
-- The check.

local function join(path, key)
  if type(key) == "number" then return ("%s[%d]"):format(path, key - 1) end
  if path == "" then return key end
  return path .. "." .. key
end

local check_value

-- A declaration's field names in order, computed once per fields table.
local SORTED = setmetatable({}, {__mode = "k"})
local function sorted_names(fields)
  local names = SORTED[fields]
  if names == nil then
    names = {}
    for name in pairs(fields) do names[#names + 1] = name end
    table.sort(names)
    SORTED[fields] = names
  end
  return names
end

-- Paths are built only where one is needed: a problem, or a container whose
-- members may have one.
local function check_fields(fields, obj, path, strict, render, out)
  for _, name in ipairs(sorted_names(fields)) do
    local f, v = fields[name], obj[name]
    if v == nil then
      if not M.is_optional(f) or (render and f.from) then
        out.problem(join(path, name), expected(f), "nothing (the field is missing)")
      end
    else
      check_value(f, v, path, name, render, out)
    end
  end
  local extra
  for name in pairs(obj) do
    if type(name) ~= "string" then name = tostring(name) end
    if fields[name] == nil then
      extra = extra or {}
      extra[#extra + 1] = name
    end
  end
  if extra == nil then return end
  table.sort(extra)
  for _, name in ipairs(extra) do
    if strict then
      out.problem(join(path, name), "no such field (the type is strict)", describe(obj[name]))
    else
      out.warning(join(path, name), "not declared by the message type; kept, but no template uses it")
    end
  end
end

local function number_in(f, v, lo, hi)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return false end
  lo, hi = f.min or lo, f.max or hi
  return (lo == nil or v >= lo) and (hi == nil or v <= hi)
end

-- v, the value of parent's member key (a name, or a list index from 1).
check_value = function(f, v, parent, key, render, out)
  local k, ok = f.kind, false
  if v == NULL then
    ok = false
  elseif k == "string" or k == "date" or k == "url" or k == "email" or k == "currency" then
    if type(v) == "string" then
      if k == "string" then
        local n = utf8.len(v) or -1
        ok = n >= (f.min or 1) and n <= (f.max or STRING_MAX) and v:find("[^%z\1- ]") ~= nil
        if ok and f.enum then
          ok = false
          for _, e in ipairs(f.enum) do ok = ok or e == v end
        end
      elseif k == "date" then
        ok = is_date(v)
      elseif k == "url" then
        ok = #v <= (f.max or 2048) and is_url(v) -- ASCII only: bytes are characters
      elseif k == "email" then
        ok = #v <= 254 and is_email(v)
      else
        ok = v:find("^%u%u%u$") ~= nil
      end
    end
  elseif k == "integer" then
    ok = type(v) == "number" and v == math.floor(v) and number_in(f, v)
  elseif k == "number" then
    ok = number_in(f, v)
  elseif k == "money" then
    ok = number_in(f, v, 0, MONEY_MAX)
  elseif k == "boolean" then
    ok = type(v) == "boolean"
  elseif k == "list" then
    if is_array(v, render) then
      ok = #v >= (f.min or 0) and (f.max == nil or #v <= f.max)
      if ok then
        local path = join(parent, key)
        for i, item in ipairs(v) do check_value(f.of, item, path, i, render, out) end
        return
      end
    end
  elseif k == "object" then
    if is_object(v) then
      check_fields(f.fields, v, join(parent, key), f.strict, render, out)
      return
    end
  end
  if not ok then out.problem(join(parent, key), expected(f), describe(v)) end
end

-- problems, warnings: lists of {path, expected, got} and {path, message}.
-- opts.strict refuses undeclared fields; opts.render requires the fields the
-- engine fills in (from = ...).
function M.check(fields, context, opts)
  opts = opts or {}
  local problems, warnings = {}, {}
  local out = {
    problem = function(path, exp, got)
      if #problems < MAX_PROBLEMS then
        problems[#problems + 1] = {path = path, expected = exp, got = got}
      end
    end,
    warning = function(path, message)
      if #warnings < MAX_PROBLEMS then warnings[#warnings + 1] = {path = path, message = message} end
    end,
  }
  if not is_object(context) then
    out.problem("context", "an object", describe(context))
  else
    check_fields(fields, context, "", opts.strict, opts.render, out)
  end
  return problems, warnings
end

-- A copy of the context with every absent optional field's default, at
-- every level (objects inside lists too).
local prepare_fields

local function prepare_value(f, v, locale)
  if f.kind == "object" and is_object(v) then return prepare_fields(f.fields, v, locale) end
  if f.kind == "list" and is_array(v, true) and f.of.kind == "object" then
    local copy = setmetatable({}, getmetatable(v))
    for i, item in ipairs(v) do copy[i] = prepare_value(f.of, item, locale) end
    return copy
  end
  return v
end

-- A field's default in a locale: defaults[tag], defaults[its language], else default.
local function default_of(f, locale)
  if locale and f.defaults then
    local d = f.defaults[locale]
    if d == nil then d = f.defaults[locale:match("^[^%-]+")] end
    if d ~= nil then return d end
  end
  return f.default
end

prepare_fields = function(fields, obj, locale)
  local copy = {}
  for k, v in pairs(obj) do
    local f = fields[k]
    copy[k] = f and prepare_value(f, v, locale) or v
  end
  for name, f in pairs(fields) do
    if copy[name] == nil and f.default ~= nil then copy[name] = default_of(f, locale) end
  end
  return copy
end

-- locale: the message's ("fr"); a field's `defaults = {fr = ...}` then gives
-- its default in that language (the JSON Schema shows `default`).
function M.prepare(fields, context, locale) return prepare_fields(fields, context or {}, locale) end

---------------------------------------------------------------------------
-- JSON Schema, draft 2020-12. Lists are made with herald.array so that an
-- empty one crosses to JSON as [] (an empty Lua table would read as {}).

local function array(t)
  if herald and herald.array then return herald.array(t) end
  return t
end

local schema_of

local function object_schema(fields, strict)
  local props, required, names = {}, {}, {}
  for name in pairs(fields) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local f = fields[name]
    props[name] = schema_of(f)
    if not M.is_optional(f) then required[#required + 1] = name end
  end
  local s = {type = "object", properties = props, required = array(required)}
  if next(props) == nil then s.properties = nil end
  if strict then s.additionalProperties = false end
  return s
end

schema_of = function(f)
  local k, s = f.kind, nil
  if k == "string" then
    s = {type = "string", minLength = f.min or 1, maxLength = f.max or STRING_MAX,
      pattern = SOMETHING_RE}
    if f.enum then s.enum = array(f.enum) end
  elseif k == "integer" or k == "number" then
    s = {type = k, minimum = f.min, maximum = f.max}
  elseif k == "money" then
    s = {type = "number", minimum = f.min or 0, maximum = f.max or MONEY_MAX}
  elseif k == "boolean" then
    s = {type = "boolean"}
  elseif k == "date" then
    s = {type = "string", format = "date", pattern = DATE_RE}
  elseif k == "url" then
    s = {type = "string", pattern = URL_RE, maxLength = f.max or 2048}
  elseif k == "email" then
    s = {type = "string", format = "email", pattern = EMAIL_RE, maxLength = 254}
  elseif k == "currency" then
    s = {type = "string", pattern = CURRENCY_RE}
  elseif k == "list" then
    s = {type = "array", items = schema_of(f.of), minItems = f.min, maxItems = f.max}
  elseif k == "object" then
    s = object_schema(f.fields, f.strict)
  else
    error("lib.schema: unknown kind '" .. tostring(k) .. "'", 2)
  end
  s.description = f.description
  if f.default ~= nil then s.default = f.default end
  return s
end

function M.json_schema(fields, opts)
  opts = opts or {}
  local s = object_schema(fields, opts.strict)
  s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
  s.title = opts.title
  s.description = opts.description
  return s
end

M.describe, M.expected, M.is_array, M.is_object = describe, expected, is_array, is_object

return M
