-- lib/template/names.lua - what a template reads from its context, checked
-- against a message type's declaration (lib/schema.lua) without rendering.
--
--   names.check(name, loader, fields, provided, message_type, trees)
--       -> list of "file:line: message"   (trees: a table the caller may share
--       between calls so each template is parsed once; a tree's `file` names
--       the file reported, when the loader's second result says the name
--       was read from another file, e.g. a locale's "fr/layout.html")
--
-- Walks the template's tree (with what it includes and extends, and the blocks
-- a child gives its layout) and reports:
--   * a variable that is neither declared (fields), provided by the engine
--     (provided: name -> true), set by the template, nor a loop variable;
--   * an attribute of a declared object or of a list's item (`v.url` in
--     `{% for v in vendors %}`) that the declaration does not name;
--   * an optional field without a default that a {{ }} prints where nothing
--     guards it: guarded means inside an {% if %} (or `a if x else b`) whose
--     test reads it, or printed through the `default` filter.
-- Names bound by {% set %} anywhere in the templates walked count as set
-- everywhere (the check is about the context, not about order).
-- Uses: lexer.lua, parser.lua (the tree), lib.schema (is_optional).

local lexer = require("lib.template.lexer")
local parser = require("lib.template.parser")
local schema = require("lib.schema")

local M = {}

local GLOBAL_CALLS = {range = true, namespace = true, dict = true, super = true, lipsum = true,
  cycler = true, joiner = true}

local function parse(name, loader, cache)
  if cache[name] ~= nil then return cache[name] end
  local source, file = loader(name)
  if source == nil then
    cache[name] = false
    return false
  end
  file = file or name
  local tree = parser.parse_template(lexer.lex(source, file), file)
  tree.file = file -- the file errors name ("fr/layout.html" for "layout.html")
  cache[name] = tree
  return tree
end

-- The path an expression reads ("v.url", "client_name"), or nil.
local function path_of(e)
  if e.k == "name" then return e.n end
  if e.k == "getattr" then
    local base = path_of(e.o)
    return base and (base .. "." .. tostring(e.key)) or nil
  end
  if e.k == "getitem" and e.key.k == "lit" and type(e.key.v) == "string" then
    local base = path_of(e.o)
    return base and (base .. "." .. e.key.v) or nil
  end
  return nil
end

-- Every path an expression reads, into set (for the guards of an if).
local function paths_in(e, set)
  if type(e) ~= "table" then return set end
  local p = e.k and path_of(e)
  if p then
    set[p] = true
    -- `x.y` also guards `x`: reading it tested x
    local prefix = p:match("^(.*)%.[^.]*$")
    while prefix do
      set[prefix] = true
      prefix = prefix:match("^(.*)%.[^.]*$")
    end
  end
  for k, v in pairs(e) do
    if k ~= "line" and type(v) == "table" then paths_in(v, set) end
  end
  return set
end

local Walker = {}
Walker.__index = Walker

