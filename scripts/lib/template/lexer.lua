-- lib/template/lexer.lua - template source -> tokens: text, {{ }}, {% %}, {# #},
-- raw; the expression tokens inside a tag.
--
-- Provides: lex(source, name) -> a list of {kind = "text"|"raw"|"comment"|"var"|
-- "block", value?, toks?, ls, rs, line, end_line?}, whitespace control already
-- applied to the text; toks are the tag's tokens {t = "name"|"num"|"str"|"op",
-- v, line}.
-- Uses: errors.lua (fail).

local errors = require("lib.template.errors")

local M = {}

local concat = table.concat
local fail = errors.fail

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

M.lex = lex

return M
