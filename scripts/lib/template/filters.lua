-- lib/template/filters.lua - the filters (`x | name(args)`) and the tests
-- (`x is name`).
--
-- Provides: F (name -> fn(autoescape, value, args...)) and FSPEC (name -> the
-- parameter names, for keyword arguments and arity checks at compile time);
-- TESTS (name -> fn(value, args...)) and TSPEC likewise. defined, undefined and
-- none are compiled inline by compiler.lua and are not in TESTS.
-- Uses: value.lua, text.lua, runtime.lua (GA, ITER, ADD and the comparisons),
-- errors.lua (rterr), locales.lua (the date, number and currency filters' data).

local value = require("lib.template.value")
local text = require("lib.template.text")
local R = require("lib.template.runtime")
local errors = require("lib.template.errors")
local locales = require("lib.template.locales")

local M = {}

local concat, sort = table.concat, table.sort
local floor, mtype = math.floor, math.type

local NULL, NS = value.NULL, value.NS
local markup, is_mk, unmk, escape_str = value.markup, value.is_mk, value.unmk, value.escape_str
local is_list, tname = value.is_list, value.tname
local S, E, T = value.S, value.E, value.T
local ulen, usub, uchars = text.ulen, text.usub, text.uchars
local upper, lower, capitalize, plain_replace = text.upper, text.lower, text.capitalize,
  text.plain_replace
local GA, ITER, ADD = R.GA, R.ITER, R.ADD
local EQ, LT, GT, LE, GE, IN, ordered = R.EQ, R.LT, R.GT, R.LE, R.GE, R.IN, R.ordered
local rterr = errors.rterr

---------------------------------------------------------------------------
-- Filters. Each is fn(autoescape, value, args...); FSPEC gives the parameter
-- names (for keyword arguments and arity checks at compile time).
---------------------------------------------------------------------------

local F, FSPEC = {}, {}

local function filter(name, params, fn)
  F[name] = fn
  FSPEC[name] = params
end

local function text_of(name, v)
  if is_mk(v) then return v[1], true end
  if type(v) == "string" then return v, false end
  rterr(name .. ": expected a string, got " .. tname(v))
end

filter("escape", {}, function(_, v)
  if is_mk(v) then return v end
  return markup(escape_str(S(v)))
end)
F.e, FSPEC.e = F.escape, FSPEC.escape

filter("forceescape", {}, function(_, v) return markup(escape_str(S(v))) end)

filter("safe", {}, function(_, v)
  if is_mk(v) then return v end
  return markup(S(v))
end)

filter("upper", {}, function(_, v)
  if is_mk(v) then return markup(upper(v[1])) end
  return upper(S(v))
end)

filter("lower", {}, function(_, v)
  if is_mk(v) then return markup(lower(v[1])) end
  return lower(S(v))
end)

-- Jinja2's do_title: words begin after - space ( { [ <; first letter upper, rest lower.
filter("title", {}, function(_, v)
  return (S(v):gsub("[^%-%s%(%{%[<]+", function(w)
    local first = w:match("^[%z\1-\x7F\xC2-\xF4][\x80-\xBF]*")
    return upper(first) .. lower(w:sub(#first + 1))
  end))
end)

filter("capitalize", {}, function(_, v)
  if is_mk(v) then return markup(capitalize(v[1])) end
  return capitalize(S(v))
end)

filter("default", {"default_value", "boolean"}, function(_, v, dv, boolean)
  if dv == nil then dv = "" end
  if v == nil or (T(boolean) and not T(v)) then return dv end
  return v
end)
F.d, FSPEC.d = F.default, FSPEC.default

filter("truncate", {"length", "killwords", "end", "leeway"},
  function(_, v, length, killwords, endstr, leeway)
    if v == nil then return nil end
    length = length or 255
    if type(v) == "table" and not is_mk(v) and mtype(length) == "integer"
      and #ITER(v) <= length + (leeway or 5) then return v end
    local s, mk = text_of("truncate", v)
    endstr = endstr == nil and "..." or S(endstr)
    if leeway == nil then leeway = 5 end
    if mtype(length) ~= "integer" or mtype(leeway) ~= "integer" then
      rterr("truncate: length and leeway must be integers")
    end
    if length < ulen(endstr) then
      rterr(("truncate: expected length >= %d, got %d"):format(ulen(endstr), length))
    end
    if leeway < 0 then rterr("truncate: expected leeway >= 0, got " .. leeway) end
    if ulen(s) <= length + leeway then return v end
    local keep = usub(s, 1, length - ulen(endstr))
    if not T(killwords) then keep = keep:match("^(.*) ") or keep end
    if mk then return markup(keep .. escape_str(endstr)) end
    return keep .. endstr
  end)

local function attr_getter(attribute)
  if attribute == nil then return function(x) return x end end
  local path = {}
  for part in S(attribute):gmatch("[^%.]+") do
    path[#path + 1] = tonumber(part) and math.tointeger(tonumber(part)) or part
  end
  return function(x)
    for _, k in ipairs(path) do
      if x == nil then return nil end
      x = GA(x, k, S(attribute))
    end
    return x
  end
end

filter("join", {"d", "attribute"}, function(ae, v, d, attribute)
  if d == nil then d = "" end
  local get = attr_getter(attribute)
  local src = ITER(v)
  local items = {}
  for i = 1, #src do
    local x = get(src[i])
    if x == nil then x = "" end -- Jinja2: an undefined attribute joins as ""
    items[i] = x
  end
  if not ae then
    for i = 1, #items do items[i] = S(items[i]) end
    return concat(items, S(d))
  end
  if is_mk(d) then
    for i = 1, #items do items[i] = E(items[i]) end
    return markup(concat(items, d[1]))
  end
  local any = false
  for i = 1, #items do if is_mk(items[i]) then any = true end end
  if any then
    for i = 1, #items do items[i] = E(items[i]) end
    return markup(concat(items, escape_str(S(d))))
  end
  for i = 1, #items do items[i] = S(items[i]) end
  return concat(items, S(d))
end)

local function length(v)
  if v == nil then return 0 end
  local t = type(v)
  if t == "string" then return ulen(v) end
  if t == "table" then
    if is_mk(v) then return ulen(v[1]) end
    if getmetatable(v) ~= NS and is_list(v) then return #v end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n
  end
  rterr("object of type '" .. tname(v) .. "' has no len()")
end
filter("length", {}, function(_, v) return length(v) end)
F.count, FSPEC.count = F.length, FSPEC.length

filter("replace", {"old", "new", "count"}, function(ae, v, old, new, count)
  if not ae then return plain_replace(S(v), S(old), S(new), count) end
  if (is_mk(old) or is_mk(new)) and not is_mk(v) then v = markup(escape_str(S(v))) end
  if is_mk(v) then
    -- markupsafe 2.1 (Debian 12's, the differential test's reference):
    -- Markup.replace escapes both the searched text and the replacement
    local rold = is_mk(old) and old[1] or escape_str(S(old))
    local rnew = is_mk(new) and new[1] or escape_str(S(new))
    return markup(plain_replace(v[1], rold, rnew, count))
  end
  return plain_replace(S(v), S(old), S(new), count)
end)

-- Python's str.strip() whitespace beyond ASCII: U+0085, U+00A0, U+1680,
-- U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 (and \x1c..\x1f).
local USPACE = "[\t\n\v\f\r\x1c-\x1f ]"
local function uspace_at(s, i)
  local b = s:byte(i)
  if b == nil then return nil end
  if s:find("^" .. USPACE, i) then return 1 end
  local three = s:sub(i, i + 2)
  if s:sub(i, i + 1) == "\xC2\x85" or s:sub(i, i + 1) == "\xC2\xA0" then return 2 end
  if three == "\xE1\x9A\x80" or three == "\xE2\x80\xA8" or three == "\xE2\x80\xA9"
    or three == "\xE2\x80\xAF" or three == "\xE2\x81\x9F" or three == "\xE3\x80\x80"
    or three:match("^\xE2\x80[\x80-\x8A]$") then return 3 end
  return nil
end

local function ustrip(s)
  local i = 1
  while true do
    local n = uspace_at(s, i)
    if not n then break end
    i = i + n
  end
  local j = #s
  while j >= i do -- step back over one whitespace character at a time
    local found = false
    for n = 1, 3 do
      if j - n + 1 >= i and uspace_at(s, j - n + 1) == n then
        j, found = j - n, true
        break
      end
    end
    if not found then break end
  end
  return s:sub(i, j)
end

filter("trim", {"chars"}, function(_, v, chars)
  local s = S(v)
  if chars == nil or chars == NULL then
    s = ustrip(s)
  else
    local set = "[" .. S(chars):gsub("[%^%]%%%-]", "%%%0") .. "]"
    s = s:gsub("^" .. set .. "+", ""):gsub(set .. "+$", "")
  end
  if is_mk(v) then return markup(s) end
  return s
end)

filter("first", {}, function(_, v)
  local items = ITER(v)
  return items[1]
end)

filter("last", {}, function(_, v)
  local items = ITER(v)
  return items[#items]
end)

local function to_int(v, default, base)
  if default == nil then default = 0 end
  v = unmk(v)
  local t = type(v)
  if t == "number" then
    if mtype(v) == "integer" then return v end
    if v ~= v or v == math.huge or v == -math.huge then return default end
    -- Python's int is unbounded: a value past 64 bits is refused, not defaulted
    return math.tointeger(v >= 0 and floor(v) or -floor(-v))
      or rterr("int: " .. S(v) .. " does not fit in 64 bits")
  end
  if t == "boolean" then return v and 1 or 0 end
  if t == "string" then
    local s = v:gsub("^%s+", ""):gsub("%s+$", ""):gsub("(%w)_(%w)", "%1%2")
    if base and base ~= 10 then
      local prefix = ({[16] = "^([+-]?)0[xX]", [8] = "^([+-]?)0[oO]", [2] = "^([+-]?)0[bB]"})[base]
      if prefix then s = s:gsub(prefix, "%1") end
      local n = tonumber(s, base)
      if n then return n end
    elseif s:match("^[+-]?%d+$") then
      return math.tointeger(tonumber(s)) or rterr("int: " .. s .. " does not fit in 64 bits")
    end
    if s:match("^[+-]?%d*%.?%d*[eE]?[+-]?%d*$") and tonumber(s) then
      return to_int(tonumber(s) + 0.0, default)
    end
  end
  return default
end

filter("int", {"default", "base"}, function(_, v, default, base) return to_int(v, default, base) end)

filter("float", {"default"}, function(_, v, default)
  if default == nil then default = 0.0 end
  v = unmk(v)
  if type(v) == "number" then return v + 0.0 end
  if type(v) == "boolean" then return v and 1.0 or 0.0 end
  if type(v) == "string" then
    local s = v:gsub("^%s+", ""):gsub("%s+$", "")
    if s:match("^[+-]?%d*%.?%d*[eE]?[+-]?%d*$") and tonumber(s) then return tonumber(s) + 0.0 end
    local l = s:lower()
    if l == "inf" or l == "+inf" or l == "infinity" then return math.huge end
    if l == "-inf" or l == "-infinity" then return -math.huge end
  end
  return default
end)

filter("round", {"precision", "method"}, function(_, v, precision, method)
  precision = precision or 0
  method = method == nil and "common" or S(method)
  if type(v) ~= "number" then rterr("round: expected a number, got " .. tname(v)) end
  if method ~= "common" and method ~= "ceil" and method ~= "floor" then
    rterr("round: method must be common, ceil or floor")
  end
  if method == "common" then
    if mtype(v) == "integer" and precision >= 0 then return v end
    if precision >= 0 then
      local s = string.format("%." .. precision .. "f", v)
      local r = tonumber(s) + 0.0
      if r == 0 and s:sub(1, 1) == "-" then r = -0.0 end
      return r
    end
    local m = 10 ^ -precision
    return floor(v / m + 0.5) * m + 0.0
  end
  local m = 10 ^ precision
  local f = method == "ceil" and math.ceil or floor
  return f(v * m) / m + 0.0
end)

filter("abs", {}, function(_, v)
  if type(v) ~= "number" then rterr("bad operand type for abs(): '" .. tname(v) .. "'") end
  return math.abs(v)
end)

filter("string", {}, function(_, v)
  if is_mk(v) then return v end
  return S(v)
end)

filter("list", {}, function(_, v)
  local items, out = ITER(v), {}
  for i = 1, #items do out[i] = items[i] end
  return out
end)

filter("reverse", {}, function(_, v)
  if type(v) == "string" or is_mk(v) then
    local chars = uchars(S(v))
    local out = {}
    for i = #chars, 1, -1 do out[#out + 1] = chars[i] end
    return concat(out)
  end
  local items, out = ITER(v), {}
  for i = #items, 1, -1 do out[#out + 1] = items[i] end
  return out
end)

local function sort_key(case_sensitive, attribute)
  local get = attr_getter(attribute)
  return function(x)
    x = unmk(get(x))
    if type(x) == "string" and not T(case_sensitive) then x = lower(x) end
    return x
  end
end

filter("sort", {"reverse", "case_sensitive", "attribute"}, function(_, v, reverse, cs, attribute)
  local items, out = ITER(v), {}
  for i = 1, #items do out[i] = items[i] end
  local key = sort_key(cs, attribute)
  sort(out, function(a, b)
    local ka, kb = ordered("<", key(a), key(b))
    if T(reverse) then return ka > kb end
    return ka < kb
  end)
  return out
end)

local function extreme(v, cs, attribute, better)
  local items = ITER(v)
  local key = sort_key(cs, attribute)
  local best, bestk
  for i = 1, #items do
    local k = key(items[i])
    if best == nil then best, bestk = items[i], k
    else
      local a, b = ordered("<", k, bestk)
      if better(a, b) then best, bestk = items[i], k end
    end
  end
  return best
end
filter("min", {"case_sensitive", "attribute"}, function(_, v, cs, attribute)
  return extreme(v, cs, attribute, function(a, b) return a < b end)
end)
filter("max", {"case_sensitive", "attribute"}, function(_, v, cs, attribute)
  return extreme(v, cs, attribute, function(a, b) return a > b end)
end)

filter("sum", {"attribute", "start"}, function(_, v, attribute, start)
  local total = start or 0
  local get = attr_getter(attribute)
  local items = ITER(v)
  for i = 1, #items do total = ADD(total, get(items[i])) end
  return total
end)

filter("map", {"attribute", "default"}, function(_, v, attribute, default)
  if attribute == nil then rterr("map: only map(attribute='name') is supported") end
  local get = attr_getter(attribute)
  local items, out = ITER(v), {}
  for i = 1, #items do
    local x = get(items[i])
    if x == nil then x = default end
    out[i] = x
  end
  return out
end)

-- Python's \w (Jinja2 counts re.findall(r"\w+")): ASCII letters, digits and
-- _, and non-ASCII characters except the punctuation and symbol blocks below
-- (Latin-1 signs, general punctuation, currency, arrows to dingbats, CJK
-- punctuation, emoji); letters and digits of every script count as word.
local NONWORD = {{0x80, 0xA9}, {0xAB, 0xB1}, {0xB4, 0xB4}, {0xB6, 0xB8}, {0xBB, 0xBB},
  {0xBF, 0xBF}, {0xD7, 0xD7}, {0xF7, 0xF7}, {0x2000, 0x206F}, {0x20A0, 0x20CF},
  {0x2100, 0x214F}, {0x2190, 0x2BFF}, {0x3000, 0x3004}, {0x3008, 0x3020}, {0xFE00, 0xFE0F},
  {0xFF00, 0xFF0F}, {0x1F000, 0x1FAFF}}
local function word_cp(c)
  if c < 0x80 then
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95
  end
  for _, r in ipairs(NONWORD) do
    if c >= r[1] and c <= r[2] then return false end
  end
  return true
end

filter("wordcount", {}, function(_, v)
  local s, n, inword = S(v), 0, false
  if not utf8.len(s) then -- invalid UTF-8: bytes as before
    for _ in s:gmatch("[%w_\x80-\xF4]+") do n = n + 1 end
    return n
  end
  for _, c in utf8.codes(s) do
    local w = word_cp(c)
    if w and not inword then n = n + 1 end
    inword = w
  end
  return n
end)

local ENTITIES = {amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = " "}
filter("striptags", {}, function(_, v)
  local s = S(v):gsub("<!%-%-.-%-%->", ""):gsub("<[^>]*>", "")
  s = s:gsub("&(#?)(%w+);", function(hash, body)
    if hash == "#" then
      local n = body:match("^[xX](%x+)$") and tonumber(body:sub(2), 16) or tonumber(body)
      if n then return utf8.char(n) end
      return nil
    end
    return ENTITIES[body]
  end)
  local words = {}
  for w in s:gmatch("%S+") do words[#words + 1] = w end
  return concat(words, " ")
end)

filter("urlencode", {}, function(_, v)
  return (S(v):gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end)

-- The locale of the render in progress: its data (lib/template/locales.lua)
-- and whether no-break spaces are written as plain ones (an SMS: they are
-- not GSM-7 and would make the text UCS-2). compiler.lua's render sets it
-- around each call (use_locale / restore_locale); outside a render, en.
local current = {data = locales.get(nil), plain = false}

function M.use_locale(tag, plain)
  local prev = current
  current = {data = locales.get(tag), plain = plain == true}
  return prev
end

function M.restore_locale(prev) current = prev end

-- The data a filter formats with: its own locale= argument, else the render's.
local function locale_of(name, tag)
  if tag == nil or tag == NULL then return current.data end
  tag = S(tag)
  if not locales.has(tag) then rterr(name .. ": no formatting data for locale '" .. usub(tag, 1, 40) .. "'") end
  return locales.get(tag)
end

local function spaced(s)
  if not current.plain then return s end
  return (s:gsub(locales.NBSP, " "):gsub(locales.NNBSP, " "))
end

-- date(format=locale's long, locale=the render's): an ISO date "YYYY-MM-DD" or
-- "YYYY-MM-DDTHH:MM[:SS]" (a time-zone suffix is ignored: the digits are shown
-- as written), a table with year/month/day (herald.to_local), or Unix seconds
-- (UTC). format is a pattern or one of the locale's named formats short,
-- medium, long, full, day_month (en long: "March 12, 2027"; fr "12 mars 2027";
-- es "12 de marzo de 2027"; day_month: "March 12", "12 mars", "12 de marzo"). %B %b %A %a %p are the locale's words; %e and %-d give the
-- day without padding ("June 5"); %-m and %-I likewise.
local DAYS_IN = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
local function days_in(y, m)
  if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then return 29 end
  return DAYS_IN[m]
end

local SAKAMOTO = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4}
local function weekday(y, m, d) -- 0 = Sunday
  if m < 3 then y = y - 1 end
  return (y + y // 4 - y // 100 + y // 400 + SAKAMOTO[m] + d) % 7
end

local function yday(y, m, d)
  local n = d
  for i = 1, m - 1 do n = n + days_in(y, i) end
  return n
end

local function parse_date(v)
  v = unmk(v)
  if type(v) == "number" then
    local t = os.date("!*t", floor(v))
    return {year = t.year, month = t.month, day = t.day, hour = t.hour, min = t.min, sec = t.sec}
  end
  if type(v) == "table" and v.year and v.month and v.day then
    return {year = v.year, month = v.month, day = v.day, hour = v.hour or 0,
      min = v.min or 0, sec = v.sec or 0}
  end
  if type(v) ~= "string" then
    rterr("date: expected an ISO date 'YYYY-MM-DD', got " .. tname(v))
  end
  if #v > 64 then -- an ISO date is short; never scan a long string with a pattern
    rterr("date: expected an ISO date 'YYYY-MM-DD', got a string of " .. #v .. " bytes")
  end
  local y, m, d, rest = v:match("^%s*(%d%d%d%d)%-(%d%d)%-(%d%d)(.-)%s*$")
  local hh, mm, ss = 0, 0, 0
  if rest and rest ~= "" then
    local h, mi, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not h then y = nil
    else
      hh, mm = tonumber(h), tonumber(mi)
      local s, tail2 = tail:match("^:(%d%d)(.*)$")
      if s then ss, tail = tonumber(s), tail2 end
      tail = tail:gsub("^%.%d+", "")
      if not (tail == "" or tail == "Z" or tail:match("^[+-]%d%d:?%d%d$")) then y = nil end
    end
  end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not y or m < 1 or m > 12 or d < 1 or d > days_in(y, m) or hh > 23 or mm > 59 or ss > 60 then
    rterr("date: expected an ISO date 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS', got '" .. v .. "'")
  end
  return {year = y, month = m, day = d, hour = hh, min = mm, sec = ss}
end

local function h12(t)
  local h = t.hour % 12
  if h == 0 then return 12 end
  return h
end

local function pad2(n) return n < 10 and "0" .. n or tostring(n) end

local DIRECTIVES = {
  Y = function(t) return tostring(t.year) end,
  y = function(t) return pad2(t.year % 100) end,
  m = function(t) return pad2(t.month) end,
  d = function(t) return pad2(t.day) end,
  e = function(t) return tostring(t.day) end,
  B = function(t, L) return L.months[t.month] end,
  b = function(t, L) return L.months_short[t.month] end,
  A = function(t, L) return L.days[weekday(t.year, t.month, t.day) + 1] end,
  a = function(t, L) return L.days_short[weekday(t.year, t.month, t.day) + 1] end,
  H = function(t) return pad2(t.hour) end,
  I = function(t) return pad2(h12(t)) end,
  M = function(t) return pad2(t.min) end,
  S = function(t) return pad2(t.sec) end,
  p = function(t, L) return t.hour < 12 and L.am or L.pm end,
  j = function(t) return string.format("%03d", yday(t.year, t.month, t.day)) end,
  ["%"] = function() return "%" end,
}
local NOPAD = {
  d = function(t) return tostring(t.day) end, e = function(t) return tostring(t.day) end,
  m = function(t) return tostring(t.month) end, H = function(t) return tostring(t.hour) end,
  I = function(t) return tostring(h12(t)) end,
}

filter("date", {"format", "locale"}, function(_, v, fmt, locale)
  if v == nil or v == NULL or v == "" then return "" end
  local L = locale_of("date", locale)
  local t = parse_date(v)
  fmt = fmt == nil and L.dates.long or S(fmt)
  fmt = L.dates[fmt] or fmt
  return spaced((fmt:gsub("%%(%-?)(.)", function(dash, c)
    local f = (dash == "-" and NOPAD or DIRECTIVES)[c]
    if not f then rterr("date: unknown format directive '%" .. dash .. c .. "'") end
    return f(t, L)
  end)))
end)

-- The digits of a non-negative integer string with the locale's grouping.
local function grouped(int, L)
  if #int < L.group_min then return int end
  local head = (#int - 1) % 3 + 1
  return int:sub(1, head) .. (int:sub(head + 1):gsub("%d%d%d", function(d) return L.group .. d end))
end

local function number_of(name, v)
  local x = unmk(v)
  if type(x) == "string" and #x <= 64 then x = tonumber((x:gsub("[,%s]", ""))) end
  if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then
    rterr(name .. ": expected a number, got " ..
      (type(v) == "string" and #v <= 64 and ("'" .. v .. "'") or tname(v)))
  end
  return x
end

-- currency(code="USD", locale=the render's): en "$12,500.00", "-$1,234.50";
-- fr "12 500,00 €", "1 234,50 $US"; es "12.500,00 €". A code without a
-- symbol in the locale's data is written as the code (en "CHF 1,234.50").
filter("currency", {"code", "locale"}, function(_, v, code, locale)
  if v == nil or v == NULL then return "" end
  local x = number_of("currency", v)
  local L = locale_of("currency", locale)
  code = code == nil and "USD" or upper(S(code))
  local decimals = locales.DECIMALS[code] or 2
  local s = string.format("%." .. decimals .. "f", math.abs(x))
  local int, frac = s:match("^(%d+)%.?(%d*)$")
  local num = grouped(int, L) .. (frac ~= "" and L.decimal .. frac or "")
  local sym = L.symbols[code]
  local out
  if L.currency == "before" then
    out = sym and sym .. num or code .. (L.code_space or "") .. num
  else
    out = num .. L.currency_space .. (sym or code)
  end
  local neg = x < 0 and tonumber(s) ~= 0
  return spaced((neg and "-" or "") .. out)
end)

-- number(decimals=up to 3, locale=the render's): en "1,234.5", fr "1 234,5",
-- es "1.234,5"; decimals fixes how many digits follow the separator.
filter("number", {"decimals", "locale"}, function(_, v, decimals, locale)
  if v == nil or v == NULL then return "" end
  local x = number_of("number", v)
  local L = locale_of("number", locale)
  if decimals ~= nil and (mtype(decimals) ~= "integer" or decimals < 0 or decimals > 10) then
    rterr("number: decimals must be an integer from 0 to 10")
  end
  local s = string.format("%." .. (decimals or 3) .. "f", math.abs(x))
  local int, frac = s:match("^(%d+)%.?(%d*)$")
  if decimals == nil then frac = frac:gsub("0+$", "") end
  local neg = x < 0 and tonumber(s) ~= 0
  return spaced((neg and "-" or "") .. grouped(int, L) .. (frac ~= "" and L.decimal .. frac or ""))
end)

---------------------------------------------------------------------------
-- Tests (`x is name`). defined, undefined and none are compiled inline.
---------------------------------------------------------------------------

local TESTS, TSPEC = {}, {}
local function test(names, params, fn)
  for _, name in ipairs(names) do TESTS[name] = fn; TSPEC[name] = params end
end
test({"boolean"}, {}, function(v) return type(v) == "boolean" end)
test({"true"}, {}, function(v) return v == true end)
test({"false"}, {}, function(v) return v == false end)
test({"number"}, {}, function(v) return type(v) == "number" end)
test({"integer"}, {}, function(v) return mtype(v) == "integer" end)
test({"float"}, {}, function(v) return mtype(v) == "float" end)
test({"string"}, {}, function(v) return type(v) == "string" or is_mk(v) end)
test({"mapping"}, {}, function(v)
  return type(v) == "table" and not is_mk(v) and (getmetatable(v) == NS or not is_list(v) or next(v) == nil)
end)
test({"sequence"}, {}, function(v) return type(v) == "string" or type(v) == "table" end)
test({"iterable"}, {}, function(v) return type(v) == "string" or type(v) == "table" or v == nil end)
test({"even"}, {}, function(v)
  if type(v) ~= "number" then rterr("even: expected a number, got " .. tname(v)) end
  return v % 2 == 0
end)
test({"odd"}, {}, function(v)
  if type(v) ~= "number" then rterr("odd: expected a number, got " .. tname(v)) end
  return v % 2 == 1
end)
test({"divisibleby"}, {"num"}, function(v, n)
  if type(v) ~= "number" or type(n) ~= "number" then rterr("divisibleby: expected numbers") end
  return v % n == 0
end)
test({"eq", "equalto", "=="}, {"other"}, function(a, b) return EQ(a, b) end)
test({"ne", "!="}, {"other"}, function(a, b) return not EQ(a, b) end)
test({"lt", "lessthan", "<"}, {"other"}, LT)
test({"gt", "greaterthan", ">"}, {"other"}, GT)
test({"le", "<="}, {"other"}, LE)
test({"ge", ">="}, {"other"}, GE)
test({"in"}, {"seq"}, function(a, b) return IN(a, b) end)
test({"lower"}, {}, function(v) local s = S(v); return lower(s) == s end)
test({"upper"}, {}, function(v) local s = S(v); return upper(s) == s end)
test({"sameas"}, {"other"}, function(a, b) return rawequal(a, b) end)
test({"escaped"}, {}, function(v) return is_mk(v) end)

M.F, M.FSPEC = F, FSPEC
M.TESTS, M.TSPEC = TESTS, TSPEC

return M