function Walker:report(file, line, fmt, ...)
  local msg = ("%s:%d: " .. fmt):format(file, line or 0, ...)
  if not self.seen[msg] then
    self.seen[msg] = true
    self.errors[#self.errors + 1] = msg
  end
end

-- The declaration a name or attribute reads; reports what is not declared.
-- Returns the field (a lib.schema table), "local" for names the template
-- binds itself, or nil when nothing can be said (engine values, unknown).
function Walker:resolve(e, scope, file, printing, guarded)
  if e.k == "name" then
    local n = e.n
    local bound = scope.vars[n]
    if bound ~= nil then return bound end
    if self.sets[n] then return "local" end
    if self.provided[n] then return nil end
    local f = self.fields[n]
    if f == nil then
      self:report(file, e.line, "'%s' is not declared by message type '%s' (scripts/types.lua)", n,
        self.type)
      return nil
    end
    if printing and f.default == nil and schema.is_optional(f) and not f.from
      and not guarded and not scope.guards[n] then
      self:report(file, e.line,
        "optional field '%s' is printed without a guard: wrap it in {%% if %s %%} or use |default(...)",
        n, n)
    end
    return f
  end
  if e.k == "getattr" or (e.k == "getitem" and e.key.k == "lit" and type(e.key.v) == "string") then
    -- printing x.y prints nothing when x is absent: x is checked as printed too
    local base = self:resolve(e.o, scope, file, printing, guarded)
    local key = e.k == "getattr" and e.key or e.key.v
    if type(base) == "table" and base.kind == "object" then
      local f = base.fields[key]
      local p = path_of(e) or key
      if f == nil then
        self:report(file, e.line, "'%s' is not declared by message type '%s' (scripts/types.lua)", p,
          self.type)
        return nil
      end
      if printing and f.default == nil and schema.is_optional(f) and not guarded
        and not scope.guards[p] then
        self:report(file, e.line,
          "optional field '%s' is printed without a guard: wrap it in {%% if %s %%} or use |default(...)",
          p, p)
      end
      return f
    end
    if e.k == "getitem" then self:expr(e.key, scope, file, false, guarded) end
    return nil
  end
  return nil
end

-- Walks an expression; printing: its value reaches the output.
function Walker:expr(e, scope, file, printing, guarded)
  if type(e) ~= "table" then return nil end
  local k = e.k
  if k == "name" or k == "getattr" or k == "getitem" then
    return self:resolve(e, scope, file, printing, guarded)
  elseif k == "lit" then
    return nil
  elseif k == "filter" then
    local g = guarded or e.name == "default" or e.name == "d"
    -- the filter's own arguments are read, not printed
    for _, a in ipairs(e.args or {}) do self:expr(a, scope, file, false, guarded) end
    for _, kw in ipairs(e.kwargs or {}) do self:expr(e.kwargs[kw], scope, file, false, guarded) end
    local inner = self:expr(e.e, scope, file, printing, g)
    -- filters that keep the items of a list keep their declaration
    if e.name == "sort" or e.name == "reverse" or e.name == "list" or e.name == "unique"
      or e.name == "selectattr" or e.name == "rejectattr" then
      return inner
    end
    return nil
  elseif k == "test" then
    self:expr(e.e, scope, file, false, true)
    for _, a in ipairs(e.args or {}) do self:expr(a, scope, file, false, guarded) end
    return nil
  elseif k == "call" then
    if not (e.fn.k == "name" and GLOBAL_CALLS[e.fn.n]) then self:expr(e.fn, scope, file, false, guarded) end
    for _, a in ipairs(e.args or {}) do self:expr(a, scope, file, false, guarded) end
    for _, kw in ipairs(e.kwargs or {}) do self:expr(e.kwargs[kw], scope, file, false, guarded) end
    return nil
  elseif k == "cond" then
    self:expr(e.test, scope, file, false, true)
    local inner = self:with_guards(scope, paths_in(e.test, {}))
    self:expr(e.a, inner, file, printing, guarded)
    if e.b then self:expr(e.b, scope, file, printing, guarded) end
    return nil
  elseif k == "and" or k == "or" then
    self:expr(e.a, scope, file, false, true)
    local inner = k == "and" and self:with_guards(scope, paths_in(e.a, {})) or scope
    self:expr(e.b, inner, file, printing, guarded)
    return nil
  end
  -- everything else reads its parts
  for key, v in pairs(e) do
    if key ~= "line" and type(v) == "table" then
      if v.k then
        self:expr(v, scope, file, printing, guarded)
      else
        for _, item in pairs(v) do
          if type(item) == "table" and item.k then self:expr(item, scope, file, printing, guarded)
          elseif type(item) == "table" then
            for _, x in pairs(item) do
              if type(x) == "table" and x.k then self:expr(x, scope, file, printing, guarded) end
            end
          end
        end
      end
    end
  end
  return nil
end

function Walker:with_guards(scope, paths)
  local guards = setmetatable({}, {__index = scope.guards})
  for p in pairs(paths) do guards[p] = true end
  return {vars = scope.vars, guards = guards}
end

function Walker:with_vars(scope, vars)
  local v = setmetatable({}, {__index = scope.vars})
  for n, f in pairs(vars) do v[n] = f end
  return {vars = v, guards = scope.guards}
end

function Walker:stmts(list, scope, file, blocks)
  for _, node in ipairs(list) do self:stmt(node, scope, file, blocks) end
end

function Walker:stmt(node, scope, file, blocks)
  local k = node.k
  if k == "out" then
    self:expr(node.e, scope, file, true, false)
  elseif k == "if" then
    for _, c in ipairs(node.conds) do
      self:expr(c.cond, scope, file, false, true)
      self:stmts(c.body, self:with_guards(scope, paths_in(c.cond, {})), file, blocks)
    end
    if node.else_ then self:stmts(node.else_, scope, file, blocks) end
  elseif k == "for" then
    local list = self:expr(node.iter, scope, file, false, true)
    local item = type(list) == "table" and list.kind == "list" and list.of or "local"
    local vars = {loop = "local"}
    for j, n in ipairs(node.targets) do vars[n] = (#node.targets == 1 and j == 1) and item or "local" end
    local inner = self:with_vars(scope, vars)
    if node.filter then self:expr(node.filter, inner, file, false, true) end
    self:stmts(node.body, inner, file, blocks)
    if node.else_ then self:stmts(node.else_, scope, file, blocks) end
  elseif k == "set" or k == "setattr" then
    self:expr(node.e, scope, file, false, false)
  elseif k == "setblock" then
    self:stmts(node.body, scope, file, blocks)
  elseif k == "block" then
    local body = blocks[node.name] or node.body
    self:stmts(body.body or body, scope, body.file or file, blocks)
  elseif k == "include" then
    if node.e.k == "lit" and type(node.e.v) == "string" then
      self:template(node.e.v, node.with_context and scope or {vars = {}, guards = {}}, blocks, file,
        node.line)
    else
      self:expr(node.e, scope, file, false, false)
    end
  end
end

-- Collects every {% set %} name of a tree (and of what it pulls in).
function Walker:collect_sets(tree, seen)
  for _, node in ipairs(tree) do
    if node.k == "set" then
      for _, n in ipairs(node.targets) do self.sets[n] = true end
    elseif node.k == "setblock" then
      self.sets[node.target] = true
    end
    for _, key in ipairs({"body", "else_"}) do
      if type(node[key]) == "table" then self:collect_sets(node[key], seen) end
    end
    for _, c in ipairs(node.conds or {}) do self:collect_sets(c.body, seen) end
    local pulled = (node.k == "extends" and node.name)
      or (node.k == "include" and node.e.k == "lit" and node.e.v)
    if type(pulled) == "string" and not seen[pulled] then
      seen[pulled] = true
      local t = parse(pulled, self.loader, self.cache)
      if t then self:collect_sets(t, seen) end
    end
  end
end

function Walker:template(name, scope, blocks, from_file, from_line)
  local tree = parse(name, self.loader, self.cache)
  if not tree then
    self:report(from_file or name, from_line or 0, "template '%s' not found", name)
    return
  end
  local file = tree.file or name
  self.depth = self.depth + 1
  if self.depth > 16 then
    self.depth = self.depth - 1
    return
  end
  local parent
  for _, node in ipairs(tree) do
    if node.k == "extends" then parent = node end
  end
  if parent then
    -- the child's blocks replace the layout's; the rest of the child is not output
    local child_blocks = setmetatable({}, {__index = blocks})
    for _, node in ipairs(tree) do
      if node.k == "block" and blocks[node.name] == nil then
        child_blocks[node.name] = {body = node.body, file = file}
      end
    end
    self:template(parent.name, scope, child_blocks, file, parent.line)
  else
    self:stmts(tree, scope, file, blocks)
  end
  self.depth = self.depth - 1
end

function M.check(name, loader, fields, provided, message_type, trees)
  local w = setmetatable({fields = fields, provided = provided or {}, loader = loader,
    cache = trees or {},
    errors = {}, seen = {}, sets = {}, type = message_type or "?", depth = 0}, Walker)
  local ok, err = pcall(function()
    local tree = parse(name, loader, w.cache)
    if tree then w:collect_sets(tree, {[name] = true}) end
    w:template(name, {vars = {}, guards = {}}, {}, name, 0)
  end)
  if not ok then w.errors[#w.errors + 1] = tostring(err) end
  return w.errors
end

return M
