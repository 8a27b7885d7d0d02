-- lib/template/parser.lua - tokens -> tree: the tokens of one tag -> expression
-- nodes; the template's tokens -> statements.
--
-- Provides: parse_template(toks, name) -> the list of statement nodes ({k = "text"
-- |"out"|"if"|"for"|"set"|"setattr"|"setblock"|"include"|"extends"|"block", ...});
-- src_of(node), how an expression node reads in the source (for messages).
-- Uses: the tokens of lexer.lua, value.lua (NULL, repr), errors.lua (fail).

local value = require("lib.template.value")
local errors = require("lib.template.errors")

local M = {}

local concat = table.concat
local mtype = math.type

local NULL, repr = value.NULL, value.repr
local fail = errors.fail

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
        if c.t == "name" and (c.v == "if" or c.v == "is" or c.v == "in" or c.v == "not") then
          -- Jinja2 3.1 reads such a word as the test's argument (or refuses
          -- `is` twice): refused here rather than read another way
          p:fail("test '" .. tok.v .. "' followed by '" .. c.v .. "': Jinja2 would take '" ..
            c.v .. "' as its argument; put the test in parentheses: (x is " .. tok.v .. ")", c)
        end
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
      local p3, _
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

M.parse_template, M.src_of = parse_template, src_of

return M
