-- lib/template/runtime.lua - the run-time helpers compiled templates call.
--
-- Provides: attribute and item access (GA, GAS), method calls (CALL), for loops
-- (ITER, UNPACK, LOOP, LOOPAT), the operators (ADD SUB MUL DIV FDIV MOD POW NEG
-- POSN, CAT for ~, EQ LT GT LE GE IN, and/or/if-else as values: OR ORF AND ANDF
-- SEL IFX), set (NSSET, CAPTURE), include scopes (LAYER), the globals range()
-- and namespace() (RANGE, NAMESPACE), blocks (REG, SUPER); and ordered (the
-- type check behind < > <= >=, also used by the sort/min/max filters).
-- compiler.lua hands these to the compiled code; filters.lua reuses some.
-- Uses: value.lua, text.lua, errors.lua (rterr).

local value = require("lib.template.value")
local text = require("lib.template.text")
local errors = require("lib.template.errors")

local M = {}

local concat, unpack = table.concat, table.unpack
local mtype = math.type

local NULL, ARRAY_MT, NS = value.NULL, value.ARRAY_MT, value.NS
local markup, is_mk, unmk = value.markup, value.is_mk, value.unmk
local is_list, tname, sorted_keys = value.is_list, value.tname, value.sorted_keys
local S, E, T = value.S, value.E, value.T
local ulen, usub, uchars = text.ulen, text.usub, text.uchars
local upper, lower, capitalize, plain_replace = text.upper, text.lower, text.capitalize,
  text.plain_replace
local rterr = errors.rterr

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

-- Python's bool is an int: True + 1 is 2. Booleans become 0 / 1 when the
-- other operand is a number (or a boolean).
local function nb(a, b)
  local ta, tb = type(a), type(b)
  if ta == "boolean" and (tb == "number" or tb == "boolean") then a = a and 1 or 0 end
  if tb == "boolean" and (ta == "number" or ta == "boolean") then b = b and 1 or 0 end
  return a, b
end

-- Integers are 64-bit here and unbounded in Python: a result that does not
-- fit is refused instead of wrapping around.
local MININT = math.mininteger
local function overflow(op)
  rterr("integer overflow in " .. op .. " (integers are 64-bit in Herald's templates)")
end

local function iadd(a, b)
  local r = a + b
  if (a >= 0) == (b >= 0) and (r >= 0) ~= (a >= 0) then overflow("+") end
  return r
end

local function isub(a, b)
  local r = a - b
  if (a >= 0) ~= (b >= 0) and (r >= 0) ~= (a >= 0) then overflow("-") end
  return r
end

local function imul(a, b)
  if a == 0 or b == 0 then return 0 end
  if (a == -1 and b == MININT) or (b == -1 and a == MININT) then overflow("*") end
  local r = a * b
  if r // b ~= a or r % b ~= 0 then overflow("*") end
  return r
end

local function both_int(a, b) return mtype(a) == "integer" and mtype(b) == "integer" end

local function list_concat(a, b)
  local out = {}
  for i = 1, #a do out[i] = a[i] end
  for i = 1, #b do out[#out + 1] = b[i] end
  return out
end

local function ADD(a, b)
  a, b = nb(a, b)
  local ta, tb = type(a), type(b)
  if both_int(a, b) then return iadd(a, b) end
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
  a, b = nb(a, b)
  if both_int(a, b) then return isub(a, b) end
  if type(a) == "number" and type(b) == "number" then return a - b end
  num_or_fail("-", a, b)
end

local function MUL(a, b)
  a, b = nb(a, b)
  local ta, tb = type(a), type(b)
  if both_int(a, b) then return imul(a, b) end
  if ta == "number" and tb == "number" then return a * b end
  if ta == "string" and mtype(b) == "integer" then return b > 0 and a:rep(b) or "" end
  if tb == "string" and mtype(a) == "integer" then return a > 0 and b:rep(a) or "" end
  num_or_fail("*", a, b)
end

local function DIV(a, b)
  a, b = nb(a, b)
  if type(a) == "number" and type(b) == "number" then
    if b == 0 then rterr("division by zero") end
    return a / b
  end
  num_or_fail("/", a, b)
end

local function FDIV(a, b)
  a, b = nb(a, b)
  if type(a) == "number" and type(b) == "number" then
    if b == 0 then rterr("integer division or modulo by zero") end
    if a == MININT and b == -1 then overflow("//") end
    if mtype(a) == "float" or mtype(b) == "float" then
      -- CPython's float floor division (fmod based), not floor(a / b)
      a, b = a + 0.0, b + 0.0
      local mod = math.fmod(a, b)
      local div = (a - mod) / b
      if mod ~= 0 and ((b < 0) ~= (mod < 0)) then div = div - 1.0 end
      if div == 0 then return (a / b < 0) and -0.0 or 0.0 end
      local fd = math.floor(div) + 0.0
      if div - fd > 0.5 then fd = fd + 1.0 end
      return fd
    end
    return a // b
  end
  num_or_fail("//", a, b)
end

local function MOD(a, b)
  a, b = nb(a, b)
  if type(a) == "number" and type(b) == "number" then
    if b == 0 then rterr("integer division or modulo by zero") end
    return a % b
  end
  num_or_fail("%", a, b)
end

local function POW(a, b)
  a, b = nb(a, b)
  if type(a) == "number" and type(b) == "number" then
    if mtype(a) == "integer" and mtype(b) == "integer" and b >= 0 then
      local r = 1
      for _ = 1, b do
        r = imul(r, a)
        if r == 0 or r == 1 then break end -- 0 or 1 from here on (a is 0 or 1)
      end
      if r == 1 and a == -1 and b % 2 == 1 then r = -1 end
      return r
    end
    return a ^ b
  end
  num_or_fail("**", a, b)
end

local function NEG(a)
  if a == MININT then overflow("unary -") end
  if type(a) == "boolean" then return a and -1 or 0 end
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
local function DICT(t) return setmetatable(t, value.DICT_MT) end

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

M.GA, M.GAS, M.CALL = GA, GAS, CALL
M.ITER, M.UNPACK, M.LOOP, M.LOOPAT = ITER, UNPACK, LOOP, LOOPAT
M.ADD, M.SUB, M.MUL, M.DIV, M.FDIV, M.MOD, M.POW = ADD, SUB, MUL, DIV, FDIV, MOD, POW
M.NEG, M.POSN, M.CAT = NEG, POSN, CAT
M.EQ, M.LT, M.GT, M.LE, M.GE, M.IN, M.ordered = EQ, LT, GT, LE, GE, IN, ordered
M.OR, M.ORF, M.AND, M.ANDF, M.SEL, M.IFX = OR, ORF, AND, ANDF, SEL, IFX
M.NSSET, M.CAPTURE, M.LAYER = NSSET, CAPTURE, LAYER
M.RANGE, M.NAMESPACE, M.REG, M.SUPER = RANGE, NAMESPACE, REG, SUPER
M.DICT = DICT

return M
