-- lib/template/text.lua - UTF-8 helpers and case mapping (ASCII, Latin-1, Latin
-- Extended-A, Greek, Cyrillic: what a client's name can hold).
--
-- Provides: ulen, usub, uchars (length, slices and characters in code points,
-- bytes when the text is not valid UTF-8), upper, lower, capitalize,
-- plain_replace (str.replace without patterns).
-- Uses: nothing.

local M = {}

local concat = table.concat

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
  -- Greek with tonos / dialytika, and the Turkish dotless and dotted i
  -- (Python: "ı".upper() is "I", "İ".lower() is "i" + U+0307)
  for _, p in ipairs({{0x386, 0x3AC}, {0x388, 0x3AD}, {0x389, 0x3AE}, {0x38A, 0x3AF},
    {0x38C, 0x3CC}, {0x38E, 0x3CD}, {0x38F, 0x3CE}, {0x3AA, 0x3CA}, {0x3AB, 0x3CB}}) do
    pair(p[1], p[2])
  end
  TO_UPPER["ı"] = "I"
  TO_LOWER["İ"] = "i\u{307}"
end

-- Latin ligatures (U+FB00..FB06): upper case expands them, as Python's does;
-- the title case (capitalize's first letter) keeps the rest lower.
local LIG_UPPER = {["\u{FB00}"] = "FF", ["\u{FB01}"] = "FI", ["\u{FB02}"] = "FL",
  ["\u{FB03}"] = "FFI", ["\u{FB04}"] = "FFL", ["\u{FB05}"] = "ST", ["\u{FB06}"] = "ST"}
local LIG_TITLE = {["\u{FB00}"] = "Ff", ["\u{FB01}"] = "Fi", ["\u{FB02}"] = "Fl",
  ["\u{FB03}"] = "Ffi", ["\u{FB04}"] = "Ffl", ["\u{FB05}"] = "St", ["\u{FB06}"] = "St"}

local function upper(s)
  return (s:upper():gsub("[\xC2-\xDF][\x80-\xBF]", TO_UPPER):gsub("\xEF\xAC[\x80-\x86]", LIG_UPPER))
end

local SIGMA = "\xCE\xA3"
local function cased(c)
  if c == nil then return false end
  if c < 0x80 then return (c >= 65 and c <= 90) or (c >= 97 and c <= 122) end
  local ch = utf8.char(c)
  return TO_UPPER[ch] ~= nil or TO_LOWER[ch] ~= nil
end

local function lower(s)
  local r = s:lower():gsub("[\xC2-\xDF][\x80-\xBF]", TO_LOWER)
  if not s:find(SIGMA, 1, true) or not utf8.len(s) then return r end
  -- Final sigma (Unicode SpecialCasing, as Python applies it): a capital
  -- sigma after a cased letter and before none becomes ς, not σ.
  local cps = {}
  for _, c in utf8.codes(s) do cps[#cps + 1] = c end
  local out = {}
  for i, c in ipairs(cps) do
    if c == 0x3A3 then
      out[i] = (cased(cps[i - 1]) and not cased(cps[i + 1])) and "\u{3C2}" or "\u{3C3}"
    else
      local ch = utf8.char(c)
      out[i] = c < 0x80 and ch:lower() or (TO_LOWER[ch] or ch)
    end
  end
  return concat(out)
end

local function capitalize(s)
  local first = s:match("^[%z\1-\x7F\xC2-\xF4][\x80-\xBF]*")
  if not first then return s end
  -- the rest lowered in the whole string's context (a final sigma needs it)
  return (LIG_TITLE[first] or upper(first)) .. lower(s):sub(#lower(first) + 1)
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

M.ulen, M.usub, M.uchars = ulen, usub, uchars
M.upper, M.lower, M.capitalize, M.plain_replace = upper, lower, capitalize, plain_replace

return M
