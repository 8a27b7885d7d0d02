-- lib/sms.lua - fitting text into SMS segments.
--
-- An SMS segment holds 160 GSM-7 characters (153 each when a message needs more
-- than one), or only 70 UCS-2 characters (67) as soon as one character is outside
-- the GSM alphabet; herald.sms_info does the counting. Most of a message is fixed
-- template text; what makes it long is the variable parts (a long client name, an
-- unusual event type). fit() renders the template and, while the result needs more
-- than one segment, shortens the longest of the variable parts it was told it may
-- shorten (down to the next longest at most, so two long values end up alike),
-- cutting at a word boundary and ending with "..." (three dots: the ellipsis
-- character is not GSM-7 and would switch the whole text to UCS-2, 70 characters
-- a segment), then renders again. It never shortens a value that contains a
-- link, and never cuts the rendered text itself, so a URL always arrives whole.
-- The result is the text with the fewest segments reached with the least
-- shortening: when shortening cannot save a segment, the text as rendered.
--
-- Before measuring, typographic characters that have a GSM-7 twin (curly quotes,
-- dashes, the ellipsis, no-break space) are replaced by it, as Twilio's "smart
-- encoding" does, so that a pasted apostrophe does not turn a message into UCS-2.
-- Letters outside GSM-7 (ë, ł, emoji...) are kept: a name is not rewritten.

local M = {}

-- A shortened value keeps at least this many characters, "..." included.
M.MIN_LENGTH = 10
M.ELLIPSIS = "..."

-- Typographic characters replaced by their GSM-7 equivalent.
M.REPLACEMENTS = {
  ["\u{2018}"] = "'", ["\u{2019}"] = "'", ["\u{201A}"] = "'", ["\u{2032}"] = "'",
  ["\u{201C}"] = '"', ["\u{201D}"] = '"', ["\u{201E}"] = '"', ["\u{2033}"] = '"',
  ["\u{2010}"] = "-", ["\u{2011}"] = "-", ["\u{2012}"] = "-", ["\u{2013}"] = "-",
  ["\u{2014}"] = "-", ["\u{2212}"] = "-",
  ["\u{2026}"] = "...", ["\u{00A0}"] = " ", ["\u{2009}"] = " ", ["\u{202F}"] = " ",
  ["\u{200B}"] = "",
}

local function ulen(s) return utf8.len(s) or #s end

local function usub(s, n)
  if not utf8.len(s) then return s:sub(1, n) end
  local b = utf8.offset(s, n + 1)
  if not b then return s end
  return s:sub(1, b - 1)
end

-- Text with typographic characters replaced by their GSM-7 equivalents.
function M.normalize(text)
  return (text:gsub("[\xC2\xE2][\x80-\xBF]+", function(seq)
    local out = {}
    for _, c in utf8.codes(seq) do
      local ch = utf8.char(c)
      out[#out + 1] = M.REPLACEMENTS[ch] or ch
    end
    return table.concat(out)
  end))
end

-- {encoding, units, segments, per_segment} of text.
function M.info(text)
  return herald.sms_info(text)
end

-- Capacity of one single-segment message in this encoding.
local function single(encoding) return encoding == "GSM-7" and 160 or 70 end

function M.has_url(s)
  return s:find("%a[%w+.-]*://") ~= nil or s:find("www%.") ~= nil
end

-- value shortened to at most max characters, ending in "...", cut at a word
-- boundary when that keeps at least half of the room; unchanged when it fits or
-- holds a link.
function M.shorten(value, max)
  if type(value) ~= "string" or ulen(value) <= max or M.has_url(value) then return value end
  local room = max - ulen(M.ELLIPSIS)
  if room < 1 then return usub(value, max) end
  local keep = usub(value, room)
  local at_space = keep:match("^(.*)%s") -- up to the last whitespace
  if at_space and ulen(at_space) >= room / 2 and not value:sub(#keep + 1, #keep + 1):match("^%s") then
    keep = at_space
  end
  keep = keep:gsub("[%s,;:%-]+$", "")
  return keep .. M.ELLIPSIS
end

local function split_path(path)
  local parts = {}
  for p in path:gmatch("[^%.]+") do parts[#parts + 1] = p end
  return parts
end

local function get_path(t, path)
  for _, k in ipairs(split_path(path)) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

-- ctx with path set to value, copying the tables on the way (the caller's
-- context is never modified).
local function set_path(ctx, path, value)
  local parts = split_path(path)
  local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return setmetatable(c, getmetatable(t))
  end
  local root = copy(ctx)
  local t = root
  for i = 1, #parts - 1 do
    local nxt = t[parts[i]]
    if type(nxt) ~= "table" then return ctx end
    nxt = copy(nxt)
    t[parts[i]] = nxt
    t = nxt
  end
  t[parts[#parts]] = value
  return root
end

local function result(text, info, shortened)
  return {text = text, encoding = info.encoding, segments = info.segments, units = info.units,
    per_segment = info.per_segment, shortened = shortened}
end

-- fit(render, context, fields) -> {text, encoding, segments, units, per_segment,
-- shortened}. render(ctx) -> text; fields: the context paths ("client_name",
-- "event.venue") that may be shortened. `shortened` lists the paths that were.
function M.fit(render, context, fields)
  local text = M.normalize(render(context))
  local info = M.info(text)
  if info.segments <= 1 then return result(text, info, {}) end

  local original, current = {}, {}
  for _, path in ipairs(fields or {}) do
    local v = get_path(context, path)
    if type(v) == "string" and not M.has_url(v) and ulen(v) > M.MIN_LENGTH then
      original[path], current[path] = v, v
    end
  end

  -- best: the fewest segments, reached with the least shortening
  local ctx = context
  local best = {text = text, info = info, ctx = context}
  for _ = 1, 400 do
    if info.segments <= 1 then break end
    -- shave the longest value, down to the next longest at most, so that two
    -- long values end up about as long as each other
    local pick, pick_len, second = nil, 0, 0
    for _, path in ipairs(fields or {}) do
      local v = current[path]
      if v then
        local n = ulen(v)
        if n > pick_len then pick, pick_len, second = path, n, pick_len
        elseif n > second then second = n end
      end
    end
    if not pick then break end
    local excess = info.units - single(info.encoding)
    local cut = math.max(1, math.min(excess, pick_len - second))
    local shorter = M.shorten(original[pick], math.max(M.MIN_LENGTH, pick_len - cut))
    if ulen(shorter) >= pick_len then shorter = M.shorten(original[pick], pick_len - 1) end
    current[pick] = ulen(shorter) > M.MIN_LENGTH and shorter or nil
    ctx = set_path(ctx, pick, shorter)
    text = M.normalize(render(ctx))
    info = M.info(text)
    if info.segments < best.info.segments then best = {text = text, info = info, ctx = ctx} end
  end
  local shortened = {}
  for _, path in ipairs(fields or {}) do
    if original[path] and get_path(best.ctx, path) ~= original[path] then
      shortened[#shortened + 1] = path
    end
  end
  return result(best.text, best.info, shortened)
end

return M
