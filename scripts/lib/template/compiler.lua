-- lib/template/compiler.lua - the template tree -> Lua source -> a compiled
-- template; templates loaded by name (include, extends).
--
-- Provides:
--   compile_template(env, source, name) -> {name, tid, lua, root, render}; raises
--     {tplerr = "name:line: msg"}. env = {loader, autoescape, cache, compiling}
--     (see lib/template.lua). root(ctx, out, blocks) appends to out;
--     render(context, opts?) -> string, raising "name:line: message"; opts.locale
--     (a tag: "fr-CA") is the date, number and currency filters' locale,
--     opts.plain_spaces writes their no-break spaces as plain ones.
--   load(env, name) -> the compiled template through env.cache, env.precompiled
--     (name -> freeze's text: a template compiled by another state) or env.loader,
--     or nil and "missing"; raises a compile error.
--   freeze(tpl) -> text that load, given it in env.precompiled, turns back into
--     the template without lexing, parsing or generating it again. The loader returns the source
--     and, optionally, the file it came from (errors name it: "fr/layout.html").
-- The generated chunk is `load`ed as text with an empty environment and reaches
-- only RT (the helpers of runtime.lua, the filters and tests, POS), env and the
-- templates it includes or extends, passed to it as arguments.
-- Uses: lexer.lua, parser.lua, runtime.lua, filters.lua, value.lua, errors.lua.

local errors = require("lib.template.errors")
local value = require("lib.template.value")
local R = require("lib.template.runtime")
local filters = require("lib.template.filters")
local lexer = require("lib.template.lexer")
local parser = require("lib.template.parser")

local M = {}

local concat, sort = table.concat, table.sort
local mtype = math.type

local fail, rterr, format_error = errors.fail, errors.rterr, errors.format_error
local POS, LINES, NAMES = errors.POS, errors.LINES, errors.NAMES
local NULL, is_mk, S, E, T = value.NULL, value.is_mk, value.S, value.E, value.T
local F, FSPEC, TESTS, TSPEC = filters.F, filters.FSPEC, filters.TESTS, filters.TSPEC
local lex = lexer.lex
local parse_template, src_of = parser.parse_template, parser.src_of

local next_tid = 0
local load_template -- forward: defined after compile_template, which it calls

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
    return "DICT({" .. concat(parts, ",") .. "})"
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
    if e.name == "map" and #e.args > 0 then
      -- Jinja2's map('upper') applies a filter; bound to attribute= it would
      -- silently give a list of undefined
      self:fail(e.line, "map: a filter name (map('upper')) is not supported; use map(attribute='name')")
    end
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
      return "DICT(" .. t .. ")"
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
  buf[#buf + 1] = "POS[1]=B+" .. string.format("%d", line)
end

function Gen:assign(buf, scope, target, value)
  local lhs = self:resolve(scope, target)
  buf[#buf + 1] = lhs .. "=" .. value
end

function Gen:load_sub(name, line, ignore_missing)
  local env = self.env
  if env.compiling[name] then return nil end
  local tpl, err = load_template(env, name)
  if not tpl then
    if err == "missing" then
      if ignore_missing then return nil end
      self:fail(line, "template '" .. name .. "' not found")
    end
    error(err, 0)
  end
  self.subs[#self.subs + 1] = tpl
  self.subnames[#self.subs] = name
  return #self.subs
end

-- A printed expression that may print nothing on purpose: it goes through
-- `default`, or chooses (`a if x else b`).
local function guarded_out(e)
  while e.k == "filter" do
    if e.name == "default" or e.name == "d" then return true end
    e = e.e
  end
  return e.k == "cond"
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
    local v = (self.ae and "E(" or "S(") .. self:val(node.e, scope) .. ")"
    if self.env.trace then
      v = ("ENV.trace(%s,%s,%d,%s)"):format(v, q(self.name), node.line, tostring(guarded_out(node.e)))
    end
    buf[#buf + 1] = "n=n+1 out[n]=" .. v
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
  "OR", "ORF", "AND", "ANDF", "SEL", "IFX", "NSSET", "CAPTURE", "LAYER", "RANGE", "NAMESPACE", "DICT",
  "REG", "SUPER", "INCLUDE", "F", "TESTS", "POS", "NULL", "EMPTY"}

local RT = {S = S, E = E, T = T, GA = R.GA, GAS = R.GAS, CALL = R.CALL, ITER = R.ITER,
  UNPACK = R.UNPACK, LOOP = R.LOOP, LOOPAT = R.LOOPAT, ADD = R.ADD, SUB = R.SUB, MUL = R.MUL,
  DIV = R.DIV, FDIV = R.FDIV, MOD = R.MOD, POW = R.POW, NEG = R.NEG, POSN = R.POSN, CAT = R.CAT,
  EQ = R.EQ, LT = R.LT, GT = R.GT, LE = R.LE, GE = R.GE, IN = R.IN, OR = R.OR, ORF = R.ORF,
  AND = R.AND, ANDF = R.ANDF, SEL = R.SEL, IFX = R.IFX, NSSET = R.NSSET, CAPTURE = R.CAPTURE,
  LAYER = R.LAYER, RANGE = R.RANGE, NAMESPACE = R.NAMESPACE, DICT = R.DICT, REG = R.REG, SUPER = R.SUPER,
  F = F, TESTS = TESTS, POS = POS, NULL = NULL, EMPTY = {}}

local function default_autoescape(name)
  return name:match("%.html?$") ~= nil or name:match("%.xml$") ~= nil
end

local function autoescape_for(env, name)
  local ae = env.autoescape
  if type(ae) == "function" then return ae(name) and true or false end
  if ae == nil then return default_autoescape(name) end
  return ae and true or false
end

-- Loads generated Lua source as a template: root and render. The source gets
-- the helpers, env, the templates it includes or extends (subs, in the order
-- it names them) and B, the base of its positions (errors.lua).
local function instantiate(env, name, lua, subs)
  local chunk, err = load(lua, "=" .. name, "t", {})
  if not chunk then fail(name, 1, "cannot compile the template: " .. tostring(err)) end
  next_tid = next_tid + 1
  NAMES[next_tid] = name
  local tpl = {name = name, tid = next_tid, lua = lua}
  tpl.root = chunk(RT, env, subs, next_tid * LINES)
  local root, base = tpl.root, next_tid * LINES
  tpl.render = function(context, opts)
    local ctx = setmetatable({}, {__index = context})
    local out = {}
    POS[1] = base
    local prev = filters.use_locale(opts and opts.locale, opts and opts.plain_spaces)
    local ok, e = pcall(root, ctx, out, {})
    filters.restore_locale(prev)
    if not ok then error(format_error(e), 0) end
    return concat(out)
  end
  return tpl
end

local function compile_template(env, source, name)
  if type(source) ~= "string" then fail(name, 0, "template source is not a string") end
  local toks = lex(source, name)
  local ast = parse_template(toks, name)
  local g = setmetatable({name = name, ae = autoescape_for(env, name), env = env, ntmp = 0,
    subs = {}, subnames = {}, blocks = {}, blockcode = {}, suppress = false, fn_depth = 0}, Gen)
  env.compiling[name] = true
  local body = {}
  g:stmts(ast, {vars = {}, parent = nil}, body)
  env.compiling[name] = nil
  local code = {"local RT,ENV,TPL,B=... local " .. concat(HELPERS, ",") .. "="}
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
  local tpl = instantiate(env, name, concat(code, "\n"), g.subs)
  tpl.ast, tpl.subnames = ast, g.subnames -- ast: lib/template/names
  return tpl
end

-- A compiled template as text another state loads without lexing, parsing or
-- generating it again (M.thaw): the file it came from, the names it includes
-- or extends and its Lua source.
local function freeze(tpl)
  local subs = {}
  for i, n in ipairs(tpl.subnames or {}) do subs[i] = ("%q"):format(n) end
  return ("return %q,{%s},%q"):format(tpl.name, concat(subs, ","), tpl.lua)
end

-- The frozen text -> file, subnames, lua; nil when it is not one.
local function thaw(text)
  local chunk = load(text, "=frozen template", "t", {})
  if not chunk then return nil end
  local ok, file, subs, lua = pcall(chunk)
  if not ok or type(file) ~= "string" or type(subs) ~= "table" or type(lua) ~= "string" then
    return nil
  end
  return file, subs, lua
end

-- The compiled template `name` of env, through its cache or loader.
-- Returns the template, or nil and "missing", or raises a compile error.
-- The template `name` from env.precompiled, or nil when it has none or it
-- does not fit any more (a template it includes is missing).
local function from_frozen(env, name)
  if not env.precompiled or env.compiling[name] then return nil end
  local file, subnames, lua = thaw(env.precompiled[name] or "")
  if not file then return nil end
  env.compiling[name] = true
  local subs = {}
  for i, n in ipairs(subnames) do
    local ok, sub = pcall(load_template, env, n)
    if not ok or not sub then
      env.compiling[name] = nil
      return nil
    end
    subs[i] = sub
  end
  env.compiling[name] = nil
  local tpl = instantiate(env, file, lua, subs)
  tpl.subnames = subnames
  env.cache[name] = tpl
  return tpl
end

load_template = function(env, name)
  local tpl = env.cache[name] or from_frozen(env, name)
  if tpl then return tpl end
  local source, file
  if env.loader then source, file = env.loader(name) end
  if source == nil then return nil, "missing" end
  env.compiling[name] = true -- by the name asked for too: it may differ from file
  local ok, t = pcall(compile_template, env, source, file or name)
  env.compiling[name] = nil
  if not ok then error(t, 0) end
  tpl = t
  env.cache[name] = tpl
  return tpl
end

RT.INCLUDE = function(env, names, layer, out, ignore_missing)
  local list = names
  if type(names) ~= "table" or is_mk(names) then list = {names} end
  for _, n in ipairs(list) do
    n = S(n)
    local ok, tpl = pcall(load_template, env, n)
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

M.compile_template, M.load, M.freeze, M.from_frozen =
  compile_template, load_template, freeze, from_frozen

return M
