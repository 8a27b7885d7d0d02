-- lib/template.lua - a template engine with Jinja2's syntax and, for everything it
-- supports, Jinja2's semantics (so an operator who knows Jinja2 is never surprised).
--
--   local template = require("lib.template")
--   local render = template.compile(source, "welcome.html", {loader = fn})
--   local html = render({client_name = "Ana"})
--   local fr = render({client_name = "Ana"}, {locale = "fr"})  -- dates, amounts in French
--
-- compile(source, name, opts) returns render(context) -> string, or raises
-- "name:line: message". opts:
--   autoescape  true / false for every template of this compile, or function(name)
--               -> boolean; nil: on for names ending .html .htm .xml (Jinja2's
--               select_autoescape)
--   loader      function(name) -> source or nil (and the file it read, named in
--               errors), for include and extends
--   cache       table name -> compiled template, shared between compiles (the
--               templates an include or extends pulls in are compiled once)
--   precompiled table name -> compiler.freeze(template): the templates another
--               state compiled from the same sources, loaded without compiling
--               them again (the engine's states share a generation's this way)
--   trace       function(text, name, line, guarded) -> text, called with what
--               each {{ }} prints (guarded: it goes through `default` or is an
--               `a if x else b`); tests use it to find slots that print nothing
--
-- A template is lexed, parsed into a tree and turned into Lua source that is
-- `load`ed as a text chunk with an empty environment: the chunk reaches only the
-- run-time helpers, passed to it as arguments.
--
-- Supported: {{ }}, {% %}, {# #}, whitespace control (- on any delimiter), raw;
-- if/elif/else, for (else, loop.*, tuple targets, `if` filter), set (also block set
-- and namespace attributes), include (ignore missing, with/without context),
-- extends/block/super(); expressions with literals, lists, dicts, attribute and
-- subscript access, arithmetic, ~, comparisons (chained), in, and/or/not,
-- `a if b else c`, tests (is defined, is none, ...), filters with positional and
-- keyword arguments; the globals range(), namespace(), dict().
-- render(context, opts): opts.locale ("fr-CA") is the locale of the date, number
-- and currency filters (lib/template/locales.lua), opts.plain_spaces writes their
-- no-break spaces as plain spaces (SMS).
-- Deliberate differences from Jinja2: a mapping is iterated in sorted key order
-- (Lua tables keep no insertion order); the date, number and currency filters are
-- Herald's own; calling an unknown function is a compile error instead of a render error.
--
-- This file is the public entry (compile, source, escape, markup, is_markup,
-- filters, str; _load for the engine's own include and extends). The engine is
-- in lib/template/, one stage a file, each requiring only those listed before it:
--   errors.lua    compile and render errors, the position of a render error
--   value.lua     Markup, HTML escaping, Python-like str()/repr(), truthiness
--   text.lua      UTF-8 slicing and case mapping
--   runtime.lua   the helpers compiled templates call (attributes, operators, loops)
--   filters.lua   the filters and the `is` tests
--   lexer.lua     source -> tokens
--   parser.lua    tokens -> statement and expression tree
--   compiler.lua  tree -> Lua source -> compiled template; loading by name
-- Uses: lib.template.compiler, lib.template.value, lib.template.filters.

local compiler = require("lib.template.compiler")
local value = require("lib.template.value")
local filters = require("lib.template.filters")

local M = {}

local S, markup, is_mk, escape_str = value.S, value.markup, value.is_mk, value.escape_str
local F = filters.F
local compile_template = compiler.compile_template

-- The compiled template `name` of env, through its cache or loader.
-- Returns the template, or nil and "missing", or raises a compile error.
M._load = compiler.load

function M.compile(source, name, opts)
  opts = opts or {}
  name = name or "<template>"
  local env = {loader = opts.loader, autoescape = opts.autoescape, cache = opts.cache or {},
    compiling = {}, trace = opts.trace, precompiled = opts.precompiled}
  local frozen = env.precompiled and compiler.from_frozen(env, name)
  if frozen then return frozen.render end
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
