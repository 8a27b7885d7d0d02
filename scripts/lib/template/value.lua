-- lib/template/value.lua - the values a template handles: Markup (text already
-- safe for HTML), lists and dicts, Python-like string conversion and truthiness.
--
-- Provides: NULL (herald.null, JSON null / Jinja2 none), ARRAY_MT (the metatable
-- herald.array sets), NS (the namespace() metatable), markup / is_mk / unmk,
-- escape_str (HTML), is_list, tname (Python type names for messages),
-- sorted_keys, repr, S (Python str()), E (output of {{ }} when autoescaping),
-- T (Jinja2 truthiness).
-- Uses: the global herald (null, array) when present.

local M = {}

local NULL = (herald and herald.null) or setmetatable({}, {__name = "null"})
local ARRAY_MT = herald and herald.array and getmetatable(herald.array({})) or nil

local concat, sort = table.concat, table.sort
local find = string.find
local mtype = math.type

local MK = {__name = "Markup"}
local function markup(s) return setmetatable({s}, MK) end
local function is_mk(v) return getmetatable(v) == MK end

local NS = {__name = "Namespace"}

local ESC = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;"}
-- (most text has nothing to escape: a search, which makes no string, first)
local function escape_str(s)
  if not find(s, "[&<>\"']") then return s end
  return (s:gsub("[&<>\"']", ESC))
end

-- The metatable of a mapping a template makes ({...}, dict()): so an empty
-- one is a dict ({} printed "{}"), not the empty list a bare {} would be.
local DICT_MT = {__name = "herald.template.dict"}

local function is_list(t)
  if ARRAY_MT and getmetatable(t) == ARRAY_MT then return true end
  if getmetatable(t) == DICT_MT then return false end
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

-- Characters Python's repr escapes (not printable): C0 and C1 controls, DEL,
-- and the non-ASCII spaces, separators and format characters below.
local NONPRINT = {{0xA0, 0xA0}, {0xAD, 0xAD}, {0x1680, 0x1680}, {0x2000, 0x200F},
  {0x2028, 0x202F}, {0x205F, 0x2064}, {0x2066, 0x206F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF},
  {0xFFF9, 0xFFFB}}
local function escape_nonprint(s)
  if not utf8.len(s) then return s end
  return (s:gsub(utf8.charpattern, function(ch)
    local c = utf8.codepoint(ch)
    local np = c < 0x20 or (c >= 0x7F and c <= 0x9F)
    for _, r in ipairs(NONPRINT) do
      if c >= r[1] and c <= r[2] then np = true end
    end
    if not np then return ch end
    return c < 0x100 and ("\\x%02x"):format(c) or ("\\u%04x"):format(c)
  end))
end

local function repr(v)
  if type(v) == "string" then
    local q = "'"
    if v:find("'", 1, true) and not v:find('"', 1, true) then q = '"' end
    local body = v:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t")
    body = escape_nonprint(body)
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
  if t == "string" then return escape_str(v) end
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

M.NULL, M.ARRAY_MT, M.NS, M.DICT_MT = NULL, ARRAY_MT, NS, DICT_MT
M.markup, M.is_mk, M.unmk, M.escape_str = markup, is_mk, unmk, escape_str
M.is_list, M.tname, M.sorted_keys, M.repr = is_list, tname, sorted_keys, repr
M.S, M.E, M.T = S, E, T

return M
