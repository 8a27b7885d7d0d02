-- lib/template.lua - a template engine with Jinja2's syntax and, for everything it
-- supports, Jinja2's semantics (so an operator who knows Jinja2 is never surprised).
--
--   local template = require("lib.template")
--   local render = template.compile(source, "welcome.html", {loader = fn})
--   local html = render({client_name = "Ana"})
--
-- compile(source, name, opts) returns render(context) -> string, or raises
-- "name:line: message". opts:
--   autoescape  true / false for every template of this compile, or function(name)
--               -> boolean; nil: on for names ending .html .htm .xml (Jinja2's
--               select_autoescape)
--   loader      function(name) -> source or nil, for include and extends
--   cache       table name -> compiled template, shared between compiles (the
--               templates an include or extends pulls in are compiled once)
--
-- A template is lexed, parsed into a tree and turned into Lua source that is
-- `load`ed as a text chunk with an empty environment: the chunk reaches only the
-- run-time helpers below, passed to it as arguments.
--
-- Supported: {{ }}, {% %}, {# #}, whitespace control (- on any delimiter), raw;
-- if/elif/else, for (else, loop.*, tuple targets, `if` filter), set (also block set
-- and namespace attributes), include (ignore missing, with/without context),
-- extends/block/super(); expressions with literals, lists, dicts, attribute and
-- subscript access, arithmetic, ~, comparisons (chained), in, and/or/not,
-- `a if b else c`, tests (is defined, is none, ...), filters with positional and
-- keyword arguments; the globals range(), namespace(), dict().
-- Deliberate differences from Jinja2: a mapping is iterated in sorted key order
-- (Lua tables keep no insertion order); the date and currency filters are Herald's
-- own; calling an unknown function is a compile error instead of a render error.

local M = {}

local NULL = (herald and herald.null) or setmetatable({}, {__name = "null"})
local ARRAY_MT = herald and herald.array and getmetatable(herald.array({})) or nil

local concat, unpack, sort = table.concat, table.unpack, table.sort
local floor, mtype = math.floor, math.type

---------------------------------------------------------------------------
-- Values: Markup (text already safe for HTML), lists and dicts, Python-like
-- string conversion and truthiness.
---------------------------------------------------------------------------

local MK = {__name = "Markup"}
local function markup(s) return setmetatable({s}, MK) end
local function is_mk(v) return getmetatable(v) == MK end

local NS = {__name = "Namespace"}

local ESC = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;"}
local function escape_str(s) return (s:gsub("[&<>\"']", ESC)) end

local function rterr(msg) error(msg, 0) end

local function is_list(t)
  if ARRAY_MT and getmetatable(t) == ARRAY_MT then return true end
  return t[1] ~= nil or next(t) == nil
end

local function tname(v)
  if v == nil then return "Undefined" end
  if v == NULL then return "NoneType" end
  local t = type(v)
  if t == "number" then return mtype(v) == "integer" and "int" or "float" end
  if t == "string" then return "str" end
  if t == "boolean" then return "bool" end
  if t == "table" then
    if is_mk(v) then return "Markup" end
    if getmetatable(v) == NS then return "Namespace" end
    return is_list(v) and "list" or "dict"
  end
  return t
end

-- Python's repr of a float: the shortest digits that read back the same.
local function pyfloat(x)
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
  -- the common case: 15 digits suffice and Python would not use an exponent
  local g = string.format("%.15g", x)
  if tonumber(g) == x and not g:find("e", 1, true) then
    if g:find(".", 1, true) then return g end
    return g .. ".0"
  end
  -- a double whose shortest form has at most 15 digits shows it (zero padded)
  -- at 15 significant digits; otherwise 16 or 17 are needed
  local e = string.format("%.14e", x)
  if math.abs(x) < 2.2250738585072014e-308 then -- subnormal: fewer digits are exact
    for p = 0, 16 do
      e = string.format("%." .. p .. "e", x)
      if tonumber(e) == x then break end
    end
  elseif tonumber(e) ~= x then
    e = string.format("%.15e", x)
    if tonumber(e) ~= x then e = string.format("%.16e", x) end
  end
  local sign, int, frac, exp = e:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  exp = tonumber(exp)
  local digits = (int .. frac):gsub("0+$", "")
  if digits == "" then digits = "0" end
  if exp >= -4 and exp < 16 then
    local s
    if exp >= 0 then
      if #digits <= exp + 1 then
        s = digits .. string.rep("0", exp + 1 - #digits) .. ".0"
      else
        s = digits:sub(1, exp + 1) .. "." .. digits:sub(exp + 2)
      end
    else
      s = "0." .. string.rep("0", -exp - 1) .. digits
    end
    return sign .. s
  end
  local m = digits:sub(1, 1)
  if #digits > 1 then m = m .. "." .. digits:sub(2) end
  return string.format("%s%se%s%02d", sign, m, exp < 0 and "-" or "+", math.abs(exp))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local S -- forward: value -> string (Python str())

local function repr(v)
  if type(v) == "string" then
    local q = "'"
    if v:find("'", 1, true) and not v:find('"', 1, true) then q = '"' end
    local body = v:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t")
    if q == "'" then body = body:gsub("'", "\\'") end
    return q .. body .. q
  end
  if type(v) == "table" and not is_mk(v) then
    local parts = {}
    if getmetatable(v) ~= NS and is_list(v) then
      for i = 1, #v do parts[i] = repr(v[i]) end
      return "[" .. concat(parts, ", ") .. "]"
    end
    for _, k in ipairs(sorted_keys(v)) do
      local x = v[k]
      parts[#parts + 1] = repr(k) .. ": " .. (type(x) == "function" and "<function>" or repr(x))
    end
    return (getmetatable(v) == NS and "<Namespace {" or "{") .. concat(parts, ", ") ..
      (getmetatable(v) == NS and "}>" or "}")
  end
  return S(v)
end

S = function(v)
  local t = type(v)
  if t == "string" then return v end
  if v == nil then return "" end
  if t == "number" then
    if mtype(v) == "integer" then return tostring(v) end
    return pyfloat(v)
  end
  if t == "boolean" then return v and "True" or "False" end
  if v == NULL then return "None" end
  if t == "table" then
    if is_mk(v) then return v[1] end
    return repr(v)
  end
  return tostring(v)
end

-- Output of {{ }} in an autoescaped template.
local function E(v)
  local t = type(v)
  if t == "string" then return (v:gsub("[&<>\"']", ESC)) end
  if t == "number" then return S(v) end
  if is_mk(v) then return v[1] end
  return escape_str(S(v))
end

-- Jinja2 truthiness: undefined, none, false, 0, "", empty list/dict are false.
local function T(v)
  if v == nil or v == false or v == NULL then return false end
  local t = type(v)
  if t == "number" then return v ~= 0 end
  if t == "string" then return v ~= "" end
  if t == "table" then
    if is_mk(v) then return v[1] ~= "" end
    return next(v) ~= nil
  end
  return true
end

local function unmk(v) if is_mk(v) then return v[1] end return v end

---------------------------------------------------------------------------
-- UTF-8 helpers and case mapping (ASCII, Latin-1, Latin Extended-A, Greek,
-- Cyrillic: what a client's name can hold).
---------------------------------------------------------------------------

local function ulen(s) return utf8.len(s) or #s end

-- Code points i..j (1-based, inclusive) of s.
local function usub(s, i, j)
  if not utf8.len(s) then return s:sub(i, j) end
  local n = utf8.len(s)
  if j == nil or j > n then j = n end
  if i < 1 then i = 1 end
  if i > j then return "" end
  local a = utf8.offset(s, i)
  local b = utf8.offset(s, j + 1)
  return s:sub(a, (b or #s + 1) - 1)
end

local function uchars(s)
  local out = {}
  if utf8.len(s) then
    for _, c in utf8.codes(s) do out[#out + 1] = utf8.char(c) end
  else
    for i = 1, #s do out[i] = s:sub(i, i) end
  end
  return out
end

local TO_UPPER, TO_LOWER = {}, {}
do
  local function pair(u, l)
    TO_UPPER[utf8.char(l)] = utf8.char(u)
    TO_LOWER[utf8.char(u)] = utf8.char(l)
  end
  for c = 0xC0, 0xDE do if c ~= 0xD7 then pair(c, c + 32) end end
  for c = 0x100, 0x12F, 2 do pair(c, c + 1) end
  for c = 0x132, 0x137, 2 do pair(c, c + 1) end
  for c = 0x139, 0x148, 2 do pair(c, c + 1) end
  for c = 0x14A, 0x177, 2 do pair(c, c + 1) end
  pair(0x178, 0xFF)
  for c = 0x179, 0x17E, 2 do pair(c, c + 1) end
  for c = 0x391, 0x3A9 do if c ~= 0x3A2 then pair(c, c + 32) end end
  TO_UPPER[utf8.char(0x3C2)] = utf8.char(0x3A3)
  for c = 0x410, 0x42F do pair(c, c + 32) end
  for c = 0x400, 0x40F do pair(c, c + 80) end
  TO_UPPER["ß"] = "SS"
end

local function upper(s) return (s:upper():gsub("[\xC2-\xDF][\x80-\xBF]", TO_UPPER)) end
local function lower(s) return (s:lower():gsub("[\xC2-\xDF][\x80-\xBF]", TO_LOWER)) end

local function capitalize(s)
  local first = s:match("^[%z\1-\x7F\xC2-\xF4][\x80-\xBF]*")
  if not first then return s end
  return upper(first) .. lower(s:sub(#first + 1))
end

local function plain_replace(s, old, new, count)
  if count == nil or count < 0 then count = math.huge end
  if old == "" then
    local chars, out, done = uchars(s), {}, 0
    for i = 1, #chars + 1 do
      if done < count then out[#out + 1] = new; done = done + 1 end
      out[#out + 1] = chars[i]
    end
    return concat(out)
  end
  local out, pos, done = {}, 1, 0
  while done < count do
    local a, b = s:find(old, pos, true)
    if not a then break end
    out[#out + 1] = s:sub(pos, a - 1)
    out[#out + 1] = new
    pos = b + 1
    done = done + 1
  end
  out[#out + 1] = s:sub(pos)
  return concat(out)
end

---------------------------------------------------------------------------
-- Run-time helpers called by compiled templates.
---------------------------------------------------------------------------

-- Python index i (0-based, negative from the end) into a list of n items.
local function pyindex(i, n)
  if i < 0 then i = n + i end
  return i + 1
end

-- Attribute / item access: undefined.x raises (Jinja2's default Undefined),
-- anything else that has no such attribute gives undefined.
-- GAS is x.name (a string key known when compiling): on every table a template
-- sees (data, JSON arrays, Markup, namespaces, loop) o[k] is already the answer.
local function GAS(o, k, src)
  if type(o) == "table" then return o[k] end
  if o == nil then rterr("'" .. src .. "' is undefined") end
  return nil
end

local function GA(o, k, src)
  local t = type(o)
  if t == "table" then
    local mt = getmetatable(o)
    if mt == nil or mt == ARRAY_MT then -- plain data: the common case
      if type(k) == "string" then return o[k] end
      if mtype(k) == "integer" and (mt == ARRAY_MT or is_list(o)) then
        return o[pyindex(k, #o)]
      end
    end
  end
  if o == nil then rterr("'" .. src .. "' is undefined") end
  if t == "table" then
    if is_mk(o) then o = o[1]; t = "string"
    else
      if mtype(k) == "integer" and getmetatable(o) ~= NS and is_list(o) then
        return o[pyindex(k, #o)]
      end
      if is_mk(k) then k = k[1] end
      return o[k]
    end
  end
  if t == "string" and mtype(k) == "integer" then
    local n = ulen(o)
    local i = pyindex(k, n)
    if i < 1 or i > n then return nil end
    return usub(o, i, i)
  end
  return nil
end

local function sorted_items(o)
  local out = {}
  for _, k in ipairs(sorted_keys(o)) do out[#out + 1] = {k, o[k]} end
  return out
end

local LOOP_MT = {__name = "LoopContext"}

-- Method calls: loop.cycle(), dict.items()/keys()/values()/get(), a few str methods.
local function CALL(o, m, src, ...)
  if o == nil then rterr("'" .. src .. "' is undefined") end
  local t = type(o)
  if t == "table" and getmetatable(o) == LOOP_MT then
    if m == "cycle" then
      local k = select("#", ...)
      if k == 0 then rterr("no items for cycling given") end
      return (select(o.index0 % k + 1, ...))
    end
  elseif t == "table" and not is_mk(o) then
    if not is_list(o) or next(o) == nil then
      if m == "items" then return sorted_items(o) end
      if m == "keys" then return sorted_keys(o) end
      if m == "values" then
        local out = {}
        for _, k in ipairs(sorted_keys(o)) do out[#out + 1] = o[k] end
        return out
      end
      if m == "get" then
        local k, d = ...
        local v = o[unmk(k)]
        if v == nil then return d == nil and NULL or d end
        return v
      end
    end
  elseif t == "string" or is_mk(o) then
    local s, a, b = S(o), ...
    if m == "upper" then return upper(s) end
    if m == "lower" then return lower(s) end
    if m == "strip" then return (s:gsub("^%s+", ""):gsub("%s+$", "")) end
    if m == "capitalize" then return capitalize(s) end
    if m == "startswith" then a = S(a); return s:sub(1, #a) == a end
    if m == "endswith" then a = S(a); return a == "" or s:sub(-#a) == a end
    if m == "replace" then return plain_replace(s, S(a), S(b)) end
    if m == "split" then
      local out = {}
      if a == nil or a == NULL then
        for w in s:gmatch("%S+") do out[#out + 1] = w end
      else
        a = S(a)
        if a == "" then rterr("empty separator") end
        local pos = 1
        while true do
          local i, j = s:find(a, pos, true)
          if not i then break end
          out[#out + 1] = s:sub(pos, i - 1)
          pos = j + 1
        end
        out[#out + 1] = s:sub(pos)
      end
      return out
    end
  end
  rterr("'" .. tname(o) .. " object' has no attribute '" .. tostring(m) .. "'")
end

-- The items a for loop visits, as a Lua list.
local function ITER(v)
  if v == nil then return {} end
  local t = type(v)
  if t == "table" then
    if is_mk(v) then return uchars(v[1]) end
    if getmetatable(v) ~= NS and is_list(v) then return v end
    return sorted_keys(v)
  end
  if t == "string" then return uchars(v) end
  rterr("'" .. tname(v) .. "' object is not iterable")
end

local function UNPACK(v, n)
  if type(v) ~= "table" or is_mk(v) then
    rterr("cannot unpack non-iterable " .. tname(v) .. " object")
  end
  local k = #v
  if k < n then rterr(("not enough values to unpack (expected %d, got %d)"):format(n, k)) end
  if k > n then rterr(("too many values to unpack (expected %d)"):format(n)) end
  return unpack(v, 1, n)
end

local function LOOP(len) return setmetatable({length = len, depth = 1, depth0 = 0}, LOOP_MT) end

local function LOOPAT(L, seq, i)
  local len = L.length
  L.index, L.index0 = i, i - 1
  L.revindex, L.revindex0 = len - i + 1, len - i
  L.first, L.last = i == 1, i == len
  L.previtem, L.nextitem = seq[i - 1], seq[i + 1]
end

local function num_or_fail(op, a, b)
  rterr(("unsupported operand type(s) for %s: '%s' and '%s'"):format(op, tname(a), tname(b)))
end

local function list_concat(a, b)
  local out = {}
  for i = 1, #a do out[i] = a[i] end
  for i = 1, #b do out[#out + 1] = b[i] end
  return out
end

local function ADD(a, b)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then return a + b end
  if (ta == "string" or is_mk(a)) and (tb == "string" or is_mk(b)) then
    if is_mk(a) or is_mk(b) then return markup(E(a) .. E(b)) end
    return a .. b
  end
  if ta == "table" and tb == "table" and not is_mk(a) and not is_mk(b)
    and is_list(a) and is_list(b) then return list_concat(a, b) end
  num_or_fail("+", a, b)
end

local function SUB(a, b)
  if type(a) == "number" and type(b) == "number" then return a - b end
  num_or_fail("-", a, b)
end

local function MUL(a, b)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then return a * b end
  if ta == "string" and mtype(b) == "integer" then return b > 0 and a:rep(b) or "" end
  if tb == "string" and mtype(a) == "integer" then return a > 0 and b:rep(a) or "" end
  num_or_fail("*", a, b)
end

local function DIV(a, b)
  if type(a) == "number" and type(b) == "number" then
    if b == 0 then rterr("division by zero") end
    return a / b
  end
  num_or_fail("/", a, b)
end

local function FDIV(a, b)
  if type(a) == "number" and type(b) == "number" then
    if b == 0 then rterr("integer division or modulo by zero") end
    return a // b
  end
  num_or_fail("//", a, b)
end

local function MOD(a, b)
  if type(a) == "number" and type(b) == "number" then
    if b == 0 then rterr("integer division or modulo by zero") end
    return a % b
  end
  num_or_fail("%", a, b)
end

local function POW(a, b)
  if type(a) == "number" and type(b) == "number" then
    if mtype(a) == "integer" and mtype(b) == "integer" and b >= 0 then
      local r = 1
      for _ = 1, b do r = r * a end
      return r
    end
    return a ^ b
  end
  num_or_fail("**", a, b)
end

local function NEG(a)
  if type(a) == "number" then return -a end
  rterr("bad operand type for unary -: '" .. tname(a) .. "'")
end

local function POSN(a)
  if type(a) == "number" then return a end
  rterr("bad operand type for unary +: '" .. tname(a) .. "'")
end

-- The ~ operator: strings joined; in an autoescaped template the result is
-- Markup when any part is (the others are escaped), as Jinja2's markup_join.
local function CAT(ae, ...)
  local n = select("#", ...)
  local parts, any = {}, false
  for i = 1, n do
    local v = select(i, ...)
    if is_mk(v) then any = true end
    parts[i] = v
  end
  if ae and any then
    for i = 1, n do parts[i] = E(parts[i]) end
    return markup(concat(parts))
  end
  for i = 1, n do parts[i] = S(parts[i]) end
  return concat(parts)
end

local function EQ(a, b)
  if a == b then return true end
  if is_mk(a) then a = a[1] end
  if is_mk(b) then b = b[1] end
  if a == b then return true end
  local ta, tb = type(a), type(b)
  if ta == "boolean" and tb == "number" then return (a and 1 or 0) == b end
  if tb == "boolean" and ta == "number" then return (b and 1 or 0) == a end
  if ta ~= "table" or tb ~= "table" then return false end
  for k, v in pairs(a) do
    if not EQ(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function ordered(op, a, b)
  a, b = unmk(a), unmk(b)
  local ta, tb = type(a), type(b)
  if (ta == "number" and tb == "number") or (ta == "string" and tb == "string") then
    return a, b
  end
  rterr(("'%s' not supported between instances of '%s' and '%s'"):format(op, tname(a), tname(b)))
end

local function LT(a, b) a, b = ordered("<", a, b); return a < b end
local function GT(a, b) a, b = ordered(">", a, b); return a > b end
local function LE(a, b) a, b = ordered("<=", a, b); return a <= b end
local function GE(a, b) a, b = ordered(">=", a, b); return a >= b end

local function IN(a, b)
  if b == nil then return false end
  b = unmk(b)
  local tb = type(b)
  if tb == "string" then
    a = unmk(a)
    if type(a) ~= "string" then
      rterr("'in <string>' requires string as left operand, not " .. tname(a))
    end
    return b:find(a, 1, true) ~= nil
  end
  if tb == "table" then
    if getmetatable(b) ~= NS and is_list(b) then
      for i = 1, #b do if EQ(a, b[i]) then return true end end
      return false
    end
    return b[unmk(a)] ~= nil
  end
  rterr("argument of type '" .. tname(b) .. "' is not iterable")
end

-- `a or b` / `a and b` as values (Python returns an operand); the F variants
-- take the right side as a function so it is only evaluated when needed.
local function OR(a, b) if T(a) then return a end return b end
local function ORF(a, f) if T(a) then return a end return f() end
local function AND(a, b) if not T(a) then return a end return b end
local function ANDF(a, f) if not T(a) then return a end return f() end
local function SEL(c, a, b) if c then return a end return b end
local function IFX(c, fa, fb)
  if c then return fa() end
  if fb then return fb() end
  return nil
end

local function NSSET(ns, k, v)
  if getmetatable(ns) ~= NS then rterr("cannot assign attribute on non-namespace object") end
  ns[k] = v
end

local function CAPTURE(buf, ae)
  if ae then return markup(concat(buf)) end
  return concat(buf)
end

local function LAYER(ctx, t) return setmetatable(t or {}, {__index = ctx}) end

local function RANGE(a, b, step)
  a = unmk(a); b = unmk(b); step = unmk(step)
  if b == nil then a, b = 0, a end
  step = step or 1
  if mtype(a) ~= "integer" or mtype(b) ~= "integer" or mtype(step) ~= "integer" then
    rterr("range() takes integer arguments")
  end
  if step == 0 then rterr("range() arg 3 must not be zero") end
  local out = {}
  local i = a
  while (step > 0 and i < b) or (step < 0 and i > b) do
    out[#out + 1] = i
    if #out > 100000 then rterr("range() is too big (more than 100000 items)") end
    i = i + step
  end
  return out
end

local function NAMESPACE(t) return setmetatable(t, NS) end

local function REG(blocks, own)
  for name, fn in pairs(own) do
    local chain = blocks[name]
    if chain then chain[#chain + 1] = fn else blocks[name] = {fn} end
  end
end

local function SUPER(ctx, blocks, chain, ci, name)
  local f = chain[ci + 1]
  if not f then rterr("there is no parent block called '" .. name .. "'") end
  local buf = {}
  f(ctx, buf, blocks, chain, ci + 1)
  return markup(concat(buf))
end

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
  for i = 1, #src do items[i] = get(src[i]) end
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
    -- markupsafe 3: Markup.replace escapes the replacement, not the searched text
    local rnew = is_mk(new) and new[1] or escape_str(S(new))
    return markup(plain_replace(v[1], S(old), rnew, count))
  end
  return plain_replace(S(v), S(old), S(new), count)
end)

filter("trim", {"chars"}, function(_, v, chars)
  local s = S(v)
  if chars == nil or chars == NULL then
    s = s:gsub("^%s+", ""):gsub("%s+$", "")
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
    return math.tointeger(v >= 0 and floor(v) or -floor(-v)) or default
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
      return math.tointeger(tonumber(s)) or default
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

filter("wordcount", {}, function(_, v)
  local n = 0
  for _ in S(v):gmatch("[%w\x80-\xF4]+") do n = n + 1 end
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

-- date(format="%B %e, %Y"): an ISO date "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS]"
-- (a time-zone suffix is ignored: the digits are shown as written), a table
-- with year/month/day (herald.to_local), or Unix seconds (UTC). %e and %-d
-- give the day without padding ("June 5"); %-m and %-I likewise.
local MONTHS = {"January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December"}
local DAYS = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

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
  B = function(t) return MONTHS[t.month] end,
  b = function(t) return MONTHS[t.month]:sub(1, 3) end,
  A = function(t) return DAYS[weekday(t.year, t.month, t.day) + 1] end,
  a = function(t) return DAYS[weekday(t.year, t.month, t.day) + 1]:sub(1, 3) end,
  H = function(t) return pad2(t.hour) end,
  I = function(t) return pad2(h12(t)) end,
  M = function(t) return pad2(t.min) end,
  S = function(t) return pad2(t.sec) end,
  p = function(t) return t.hour < 12 and "AM" or "PM" end,
  j = function(t) return string.format("%03d", yday(t.year, t.month, t.day)) end,
  ["%"] = function() return "%" end,
}
local NOPAD = {
  d = function(t) return tostring(t.day) end, e = function(t) return tostring(t.day) end,
  m = function(t) return tostring(t.month) end, H = function(t) return tostring(t.hour) end,
  I = function(t) return tostring(h12(t)) end,
}

filter("date", {"format"}, function(_, v, fmt)
  if v == nil or v == NULL or v == "" then return "" end
  local t = parse_date(v)
  fmt = fmt == nil and "%B %e, %Y" or S(fmt)
  return (fmt:gsub("%%(%-?)(.)", function(dash, c)
    local f = (dash == "-" and NOPAD or DIRECTIVES)[c]
    if not f then rterr("date: unknown format directive '%" .. dash .. c .. "'") end
    return f(t)
  end))
end)

-- currency(code="USD"): "$12,500.00", "-$1,234.50"; EUR €, GBP £, JPY ¥ (no
-- cents); other codes as "CHF 1,234.50".
local CURRENCIES = {
  USD = {"$", 2}, EUR = {"€", 2}, GBP = {"£", 2}, JPY = {"¥", 0},
  CAD = {"CA$", 2}, AUD = {"A$", 2},
}

filter("currency", {"code"}, function(_, v, code)
  if v == nil or v == NULL then return "" end
  local x = unmk(v)
  if type(x) == "string" then x = tonumber((x:gsub("[,%s]", ""))) end
  if type(x) ~= "number" or x ~= x then
    rterr("currency: expected a number, got " .. (type(v) == "string" and ("'" .. v .. "'") or tname(v)))
  end
  code = code == nil and "USD" or upper(S(code))
  local cur = CURRENCIES[code]
  local decimals = cur and cur[2] or 2
  local s = string.format("%." .. decimals .. "f", math.abs(x))
  local int, frac = s:match("^(%d+)(.*)$")
  if #int > 3 then
    local head = (#int - 1) % 3 + 1
    int = int:sub(1, head) .. (int:sub(head + 1):gsub("%d%d%d", ",%0"))
  end
  local neg = x < 0 and tonumber(s) ~= 0
  if cur then return (neg and "-" or "") .. cur[1] .. int .. frac end
  return (neg and "-" or "") .. code .. " " .. int .. frac
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

---------------------------------------------------------------------------
-- Errors and positions. Compile errors are raised as {tplerr = "name:line: msg"};
-- render errors are strings, and the render wrapper prefixes the position the
-- compiled code last recorded in POS[1] (template id * LINES + line).
---------------------------------------------------------------------------

local POS = {0}
local LINES = 16777216
local NAMES = {}
local next_tid = 0

local function fail(name, line, msg)
  error({tplerr = ("%s:%d: %s"):format(name, line or 0, msg)}, 0)
end

local function format_error(err)
  if type(err) == "table" and err.tplerr then return err.tplerr end
  local code = POS[1] or 0
  local name = NAMES[code // LINES] or "?"
  return ("%s:%d: %s"):format(name, code % LINES, tostring(err))
end

---------------------------------------------------------------------------
-- Lexer: text, {{ }}, {% %}, {# #}, raw; expression tokens inside tags.
---------------------------------------------------------------------------

local OPS2 = {["//"] = true, ["**"] = true, ["=="] = true, ["!="] = true,
  ["<="] = true, [">="] = true}
local OPS1 = "+-*/%~<>=()[]{},.:|"

local function count_nl(s)
  local _, n = s:gsub("\n", "")
  return n
end

local SIMPLE_ESC = {n = "\n", t = "\t", r = "\r", ["\\"] = "\\", ["'"] = "'", ['"'] = '"',
  a = "\a", b = "\b", f = "\f", v = "\v", ["0"] = "\0", ["\n"] = ""}

-- Backslash escapes in a string literal, as Python's unicode-escape.
local function unescape_string(body)
  if not body:find("\\", 1, true) then return body end
  local out, i, n = {}, 1, #body
  while i <= n do
    local c = body:sub(i, i)
    if c ~= "\\" or i == n then
      out[#out + 1] = c
      i = i + 1
    else
      local d = body:sub(i + 1, i + 1)
      local want = (d == "x" and 2) or (d == "u" and 4) or (d == "U" and 8)
      local hex = want and body:sub(i + 2, i + 1 + want)
      if want and #hex == want and hex:match("^%x+$") then
        out[#out + 1] = utf8.char(tonumber(hex, 16))
        i = i + 2 + want
      elseif SIMPLE_ESC[d] then
        out[#out + 1] = SIMPLE_ESC[d]
        i = i + 2
      else
        out[#out + 1] = "\\" .. d
        i = i + 2
      end
    end
  end
  return concat(out)
end

local function lex_expr(src, p, name, line, kind, open_line)
  local toks = {}
  local depth = 0
  local len = #src
  local close = kind == "{" and "}}" or "%}"
  local rs = false
  while true do
    local ws = src:match("^[ \t\r\n]*", p)
    line = line + count_nl(ws)
    p = p + #ws
    if p > len then
      fail(name, open_line, ("unclosed '%s' (missing '%s')"):format(kind == "{" and "{{" or "{%",
        close))
    end
    if depth == 0 then
      if src:sub(p, p + 2) == "-" .. close then rs = true; p = p + 3; break end
      if kind == "%" and src:sub(p, p + 2) == "+%}" then p = p + 3; break end
      if src:sub(p, p + 1) == close then p = p + 2; break end
    end
    local c = src:sub(p, p)
    if c:match("[%a_]") then
      local w = src:match("^[%w_]+", p)
      toks[#toks + 1] = {t = "name", v = w, line = line}
      p = p + #w
    elseif c:match("%d") then
      local after_dot = #toks > 0 and toks[#toks].t == "op" and toks[#toks].v == "."
      local num = src:match("^%d[%d_]*", p)
      local isfloat = false
      if not after_dot then
        local f = src:match("^%d[%d_]*%.%d[%d_]*[eE][+-]?%d[%d_]*", p)
          or src:match("^%d[%d_]*%.%d[%d_]*", p)
          or src:match("^%d[%d_]*[eE][+-]?%d[%d_]*", p)
        if f then num, isfloat = f, true end
      end
      p = p + #num
      local clean = num:gsub("_", "")
      local v = isfloat and (tonumber(clean) + 0.0) or math.tointeger(tonumber(clean))
      if v == nil then v = tonumber(clean) end
      toks[#toks + 1] = {t = "num", v = v, line = line}
    elseif c == "'" or c == '"' then
      local q = p + 1
      local start_line = line
      while true do
        local ch = src:sub(q, q)
        if ch == "" then fail(name, start_line, "unterminated string") end
        if ch == "\\" then q = q + 2
        elseif ch == c then break
        else
          if ch == "\n" then line = line + 1 end
          q = q + 1
        end
      end
      local body = src:sub(p + 1, q - 1)
      toks[#toks + 1] = {t = "str", v = unescape_string(body), line = start_line}
      p = q + 1
    else
      local two = src:sub(p, p + 1)
      local op
      if OPS2[two] then op = two
      elseif OPS1:find(c, 1, true) then op = c
      else fail(name, line, "unexpected character '" .. c .. "'") end
      if op == "(" or op == "[" or op == "{" then depth = depth + 1
      elseif (op == ")" or op == "]" or op == "}") and depth > 0 then depth = depth - 1 end
      toks[#toks + 1] = {t = "op", v = op, line = line}
      p = p + #op
    end
  end
  return toks, p, line, rs
end

local function lex(src, name)
  src = src:gsub("\r\n?", "\n")
  if src:sub(-1) == "\n" then src = src:sub(1, -2) end
  local toks = {}
  local pos, line, len = 1, 1, #src
  while pos <= len do
    local s = src:find("{[{%%#]", pos)
    if not s then
      toks[#toks + 1] = {kind = "text", value = src:sub(pos), line = line}
      break
    end
    if s > pos then
      local text = src:sub(pos, s - 1)
      toks[#toks + 1] = {kind = "text", value = text, line = line}
      line = line + count_nl(text)
    end
    local kind = src:sub(s + 1, s + 1)
    local p = s + 2
    local ls = false
    local c = src:sub(p, p)
    if c == "-" then ls = true; p = p + 1
    elseif c == "+" and kind == "%" then p = p + 1 end
    local open_line = line
    if kind == "#" then
      local e = src:find("#}", p, true)
      if not e then fail(name, open_line, "unclosed comment (missing '#}')") end
      local rs = e > p and src:sub(e - 1, e - 1) == "-"
      line = line + count_nl(src:sub(s, e + 1))
      toks[#toks + 1] = {kind = "comment", ls = ls, rs = rs, line = open_line}
      pos = e + 2
    else
      local raw_b, raw_e, raw_rs = src:find("^%s*raw%s*(%-?)%%}", p)
      if kind == "%" and raw_b then
        local e1, e2, els, ers = src:find("{%%(%-?)%s*endraw%s*(%-?)%%}", raw_e + 1)
        if not e1 then fail(name, open_line, "unclosed 'raw' (expected 'endraw')") end
        local text = src:sub(raw_e + 1, e1 - 1)
        if raw_rs == "-" then text = text:gsub("^%s+", "") end
        if els == "-" then text = text:gsub("%s+$", "") end
        toks[#toks + 1] = {kind = "raw", value = text, ls = ls, rs = ers == "-", line = open_line}
        line = line + count_nl(src:sub(s, e2))
        pos = e2 + 1
      else
        local etoks, np, nline, rs = lex_expr(src, p, name, line, kind, open_line)
        toks[#toks + 1] = {kind = kind == "{" and "var" or "block", toks = etoks, ls = ls,
          rs = rs, line = open_line, end_line = nline}
        line = nline
        pos = np
      end
    end
  end
  -- whitespace control: `-` strips the whitespace on its side, newlines included
  for i, t in ipairs(toks) do
    if t.kind == "text" then
      local prev, nxt = toks[i - 1], toks[i + 1]
      if prev and prev.rs then t.value = t.value:gsub("^%s+", "") end
      if nxt and nxt.ls then t.value = t.value:gsub("%s+$", "") end
    end
  end
  return toks
end

---------------------------------------------------------------------------
-- Parser: tokens of one tag -> expression nodes; the template -> statements.
---------------------------------------------------------------------------

local Parser = {}
Parser.__index = Parser

local function new_parser(tok, name)
  return setmetatable({toks = tok.toks, i = 1, name = name,
    eof = {t = "eof", line = tok.end_line or tok.line}}, Parser)
end

function Parser:peek(k) return self.toks[self.i + (k or 0)] or self.eof end
function Parser:next()
  local t = self:peek()
  self.i = self.i + 1
  return t
end
function Parser:is(t, v)
  local tok = self:peek()
  return tok.t == t and (v == nil or tok.v == v)
end
function Parser:accept(t, v) if self:is(t, v) then return self:next() end end

local function describe(tok)
  if tok.t == "eof" then return "end of tag" end
  if tok.t == "str" then return "string " .. repr(tok.v) end
  return "'" .. tostring(tok.v) .. "'"
end

function Parser:fail(msg, tok) fail(self.name, (tok or self:peek()).line, msg) end
function Parser:expect(t, v, what)
  if self:is(t, v) then return self:next() end
  self:fail("expected " .. (what or ("'" .. tostring(v) .. "'")) .. ", got " .. describe(self:peek()))
end
function Parser:expect_end()
  if not self:is("eof") then self:fail("unexpected " .. describe(self:peek())) end
end

local function src_of(node)
  if node.k == "name" then return node.n end
  if node.k == "getattr" then return src_of(node.o) .. "." .. tostring(node.key) end
  if node.k == "getitem" then
    local key = node.key.k == "lit" and repr(node.key.v) or "..."
    return src_of(node.o) .. "[" .. key .. "]"
  end
  return "value"
end

local parse_expression, parse_or, parse_unary, parse_primary

local function parse_args(p)
  -- after '(' : positional and keyword arguments up to ')'
  local args, kwargs = {}, {}
  while not p:accept("op", ")") do
    if #args > 0 or next(kwargs) then p:expect("op", ",") end
    if p:accept("op", ")") then break end
    if p:is("name") and p:peek(1).t == "op" and p:peek(1).v == "=" then
      local k = p:next().v
      p:next()
      if kwargs[k] then p:fail("keyword argument '" .. k .. "' repeated") end
      kwargs[k] = parse_expression(p)
      kwargs[#kwargs + 1] = k
    else
      if next(kwargs) then p:fail("positional argument follows keyword argument") end
      args[#args + 1] = parse_expression(p)
    end
  end
  return args, kwargs
end

local function parse_postfix(p, node)
  while true do
    local tok = p:peek()
    if tok.t == "op" and tok.v == "." then
      p:next()
      local k = p:next()
      if k.t == "name" then node = {k = "getattr", o = node, key = k.v, line = k.line}
      elseif k.t == "num" and mtype(k.v) == "integer" then
        node = {k = "getattr", o = node, key = k.v, line = k.line}
      else p:fail("expected an attribute name after '.', got " .. describe(k), k) end
    elseif tok.t == "op" and tok.v == "[" then
      p:next()
      if p:is("op", ":") then p:fail("slices are not supported") end
      local key = parse_expression(p)
      if p:is("op", ":") then p:fail("slices are not supported") end
      p:expect("op", "]")
      node = {k = "getitem", o = node, key = key, line = tok.line}
    elseif tok.t == "op" and tok.v == "(" then
      p:next()
      local args, kwargs = parse_args(p)
      node = {k = "call", fn = node, args = args, kwargs = kwargs, line = tok.line}
    else
      return node
    end
  end
end

local function parse_filter_expr(p, node)
  while true do
    if p:accept("op", "|") then
      local tok = p:expect("name", nil, "a filter name")
      local args, kwargs = {}, {}
      if p:accept("op", "(") then args, kwargs = parse_args(p) end
      node = {k = "filter", e = node, name = tok.v, args = args, kwargs = kwargs, line = tok.line}
    elseif p:is("name", "is") then
      local is_tok = p:next()
      local neg = p:accept("name", "not") ~= nil
      local tok = p:next()
      if tok.t ~= "name" then p:fail("expected a test name, got " .. describe(tok), tok) end
      local args, kwargs = {}, {}
      if p:accept("op", "(") then
        args, kwargs = parse_args(p)
      else
        local c = p:peek()
        if (c.t == "str" or c.t == "num" or (c.t == "op" and (c.v == "[" or c.v == "{"))
            or (c.t == "name" and c.v ~= "else" and c.v ~= "or" and c.v ~= "and"
              and c.v ~= "if" and c.v ~= "is" and c.v ~= "in" and c.v ~= "not"))
            and not p:is("eof") then
          args[1] = parse_postfix(p, parse_primary(p))
        end
      end
      node = {k = "test", e = node, name = tok.v, args = args, kwargs = kwargs, neg = neg,
        line = is_tok.line}
    elseif p:is("op", "(") then
      local tok = p:next()
      local args, kwargs = parse_args(p)
      node = {k = "call", fn = node, args = args, kwargs = kwargs, line = tok.line}
    else
      return node
    end
  end
end

parse_primary = function(p)
  local tok = p:next()
  if tok.t == "name" then
    local v = tok.v
    if v == "true" or v == "True" then return {k = "lit", v = true, line = tok.line} end
    if v == "false" or v == "False" then return {k = "lit", v = false, line = tok.line} end
    if v == "none" or v == "None" then return {k = "lit", v = NULL, line = tok.line} end
    return {k = "name", n = v, line = tok.line}
  elseif tok.t == "str" then
    local s = tok.v
    while p:is("str") do s = s .. p:next().v end
    return {k = "lit", v = s, line = tok.line}
  elseif tok.t == "num" then
    return {k = "lit", v = tok.v, line = tok.line}
  elseif tok.t == "op" and tok.v == "(" then
    if p:accept("op", ")") then return {k = "list", items = {}, line = tok.line} end
    local first = parse_expression(p)
    if p:accept("op", ")") then return first end
    local items = {first}
    while p:accept("op", ",") do
      if p:is("op", ")") then break end
      items[#items + 1] = parse_expression(p)
    end
    p:expect("op", ")")
    return {k = "list", items = items, line = tok.line}
  elseif tok.t == "op" and tok.v == "[" then
    local items = {}
    while not p:accept("op", "]") do
      if #items > 0 then
        p:expect("op", ",")
        if p:accept("op", "]") then break end
      end
      items[#items + 1] = parse_expression(p)
    end
    return {k = "list", items = items, line = tok.line}
  elseif tok.t == "op" and tok.v == "{" then
    local pairs_ = {}
    while not p:accept("op", "}") do
      if #pairs_ > 0 then
        p:expect("op", ",")
        if p:accept("op", "}") then break end
      end
      local k = parse_expression(p)
      p:expect("op", ":")
      pairs_[#pairs_ + 1] = {k, parse_expression(p)}
    end
    return {k = "dict", pairs = pairs_, line = tok.line}
  end
  p:fail("unexpected " .. describe(tok), tok)
end

parse_unary = function(p, with_filter)
  local node
  local tok = p:peek()
  if tok.t == "op" and tok.v == "-" then
    p:next()
    node = {k = "neg", e = parse_unary(p, false), line = tok.line}
  elseif tok.t == "op" and tok.v == "+" then
    p:next()
    node = {k = "pos", e = parse_unary(p, false), line = tok.line}
  else
    node = parse_postfix(p, parse_primary(p))
  end
  if with_filter ~= false then node = parse_filter_expr(p, node) end
  return node
end

local function parse_pow(p)
  local left = parse_unary(p)
  while p:is("op", "**") do
    local tok = p:next()
    left = {k = "bin", op = "**", a = left, b = parse_unary(p), line = tok.line}
  end
  return left
end

local function parse_math2(p)
  local left = parse_pow(p)
  while p:is("op", "*") or p:is("op", "/") or p:is("op", "//") or p:is("op", "%") do
    local tok = p:next()
    left = {k = "bin", op = tok.v, a = left, b = parse_pow(p), line = tok.line}
  end
  return left
end

local function parse_concat(p)
  local first = parse_math2(p)
  if not p:is("op", "~") then return first end
  local parts = {first}
  while p:accept("op", "~") do parts[#parts + 1] = parse_math2(p) end
  return {k = "concat", parts = parts, line = first.line}
end

local function parse_math1(p)
  local left = parse_concat(p)
  while p:is("op", "+") or p:is("op", "-") do
    local tok = p:next()
    left = {k = "bin", op = tok.v, a = left, b = parse_concat(p), line = tok.line}
  end
  return left
end

local CMP = {["=="] = "eq", ["!="] = "ne", ["<"] = "lt", [">"] = "gt", ["<="] = "le", [">="] = "ge"}

local function parse_compare(p)
  local first = parse_math1(p)
  local ops = {}
  while true do
    local tok = p:peek()
    if tok.t == "op" and CMP[tok.v] then
      p:next()
      ops[#ops + 1] = {CMP[tok.v], parse_math1(p)}
    elseif tok.t == "name" and tok.v == "in" then
      p:next()
      ops[#ops + 1] = {"in", parse_math1(p)}
    elseif tok.t == "name" and tok.v == "not" and p:peek(1).t == "name" and p:peek(1).v == "in" then
      p:next(); p:next()
      ops[#ops + 1] = {"notin", parse_math1(p)}
    else
      break
    end
  end
  if #ops == 0 then return first end
  return {k = "cmp", first = first, ops = ops, line = first.line}
end

local function parse_not(p)
  local tok = p:peek()
  if tok.t == "name" and tok.v == "not" then
    p:next()
    return {k = "not", e = parse_not(p), line = tok.line}
  end
  return parse_compare(p)
end

local function parse_and(p)
  local left = parse_not(p)
  while p:accept("name", "and") do left = {k = "and", a = left, b = parse_not(p), line = left.line} end
  return left
end

parse_or = function(p)
  local left = parse_and(p)
  while p:accept("name", "or") do left = {k = "or", a = left, b = parse_and(p), line = left.line} end
  return left
end

parse_expression = function(p, no_cond)
  local node = parse_or(p)
  if no_cond then return node end
  while p:is("name", "if") do
    local tok = p:next()
    local c = parse_or(p)
    local other
    if p:accept("name", "else") then other = parse_expression(p) end
    node = {k = "cond", test = c, a = node, b = other, line = tok.line}
  end
  return node
end

local function parse_tuple(p, no_cond)
  local items, is_tuple = {}, false
  while true do
    if #items > 0 then
      if not p:accept("op", ",") then break end
      is_tuple = true
    end
    if p:is("eof") or p:is("name", "if") or p:is("name", "recursive") then break end
    items[#items + 1] = parse_expression(p, no_cond)
  end
  if #items == 0 then p:fail("expected an expression, got " .. describe(p:peek())) end
  if not is_tuple then return items[1] end
  return {k = "list", items = items, line = items[1].line}
end

local RESERVED = {["and"] = true, ["or"] = true, ["not"] = true, ["in"] = true, ["is"] = true,
  ["if"] = true, ["else"] = true, ["true"] = true, ["false"] = true, ["none"] = true,
  ["True"] = true, ["False"] = true, ["None"] = true}

local function parse_target(p, allow_ns)
  local names = {}
  repeat
    local tok = p:expect("name", nil, "a variable name")
    if RESERVED[tok.v] then p:fail("cannot assign to '" .. tok.v .. "'", tok) end
    if allow_ns and #names == 0 and p:accept("op", ".") then
      local attr = p:expect("name", nil, "an attribute name")
      return {ns = tok.v, attr = attr.v}
    end
    names[#names + 1] = tok.v
  until not p:accept("op", ",")
  return {names = names}
end

local END_TAGS = {endif = true, endfor = true, endblock = true, endset = true, elif = true,
  ["else"] = true, endraw = true, endmacro = true, endcall = true, endfilter = true,
  endwith = true, endautoescape = true}
local UNSUPPORTED = {macro = true, call = true, filter = true, with = true, import = true,
  from = true, autoescape = true, ["do"] = true, ["break"] = true, continue = true, trans = true}

local function fmt_ends(ends)
  local list = {}
  for _, k in ipairs(ends) do list[#list + 1] = "'" .. k .. "'" end
  if #list == 1 then return list[1] end
  return concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
end

local function parse_template(toks, name)
  local i = 1
  local STMT = {}

  local function parse_body(ends, opener)
    local body = {}
    local endset = {}
    for _, e in ipairs(ends or {}) do endset[e] = true end
    while true do
      local t = toks[i]
      if not t then
        if opener then
          fail(name, opener.line, ("unclosed '%s': expected %s before the end of the template")
            :format(opener.tag, fmt_ends(ends)))
        end
        return body
      end
      i = i + 1
      if t.kind == "text" or t.kind == "raw" then
        if t.value ~= "" then body[#body + 1] = {k = "text", v = t.value, line = t.line} end
      elseif t.kind == "var" then
        local p = new_parser(t, name)
        local e = parse_tuple(p)
        p:expect_end()
        body[#body + 1] = {k = "out", e = e, line = t.line}
      elseif t.kind == "block" then
        local p = new_parser(t, name)
        local tagtok = p:next()
        if tagtok.t ~= "name" then fail(name, t.line, "expected a tag name after '{%'") end
        local tag = tagtok.v
        if endset[tag] then return body, tag, p, t end
        local stmt = STMT[tag]
        if not stmt then
          if END_TAGS[tag] then
            if opener then
              fail(name, t.line, ("unexpected '%s': expected %s to close '%s' from line %d")
                :format(tag, fmt_ends(ends), opener.tag, opener.line))
            end
            fail(name, t.line, "unexpected '" .. tag .. "': no open block to end")
          end
          if UNSUPPORTED[tag] then
            fail(name, t.line, "unknown tag '" .. tag .. "' (not supported by Herald's template engine)")
          end
          fail(name, t.line, "unknown tag '" .. tag .. "'")
        end
        body[#body + 1] = stmt(p, t)
      end
    end
  end

  STMT["if"] = function(p, t)
    local node = {k = "if", conds = {}, line = t.line}
    local cond = parse_expression(p, true)
    p:expect_end()
    local opener = {tag = "if", line = t.line}
    local cline = t.line
    while true do
      local body, tag, p2, t2 = parse_body({"elif", "else", "endif"}, opener)
      node.conds[#node.conds + 1] = {cond = cond, body = body, line = cline}
      if tag == "elif" then
        cond = parse_expression(p2, true)
        p2:expect_end()
        cline = t2.line
      elseif tag == "else" then
        p2:expect_end()
        local eb, _, p3 = parse_body({"endif"}, opener)
        p3:expect_end()
        node.else_ = eb
        return node
      else
        p2:expect_end()
        return node
      end
    end
  end

  STMT["for"] = function(p, t)
    local target = parse_target(p, false)
    p:expect("name", "in", "'in'")
    local iter = parse_tuple(p, true)
    local filt
    if p:accept("name", "if") then filt = parse_expression(p, true) end
    if p:is("name", "recursive") then p:fail("recursive loops are not supported") end
    p:expect_end()
    local opener = {tag = "for", line = t.line}
    local body, tag, p2 = parse_body({"else", "endfor"}, opener)
    p2:expect_end()
    local else_
    if tag == "else" then
      local p3
      else_, _, p3 = parse_body({"endfor"}, opener)
      p3:expect_end()
    end
    return {k = "for", targets = target.names, iter = iter, filter = filt, body = body,
      else_ = else_, line = t.line}
  end

  STMT["set"] = function(p, t)
    local target = parse_target(p, true)
    if p:accept("op", "=") then
      local e = parse_tuple(p)
      p:expect_end()
      if target.ns then return {k = "setattr", ns = target.ns, attr = target.attr, e = e, line = t.line} end
      return {k = "set", targets = target.names, e = e, line = t.line}
    end
    p:expect_end()
    if target.ns or #target.names ~= 1 then p:fail("a block set takes one variable name") end
    local body, _, p2 = parse_body({"endset"}, {tag = "set", line = t.line})
    p2:expect_end()
    return {k = "setblock", target = target.names[1], body = body, line = t.line}
  end

  STMT["include"] = function(p, t)
    local e = parse_expression(p)
    local node = {k = "include", e = e, with_context = true, line = t.line}
    if p:is("name", "ignore") and p:peek(1).t == "name" and p:peek(1).v == "missing" then
      p:next(); p:next()
      node.ignore_missing = true
    end
    if p:accept("name", "with") then p:expect("name", "context")
    elseif p:accept("name", "without") then p:expect("name", "context"); node.with_context = false end
    p:expect_end()
    return node
  end

  STMT["extends"] = function(p, t)
    local e = parse_expression(p)
    p:expect_end()
    if e.k ~= "lit" or type(e.v) ~= "string" then
      fail(name, t.line, "extends takes a template name as a string literal")
    end
    return {k = "extends", name = e.v, line = t.line}
  end

  STMT["block"] = function(p, t)
    local tok = p:expect("name", nil, "a block name")
    if p:is("name", "scoped") or p:is("name", "required") then
      p:fail("block modifiers (scoped, required) are not supported")
    end
    p:expect_end()
    local body, _, p2 = parse_body({"endblock"}, {tag = "block", line = t.line})
    local endname = p2:accept("name")
    if endname and endname.v ~= tok.v then
      p2:fail(("endblock '%s' does not match block '%s'"):format(endname.v, tok.v), endname)
    end
    p2:expect_end()
    return {k = "block", name = tok.v, body = body, line = t.line}
  end

  return parse_body(nil, nil)
end

---------------------------------------------------------------------------
-- Code generation: statements -> Lua source.
---------------------------------------------------------------------------

local function q(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

local function numlit(v)
  if mtype(v) == "integer" then
    if v == math.mininteger then return "math.mininteger" end
    return string.format("%d", v)
  end
  if v ~= v then return "(0/0)" end
  if v == math.huge then return "(1/0)" end
  if v == -math.huge then return "(-1/0)" end
  return (string.format("%.17g", v):gsub("^(-?%d+)$", "%1.0"))
end

local Gen = {}
Gen.__index = Gen

function Gen:fail(line, msg) fail(self.name, line, msg) end

function Gen:tmp()
  self.ntmp = self.ntmp + 1
  return self.ntmp
end

function Gen:resolve(scope, n)
  local s = scope
  while s do
    local v = s.vars[n]
    if v then
      if n == "loop" and s.loop then s.loop_used = true end
      return v
    end
    s = s.parent
  end
  return "ctx[" .. q(n) .. "]"
end

-- Names assigned by set in these statements, not entering for loops or blocks.
local function hoist(stmts, out)
  for _, node in ipairs(stmts) do
    if node.k == "set" then
      for _, n in ipairs(node.targets) do out[#out + 1] = n end
    elseif node.k == "setblock" then
      out[#out + 1] = node.target
      hoist(node.body, out)
    elseif node.k == "if" then
      for _, c in ipairs(node.conds) do hoist(c.body, out) end
      if node.else_ then hoist(node.else_, out) end
    end
  end
  return out
end

local PURE = {lit = true, name = true}

function Gen:args(list, scope)
  local out = {}
  for i, a in ipairs(list) do out[i] = self:val(a, scope) end
  return out
end

-- Positional + keyword arguments mapped onto the declared parameters.
function Gen:bind(kind, name, params, args, kwargs, scope, line)
  if #args > #params then
    self:fail(line, ("%s '%s' takes at most %d argument%s (%d given)")
      :format(kind, name, #params, #params == 1 and "" or "s", #args))
  end
  local vals = self:args(args, scope)
  for _, k in ipairs(kwargs) do
    local idx
    for j, pn in ipairs(params) do if pn == k then idx = j end end
    if not idx then self:fail(line, ("%s '%s' got an unexpected keyword argument '%s'")
      :format(kind, name, k)) end
    if vals[idx] then self:fail(line, ("%s '%s' got multiple values for argument '%s'")
      :format(kind, name, k)) end
    vals[idx] = self:val(kwargs[k], scope)
  end
  local n = 0
  for j = 1, #params do if vals[j] then n = j end end
  local out = {}
  for j = 1, n do out[j] = vals[j] or "nil" end
  return out
end

function Gen:cond(e, scope)
  local k = e.k
  if k == "and" then return "(" .. self:cond(e.a, scope) .. " and " .. self:cond(e.b, scope) .. ")" end
  if k == "or" then return "(" .. self:cond(e.a, scope) .. " or " .. self:cond(e.b, scope) .. ")" end
  if k == "not" then return "(not " .. self:cond(e.e, scope) .. ")" end
  if k == "cmp" or k == "test" then return self:val(e, scope) end
  if k == "lit" and type(e.v) == "boolean" then return tostring(e.v) end
  return "T(" .. self:val(e, scope) .. ")"
end

local BINOP = {["+"] = "ADD", ["-"] = "SUB", ["*"] = "MUL", ["/"] = "DIV", ["//"] = "FDIV",
  ["%"] = "MOD", ["**"] = "POW"}
local CMPFN = {eq = "EQ", lt = "LT", gt = "GT", le = "LE", ge = "GE", ["in"] = "IN"}

function Gen:val(e, scope)
  local k = e.k
  if k == "lit" then
    local v = e.v
    if v == NULL then return "NULL" end
    if type(v) == "string" then return q(v) end
    if type(v) == "number" then return numlit(v) end
    return tostring(v)
  elseif k == "name" then
    return self:resolve(scope, e.n)
  elseif k == "getattr" then
    if type(e.key) == "string" then
      return "GAS(" .. self:val(e.o, scope) .. "," .. q(e.key) .. "," .. q(src_of(e.o)) .. ")"
    end
    return "GA(" .. self:val(e.o, scope) .. "," .. numlit(e.key) .. "," .. q(src_of(e.o)) .. ")"
  elseif k == "getitem" then
    return "GA(" .. self:val(e.o, scope) .. "," .. self:val(e.key, scope) .. "," ..
      q(src_of(e.o)) .. ")"
  elseif k == "list" then
    return "{" .. concat(self:args(e.items, scope), ",") .. "}"
  elseif k == "dict" then
    local parts = {}
    for _, pr in ipairs(e.pairs) do
      parts[#parts + 1] = "[" .. self:val(pr[1], scope) .. "]=" .. self:val(pr[2], scope)
    end
    return "{" .. concat(parts, ",") .. "}"
  elseif k == "cond" then
    local c = self:cond(e.test, scope)
    if PURE[e.a.k] and (e.b == nil or PURE[e.b.k]) then
      return "SEL(" .. c .. "," .. self:val(e.a, scope) .. "," ..
        (e.b and self:val(e.b, scope) or "nil") .. ")"
    end
    return "IFX(" .. c .. ",function() return " .. self:val(e.a, scope) .. " end," ..
      (e.b and ("function() return " .. self:val(e.b, scope) .. " end") or "nil") .. ")"
  elseif k == "and" or k == "or" then
    local fn = k == "and" and "AND" or "OR"
    if PURE[e.b.k] then
      return fn .. "(" .. self:val(e.a, scope) .. "," .. self:val(e.b, scope) .. ")"
    end
    return fn .. "F(" .. self:val(e.a, scope) .. ",function() return " .. self:val(e.b, scope) ..
      " end)"
  elseif k == "not" then
    return "(not " .. self:cond(e.e, scope) .. ")"
  elseif k == "cmp" then
    local parts = {}
    local left = self:val(e.first, scope)
    for _, op in ipairs(e.ops) do
      local right = self:val(op[2], scope)
      local o = op[1]
      if o == "ne" then parts[#parts + 1] = "(not EQ(" .. left .. "," .. right .. "))"
      elseif o == "notin" then parts[#parts + 1] = "(not IN(" .. left .. "," .. right .. "))"
      else parts[#parts + 1] = CMPFN[o] .. "(" .. left .. "," .. right .. ")" end
      left = right
    end
    return "(" .. concat(parts, " and ") .. ")"
  elseif k == "bin" then
    return BINOP[e.op] .. "(" .. self:val(e.a, scope) .. "," .. self:val(e.b, scope) .. ")"
  elseif k == "neg" then
    return "NEG(" .. self:val(e.e, scope) .. ")"
  elseif k == "pos" then
    return "POSN(" .. self:val(e.e, scope) .. ")"
  elseif k == "concat" then
    return "CAT(AE," .. concat(self:args(e.parts, scope), ",") .. ")"
  elseif k == "filter" then
    local params = FSPEC[e.name]
    if not params then self:fail(e.line, "unknown filter '" .. e.name .. "'") end
    local args = self:bind("filter", e.name, params, e.args, e.kwargs, scope, e.line)
    local call = "F[" .. q(e.name) .. "](AE," .. self:val(e.e, scope)
    if #args > 0 then call = call .. "," .. concat(args, ",") end
    return call .. ")"
  elseif k == "test" then
    local r
    if e.name == "defined" or e.name == "undefined" or e.name == "none" then
      if #e.args > 0 or next(e.kwargs) then self:fail(e.line, "test '" .. e.name .. "' takes no arguments") end
      local v = self:val(e.e, scope)
      if e.name == "defined" then r = "(" .. v .. "~=nil)"
      elseif e.name == "undefined" then r = "(" .. v .. "==nil)"
      else r = "(" .. v .. "==NULL)" end
    else
      local params = TSPEC[e.name]
      if not params then self:fail(e.line, "unknown test '" .. e.name .. "'") end
      local args = self:bind("test", e.name, params, e.args, e.kwargs, scope, e.line)
      r = "TESTS[" .. q(e.name) .. "](" .. self:val(e.e, scope)
      if #args > 0 then r = r .. "," .. concat(args, ",") end
      r = r .. ")"
    end
    if e.neg then return "(not " .. r .. ")" end
    return r
  elseif k == "call" then
    return self:call(e, scope)
  end
  self:fail(e.line, "unsupported expression")
end

function Gen:call(e, scope)
  local fn = e.fn
  if fn.k == "name" then
    local n = fn.n
    if n == "range" then
      if next(e.kwargs) or #e.args < 1 or #e.args > 3 then
        self:fail(e.line, "range() takes 1 to 3 positional arguments")
      end
      return "RANGE(" .. concat(self:args(e.args, scope), ",") .. ")"
    elseif n == "namespace" or n == "dict" then
      if #e.args > 0 then self:fail(e.line, n .. "() takes keyword arguments only") end
      local parts = {}
      for _, key in ipairs(e.kwargs) do
        parts[#parts + 1] = "[" .. q(key) .. "]=" .. self:val(e.kwargs[key], scope)
      end
      local t = "{" .. concat(parts, ",") .. "}"
      if n == "namespace" then return "NAMESPACE(" .. t .. ")" end
      return t
    elseif n == "super" then
      if not self.block then self:fail(e.line, "super() is only available inside a block") end
      return "SUPER(ctx,blocks,chain,ci," .. q(self.block) .. ")"
    end
    self:fail(e.line, "unknown function '" .. n .. "'")
  elseif fn.k == "getattr" and type(fn.key) == "string" then
    if next(e.kwargs) then self:fail(e.line, "keyword arguments are not supported in method calls") end
    local args = self:args(e.args, scope)
    local call = "CALL(" .. self:val(fn.o, scope) .. "," .. q(fn.key) .. "," .. q(src_of(fn.o))
    if #args > 0 then call = call .. "," .. concat(args, ",") end
    return call .. ")"
  end
  self:fail(e.line, "this expression cannot be called")
end

function Gen:pos(buf, line)
  buf[#buf + 1] = "POS[1]=" .. string.format("%d", self.tid * LINES + line)
end

function Gen:assign(buf, scope, target, value)
  local lhs = self:resolve(scope, target)
  buf[#buf + 1] = lhs .. "=" .. value
end

function Gen:load_sub(name, line, ignore_missing)
  local env = self.env
  if env.compiling[name] then return nil end
  local tpl, err = M._load(env, name)
  if not tpl then
    if err == "missing" then
      if ignore_missing then return nil end
      self:fail(line, "template '" .. name .. "' not found")
    end
    error(err, 0)
  end
  self.subs[#self.subs + 1] = tpl
  return #self.subs
end

function Gen:stmts(list, scope, buf)
  for _, node in ipairs(list) do self:stmt(node, scope, buf) end
end

function Gen:stmt(node, scope, buf)
  local k = node.k
  if k == "text" then
    if not self.suppress then buf[#buf + 1] = "n=n+1 out[n]=" .. q(node.v) end
  elseif k == "out" then
    if self.suppress then return end
    self:pos(buf, node.line)
    buf[#buf + 1] = "n=n+1 out[n]=" .. (self.ae and "E(" or "S(") .. self:val(node.e, scope) .. ")"
  elseif k == "if" then
    local saved_ctl = self.in_control
    self.in_control = true
    local closes = 0
    for idx, c in ipairs(node.conds) do
      if idx > 1 then buf[#buf + 1] = "else" end
      self:pos(buf, c.line)
      buf[#buf + 1] = "if " .. self:cond(c.cond, scope) .. " then"
      closes = closes + 1
      self:stmts(c.body, scope, buf)
    end
    if node.else_ then
      buf[#buf + 1] = "else"
      self:stmts(node.else_, scope, buf)
    end
    for _ = 1, closes do buf[#buf + 1] = "end" end
    self.in_control = saved_ctl
  elseif k == "for" then
    self:for_stmt(node, scope, buf)
  elseif k == "set" then
    self:pos(buf, node.line)
    local v = self:val(node.e, scope)
    if #node.targets == 1 then
      self:assign(buf, scope, node.targets[1], v)
    else
      local t = "t" .. self:tmp()
      local locals = {}
      for j = 1, #node.targets do locals[j] = t .. "_" .. j end
      buf[#buf + 1] = "do local " .. concat(locals, ",") .. "=UNPACK(" .. v .. "," ..
        #node.targets .. ")"
      for j, n in ipairs(node.targets) do self:assign(buf, scope, n, locals[j]) end
      buf[#buf + 1] = "end"
    end
  elseif k == "setattr" then
    self:pos(buf, node.line)
    buf[#buf + 1] = "NSSET(" .. self:resolve(scope, node.ns) .. "," .. q(node.attr) .. "," ..
      self:val(node.e, scope) .. ")"
  elseif k == "setblock" then
    local saved = self.suppress
    self.suppress = false
    buf[#buf + 1] = "do local out,n={},0"
    self:stmts(node.body, scope, buf)
    self:pos(buf, node.line)
    self:assign(buf, scope, node.target, "CAPTURE(out,AE)")
    buf[#buf + 1] = "end"
    self.suppress = saved
  elseif k == "include" then
    if self.suppress then return end
    self:pos(buf, node.line)
    local layer
    if node.with_context then
      local seen, parts = {}, {}
      local s = scope
      while s do
        for n, lua in pairs(s.vars) do
          if not seen[n] then
            seen[n] = true
            if n == "loop" and s.loop then s.loop_used = true end
            parts[#parts + 1] = "[" .. q(n) .. "]=" .. lua
          end
        end
        s = s.parent
      end
      sort(parts)
      layer = "LAYER(ctx" .. (#parts > 0 and (",{" .. concat(parts, ",") .. "}") or "") .. ")"
    else
      layer = "LAYER(EMPTY)"
    end
    local idx
    if node.e.k == "lit" and type(node.e.v) == "string" then
      idx = self:load_sub(node.e.v, node.line, node.ignore_missing)
    end
    if idx then
      buf[#buf + 1] = "TPL[" .. idx .. "].root(" .. layer .. ",out,{}) n=#out"
    else
      buf[#buf + 1] = "INCLUDE(ENV," .. self:val(node.e, scope) .. "," .. layer .. ",out," ..
        tostring(node.ignore_missing == true) .. ") n=#out"
    end
  elseif k == "extends" then
    if self.fn_depth ~= 0 or scope.parent or self.in_control then
      self:fail(node.line, "extends must be at the top level of the template")
    end
    if self.extends then self:fail(node.line, "extends used more than once") end
    local idx = self:load_sub(node.name, node.line, false)
    if not idx then self:fail(node.line, "template '" .. node.name .. "' extends itself") end
    self.extends = idx
    self.suppress = true
  elseif k == "block" then
    if self.blocks[node.name] then
      self:fail(node.line, "block '" .. node.name .. "' defined twice")
    end
    self.blocks[node.name] = true
    self:block_fn(node)
    if not self.suppress then
      self:pos(buf, node.line)
      buf[#buf + 1] = "do local c=blocks[" .. q(node.name) .. "] c[1](ctx,out,blocks,c,1) end n=#out"
    end
  else
    self:fail(node.line, "unsupported statement")
  end
end

function Gen:for_stmt(node, scope, buf)
  local id = self:tmp()
  local seq, len, i = "seq" .. id, "len" .. id, "i" .. id
  self:pos(buf, node.line)
  local saved_ctl = self.in_control
  self.in_control = true
  buf[#buf + 1] = "do local " .. seq .. "=ITER(" .. self:val(node.iter, scope) .. ")"
  local function bind(s, item, into)
    if #node.targets == 1 then
      into[#into + 1] = "local l_" .. node.targets[1] .. "=" .. item
      s.vars[node.targets[1]] = "l_" .. node.targets[1]
    else
      local names = {}
      for j, n in ipairs(node.targets) do
        names[j] = "l_" .. n
        s.vars[n] = "l_" .. n
      end
      into[#into + 1] = "local " .. concat(names, ",") .. "=UNPACK(" .. item .. "," ..
        #node.targets .. ")"
    end
  end
  if node.filter then
    local fscope = {vars = {}, parent = scope}
    local f, j = "f" .. id, "j" .. id
    buf[#buf + 1] = "local " .. f .. "={} for " .. j .. "=1,#" .. seq .. " do"
    bind(fscope, seq .. "[" .. j .. "]", buf)
    buf[#buf + 1] = "if " .. self:cond(node.filter, fscope) .. " then " .. f .. "[#" .. f ..
      "+1]=" .. seq .. "[" .. j .. "] end end " .. seq .. "=" .. f
  end
  buf[#buf + 1] = "local " .. len .. "=#" .. seq
  buf[#buf + 1] = "if " .. len .. "==0 then"
  if node.else_ then self:stmts(node.else_, scope, buf) end
  buf[#buf + 1] = "else"
  local bscope = {vars = {loop = "l_loop"}, parent = scope, loop = true, loop_used = false}
  local head = {}
  bind(bscope, seq .. "[" .. i .. "]", head)
  local decl = {}
  for _, n in ipairs(hoist(node.body, {})) do
    if not bscope.vars[n] then
      decl[#decl + 1] = "local l_" .. n .. "=" .. self:resolve(scope, n)
      bscope.vars[n] = "l_" .. n
    end
  end
  local body = {}
  self:stmts(node.body, bscope, body)
  if bscope.loop_used then buf[#buf + 1] = "local l_loop=LOOP(" .. len .. ")" end
  buf[#buf + 1] = "for " .. i .. "=1," .. len .. " do"
  for _, l in ipairs(head) do buf[#buf + 1] = l end
  if bscope.loop_used then buf[#buf + 1] = "LOOPAT(l_loop," .. seq .. "," .. i .. ")" end
  for _, l in ipairs(decl) do buf[#buf + 1] = l end
  for _, l in ipairs(body) do buf[#buf + 1] = l end
  buf[#buf + 1] = "end end end"
  self.in_control = saved_ctl
end

function Gen:block_fn(node)
  local saved = {self.suppress, self.block, self.fn_depth}
  self.suppress, self.block, self.fn_depth = false, node.name, self.fn_depth + 1
  local scope = {vars = {}, parent = nil}
  local decl = {}
  for _, n in ipairs(hoist(node.body, {})) do
    if not scope.vars[n] then
      decl[#decl + 1] = "local l_" .. n .. "=ctx[" .. q(n) .. "]"
      scope.vars[n] = "l_" .. n
    end
  end
  local body = {}
  self:stmts(node.body, scope, body)
  local code = {"BLK[" .. q(node.name) .. "]=function(ctx,out,blocks,chain,ci) local n=#out"}
  for _, l in ipairs(decl) do code[#code + 1] = l end
  for _, l in ipairs(body) do code[#code + 1] = l end
  code[#code + 1] = "end"
  self.blockcode[#self.blockcode + 1] = concat(code, "\n")
  self.suppress, self.block, self.fn_depth = saved[1], saved[2], saved[3]
end

local HELPERS = {"S", "E", "T", "GA", "GAS", "CALL", "ITER", "UNPACK", "LOOP", "LOOPAT", "ADD", "SUB",
  "MUL", "DIV", "FDIV", "MOD", "POW", "NEG", "POSN", "CAT", "EQ", "LT", "GT", "LE", "GE", "IN",
  "OR", "ORF", "AND", "ANDF", "SEL", "IFX", "NSSET", "CAPTURE", "LAYER", "RANGE", "NAMESPACE",
  "REG", "SUPER", "INCLUDE", "F", "TESTS", "POS", "NULL", "EMPTY"}

local RT = {S = S, E = E, T = T, GA = GA, GAS = GAS, CALL = CALL, ITER = ITER, UNPACK = UNPACK, LOOP = LOOP,
  LOOPAT = LOOPAT, ADD = ADD, SUB = SUB, MUL = MUL, DIV = DIV, FDIV = FDIV, MOD = MOD, POW = POW,
  NEG = NEG, POSN = POSN, CAT = CAT, EQ = EQ, LT = LT, GT = GT, LE = LE, GE = GE, IN = IN,
  OR = OR, ORF = ORF, AND = AND, ANDF = ANDF, SEL = SEL, IFX = IFX, NSSET = NSSET,
  CAPTURE = CAPTURE, LAYER = LAYER, RANGE = RANGE, NAMESPACE = NAMESPACE, REG = REG,
  SUPER = SUPER, F = F, TESTS = TESTS, POS = POS, NULL = NULL, EMPTY = {}}

local function default_autoescape(name)
  return name:match("%.html?$") ~= nil or name:match("%.xml$") ~= nil
end

local function autoescape_for(env, name)
  local ae = env.autoescape
  if type(ae) == "function" then return ae(name) and true or false end
  if ae == nil then return default_autoescape(name) end
  return ae and true or false
end

local function compile_template(env, source, name)
  if type(source) ~= "string" then fail(name, 0, "template source is not a string") end
  local toks = lex(source, name)
  local ast = parse_template(toks, name)
  next_tid = next_tid + 1
  NAMES[next_tid] = name
  local g = setmetatable({name = name, ae = autoescape_for(env, name), env = env, tid = next_tid,
    ntmp = 0, subs = {}, blocks = {}, blockcode = {}, suppress = false, fn_depth = 0}, Gen)
  env.compiling[name] = true
  local body = {}
  g:stmts(ast, {vars = {}, parent = nil}, body)
  env.compiling[name] = nil
  local code = {"local RT,ENV,TPL=... local " .. concat(HELPERS, ",") .. "="}
  local refs = {}
  for j, h in ipairs(HELPERS) do refs[j] = "RT." .. h end
  code[1] = code[1] .. concat(refs, ",")
  code[#code + 1] = "local AE=" .. tostring(g.ae)
  code[#code + 1] = "local BLK={}"
  for _, b in ipairs(g.blockcode) do code[#code + 1] = b end
  code[#code + 1] = "return function(ctx,out,blocks) local n=#out"
  if next(g.blocks) then code[#code + 1] = "REG(blocks,BLK)" end
  for _, l in ipairs(body) do code[#code + 1] = l end
  if g.extends then code[#code + 1] = "return TPL[" .. g.extends .. "].root(ctx,out,blocks)" end
  code[#code + 1] = "end"
  local lua = concat(code, "\n")
  local chunk, err = load(lua, "=" .. name, "t", {})
  if not chunk then fail(name, 1, "cannot compile the template: " .. tostring(err)) end
  local tpl = {name = name, tid = next_tid, lua = lua}
  tpl.root = chunk(RT, env, g.subs)
  local root = tpl.root
  tpl.render = function(context)
    local ctx = setmetatable({}, {__index = context})
    local out = {}
    POS[1] = tpl.tid * LINES
    local ok, e = pcall(root, ctx, out, {})
    if not ok then error(format_error(e), 0) end
    return concat(out)
  end
  return tpl
end

-- The compiled template `name` of env, through its cache or loader.
-- Returns the template, or nil and "missing", or raises a compile error.
function M._load(env, name)
  local tpl = env.cache[name]
  if tpl then return tpl end
  local source = env.loader and env.loader(name)
  if source == nil then return nil, "missing" end
  tpl = compile_template(env, source, name)
  env.cache[name] = tpl
  return tpl
end

RT.INCLUDE = function(env, names, layer, out, ignore_missing)
  local list = names
  if type(names) ~= "table" or is_mk(names) then list = {names} end
  for _, n in ipairs(list) do
    n = S(n)
    local ok, tpl = pcall(M._load, env, n)
    if not ok then error(type(tpl) == "table" and tpl or {tplerr = tostring(tpl)}, 0) end
    if tpl then return tpl.root(layer, out, {}) end
  end
  if not ignore_missing then
    rterr("template '" .. concat((function()
      local t = {}
      for j, n in ipairs(list) do t[j] = S(n) end
      return t
    end)(), "', '") .. "' not found")
  end
end

function M.compile(source, name, opts)
  opts = opts or {}
  name = name or "<template>"
  local env = {loader = opts.loader, autoescape = opts.autoescape, cache = opts.cache or {},
    compiling = {}}
  local ok, tpl = pcall(compile_template, env, source, name)
  if not ok then
    if type(tpl) == "table" and tpl.tplerr then error(tpl.tplerr, 0) end
    error(name .. ":0: " .. tostring(tpl), 0)
  end
  env.cache[name] = tpl
  return tpl.render
end

-- The Lua source a template compiles to (for debugging and the console).
function M.source(source, name, opts)
  opts = opts or {}
  local env = {loader = opts.loader, autoescape = opts.autoescape, cache = opts.cache or {},
    compiling = {}}
  local ok, tpl = pcall(compile_template, env, source, name or "<template>")
  if not ok then error(type(tpl) == "table" and tpl.tplerr or tostring(tpl), 0) end
  return tpl.lua
end

M.escape = function(s) return escape_str(S(s)) end
M.markup = markup
M.is_markup = is_mk
M.filters = F
M.str = S

return M
