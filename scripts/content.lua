-- content.lua - what a message says on each channel.
--
--   content.render(message_type, channel, context, opts?)
--     email    -> {subject, html, text, track, track_days, unsubscribe}  (track: settings.tracking says
--                 the engine rewrites the links and adds the open pixel; unsubscribe:
--                 settings.unsubscribe says it adds the List-Unsubscribe headers)
--     sms      -> {text, encoding, segments}   (fitted to one segment where possible)
--     whatsapp -> {text}
--     each also with locale (the locale written in), locale_requested (the
--     client's, when given) and locale_fallback (why not the client's language)
--     opts.locale: the client's locale ("fr-CA"); see "Locales" below
--   content.choose_locale(message_type, channel, requested) -> {locale, requested,
--     chain, fallback}
--   content.locale_tag(s), content.locale_chain(tag), content.locales()
--   content.export_compiled() -> {["tag\tname"] = text}: what compile_all compiled,
--     for the engine's other states (herald.compiled)
--   content.compile_all() -> true, or nil and {"name:line: message", ...}
--     (every template compiles, every type has its templates and a declaration
--     in types.lua, and every template reads only what its type declares)
--   content.channels(message_type) -> the channels it has templates for
--
-- The context is first checked against the type's declaration (types.lua)
-- and given its defaults: a render never fills a blank with an absent field.
--
-- The templates live in templates/ and reach this module as herald.templates[name]
-- (see docs/scripting.md); a locale's own are in templates/<tag>/ ("fr/welcome.html"). The tables below are data: which templates a message
-- type uses on each channel, which values SMS fitting may shorten, and the
-- defaults every template can count on. Templates use Jinja2 syntax (lib/template);
-- .html templates are auto-escaped, the others are not.

local template = require("lib.template")
local tnames = require("lib.template.names")
local sms = require("lib.sms")
local settings = require("settings")
local types = require("types")
local experiments = require("experiments")

local M = {}

local function email(name)
  return {subject = name .. ".subject", html = name .. ".html", text = name .. ".txt"}
end

-- Message type -> channel -> template(s). Every type has a text for every channel:
-- fallback chains and client preferences can put any type on any channel.
-- The SMS and WhatsApp names follow the source design (welcome_sms,
-- budget_ready_sms, vendors_ready_whatsapp, selection_needed_sms,
-- blueprint_ready_whatsapp, reminder_sms).
M.TEMPLATES = {
  welcome = {
    email = email("welcome"), sms = "welcome.sms", whatsapp = "welcome.whatsapp",
  },
  budget_summary = {
    email = email("budget_summary"), sms = "budget_ready.sms", whatsapp = "budget_ready.whatsapp",
  },
  vendor_options = {
    email = email("vendor_options"), sms = "vendors_ready.sms",
    whatsapp = "vendors_ready.whatsapp",
  },
  selection_confirmation = {
    email = email("selection_confirmation"), sms = "selection_needed.sms",
    whatsapp = "selection_needed.whatsapp",
  },
  blueprint_delivery = {
    email = email("blueprint_delivery"), sms = "blueprint_ready.sms",
    whatsapp = "blueprint_ready.whatsapp",
  },
  error_notification = {
    email = email("error_notification"), sms = "error_notification.sms",
    whatsapp = "error_notification.whatsapp",
  },
  reminder = {
    email = email("reminder"), sms = "reminder.sms", whatsapp = "reminder.whatsapp",
  },
  -- One email per client per day combining every low-urgency message; the
  -- engine passes items = {{subject, summary?}, ...} (each message's own subject).
  digest = {
    email = email("digest"), sms = "digest.sms", whatsapp = "digest.whatsapp",
  },
}

-- Context values an SMS may shorten (with "...") to stay in one segment, by
-- message type. Links are never shortened.
M.SMS_SHORTEN = {
  default = {"client_name", "event_type"},
  error_notification = {"client_name", "event_type", "error_summary", "action"},
  reminder = {"client_name", "event_type", "due_item"},
}

-- Values every template may use when the context does not carry them. The
-- company identity (name, postal address for the CAN-SPAM footer) is data
-- in settings.lua (settings.company). The engine gives every email its signed
-- unsubscribe link (public_url/u/<token>) as unsubscribe_url; a render
-- without one (previews, tests) carries this placeholder.
M.DEFAULTS = {
  unsubscribe_path = "/u/preview",
}

---------------------------------------------------------------------------

local function autoescape(name) return name:match("%.html$") ~= nil end

---------------------------------------------------------------------------
-- Locales. The files at the top of templates/ are the default locale's
-- (settings.locales.default); templates/<tag>/ holds a locale's own. A
-- locale reads a template it lacks from its parents of the same language
-- (fr-CA from fr/; en-GB from the top when the default is en), never from
-- another language: one message is written in one language. Which locale a
-- client gets is choose_locale's answer: the first of the client's chain
-- (locale_chain) that has every template the message needs on its channel.

local function default_locale() return (settings.locales or {}).default or "en" end
local function lang_of(tag) return tag:match("^[^%-]+") end
local function parent_of(tag) return tag:match("^(.+)%-[^%-]+$") end

-- "fr_ca", "FR-CA" -> "fr-CA" (BCP 47 case: language lower, script Title,
-- region upper); nil and why for what is not a locale tag. The shape is the
-- one POST /api/crm/preferences accepts: 2-3 letters, then subtags of 2-8
-- letters or digits after "-" or "_", 35 bytes at most.
function M.locale_tag(s)
  if type(s) ~= "string" then return nil, "not a string" end
  if #s == 0 or #s > 35 then return nil, "empty or longer than 35 bytes" end
  if not s:match("^%a%a%a?[%w_%-]*$") or s:match("[_%-][_%-]") or s:match("[_%-]$") then
    return nil, "expected a tag like fr, fr-CA or pt_BR"
  end
  local parts = {}
  for p in s:gmatch("[^_%-]+") do parts[#parts + 1] = p end
  if not parts[1]:match("^%a%a%a?$") then return nil, "expected a tag like fr, fr-CA or pt_BR" end
  parts[1] = parts[1]:lower()
  for i = 2, #parts do
    local p = parts[i]
    if #p < 2 or #p > 8 then return nil, "a subtag of 2 to 8 letters or digits was expected" end
    if #p == 4 and p:match("^%a+$") then
      parts[i] = p:sub(1, 1):upper() .. p:sub(2):lower()
    elseif (#p == 2 and p:match("^%a+$")) or (#p == 3 and p:match("^%d+$")) then
      parts[i] = p:upper()
    else
      parts[i] = p:lower()
    end
  end
  return table.concat(parts, "-")
end

-- The locales a (normalized) tag falls back through, most specific first and
-- the default last: "fr-CA" -> {"fr-CA", "fr", "en"}; settings.locales.fallbacks
-- of the tag or its language come before the default ({pt = {"es"}}:
-- "pt-BR" -> {"pt-BR", "pt", "es", "en"}).
function M.locale_chain(tag)
  local cfg = settings.locales or {}
  local chain, seen = {}, {}
  local function add(t)
    while t do
      if not seen[t] then
        seen[t] = true
        chain[#chain + 1] = t
      end
      t = parent_of(t)
    end
  end
  if tag then
    add(tag)
    local more = cfg.fallbacks or {}
    for _, t in ipairs(more[tag] or more[lang_of(tag)] or {}) do add(M.locale_tag(t)) end
  end
  add(default_locale())
  return chain
end

-- Where a locale's templates are looked up, in order: its folder, its
-- parents' folders, and the top of templates/ for the default's language.
local function dirs_of(tag)
  local dirs, default = {}, default_locale()
  local t = tag
  while t and t ~= default do
    dirs[#dirs + 1] = t .. "/"
    t = parent_of(t)
  end
  if lang_of(tag) == lang_of(default) then dirs[#dirs + 1] = "" end
  return dirs
end

-- One view of templates/ per locale: its loader (include and extends read
-- the locale's layout.html) and its compiled templates. folders: the
-- locales that have a folder in templates/ (tag -> true).
local views, folders, chosen, nchosen = {}, nil, {}, 0

-- herald.compiled: the templates as the generation's check compiled them
-- (export_compiled), so this state loads them without compiling again. Not
-- used once a template changed inside the state, nor by compile_all (the
-- check compiles from source), nor with M.trace.
local use_compiled = true

function M.reset()
  views, folders, chosen, nchosen = {}, nil, {}, 0
end

-- The precompiled templates of the view of tag, by the name the view caches.
local function precompiled(tag)
  if not use_compiled or M.trace or type(herald.compiled) ~= "table" then return nil end
  local prefix = tag .. "\t"
  return setmetatable({}, {__index = function(_, name) return herald.compiled[prefix .. name] end})
end

local function view(tag)
  local v = views[tag]
  if v then return v end
  local dirs = dirs_of(tag)
  v = {tag = tag, compiled = {}, objects = {}}
  v.find = function(name)
    for _, d in ipairs(dirs) do
      if herald.templates[d .. name] ~= nil then return d .. name end
    end
    return nil
  end
  v.loader = function(name)
    local file = v.find(name)
    if file then return herald.templates[file], file end
    return nil
  end
  views[tag] = v
  return v
end

local function locale_folders()
  if folders then return folders end
  folders = {}
  for name in pairs(herald.templates) do
    local dir = name:match("^([^/]+)/")
    if dir then folders[dir] = true end
  end
  return folders
end

-- The locales templates/ has: the default and every folder, sorted.
function M.locales()
  local list, default = {default_locale()}, default_locale()
  local more = {}
  for tag in pairs(locale_folders()) do
    if tag ~= default and M.locale_tag(tag) == tag then more[#more + 1] = tag end
  end
  table.sort(more)
  for _, t in ipairs(more) do list[#list + 1] = t end
  return list
end

-- Tests set trace = function(text, name, line, guarded) -> text (see
-- lib/template.lua) and call reset(): every {{ }} then reports what it printed.
M.trace = nil

-- The compiled template `name` as the locale `tag` has it.
local function get(name, tag)
  local v = view(tag or default_locale())
  local file = v.find(name)
  if file == nil then
    error("template '" .. name .. "' not found in templates/" ..
      (tag and tag ~= default_locale() and (" for locale " .. tag) or ""), 0)
  end
  local source = herald.templates[file]
  local c = v.compiled[name]
  if c and c.source == source then return c.render end
  if c then -- a template changed inside this state: start afresh
    use_compiled = false
    M.reset()
    v = view(tag or default_locale())
  end
  local render = template.compile(source, file,
    {loader = v.loader, autoescape = autoescape, cache = v.objects, trace = M.trace,
      precompiled = precompiled(v.tag)})
  v.compiled[name] = {source = source, render = render}
  return render
end

-- The templates a message type needs on a channel.
local function needed(message_type, channel)
  local names = (M.TEMPLATES[message_type] or {})[channel]
  if type(names) == "table" then return {names.subject, names.html, names.text} end
  return {names}
end

local function has_all(tag, list)
  local v = view(tag)
  for _, name in ipairs(list) do
    if v.find(name) == nil then return false end
  end
  return true
end

-- Which locale a message is written in: the first of the client's chain
-- that is the default or has a folder, and has every template the message
-- needs on this channel. fallback says why, when that is not the client's
-- language (a region's parent, fr for fr-CA, is the client's language).
local choose

function M.choose_locale(message_type, channel, requested)
  -- the answer depends only on these and on templates/: kept until the next
  -- reset (a new generation), at most 1,000 of them
  if type(requested) ~= "string" or #requested > 35 then
    return choose(message_type, channel, requested)
  end
  local key = message_type .. "\0" .. channel .. "\0" .. requested
  local r = chosen[key]
  if r == nil then
    r = choose(message_type, channel, requested)
    if nchosen >= 1000 then chosen, nchosen = {}, 0 end
    chosen[key], nchosen = r, nchosen + 1
  end
  return {locale = r.locale, requested = r.requested, chain = r.chain, fallback = r.fallback}
end

choose = function(message_type, channel, requested)
  local default = default_locale()
  if requested == nil or requested == herald.null or requested == "" then
    return {locale = default, chain = {default}}
  end
  local shown = type(requested) == "string" and #requested <= 35 and requested or nil
  local tag, why = M.locale_tag(requested)
  if tag == nil then
    return {locale = default, requested = shown, chain = {default},
      fallback = ("the client's locale is not a locale tag (%s); the default, %s, is used")
        :format(why, default)}
  end
  local r = {requested = shown, chain = M.locale_chain(tag)}
  local list = needed(message_type, channel)
  for _, c in ipairs(r.chain) do
    if (c == default or locale_folders()[c]) and has_all(c, list) then
      r.locale = c
      break
    end
  end
  r.locale = r.locale or default -- the default lacks it too: the render names what
  if lang_of(r.locale) ~= lang_of(tag) then
    local written = r.locale == default and ("the default, " .. default) or r.locale
    if locale_folders()[tag] or locale_folders()[lang_of(tag)] then
      r.fallback = ("the templates of %s lack %s on %s; written in %s")
        :format(tag, message_type, channel, written)
    else
      r.fallback = ("no templates for %s (templates/%s/ does not exist); written in %s")
        :format(tag, lang_of(tag), written)
    end
  end
  return r
end

-- s without leading and trailing white space (%s: space, \t \n \v \f \r).
-- By hand: the pattern "%s+$" tries every run of spaces to its end, which on
-- a rendered HTML body (indentation) cost a tenth of the render.
local sfind, sbyte, ssub = string.find, string.byte, string.sub
local function trim(s)
  local i = sfind(s, "%S")
  if not i then return "" end
  local j = #s
  local b = sbyte(s, j)
  while b == 32 or (b >= 9 and b <= 13) do
    j = j - 1
    b = sbyte(s, j)
  end
  if i == 1 and j == #s then return s end
  return ssub(s, i, j)
end
M._trim = trim -- for the specs

local function company()
  local c = {}
  for k, v in pairs(settings.company or {}) do c[k] = v end
  return c
end

-- The variables a template sees: the context, plus message_type, channel,
-- locale (the one written in: <html lang="{{ locale }}">) and defaults for
-- company and unsubscribe_url. The caller's table is not modified.
function M.context(message_type, channel, context, locale)
  local ctx = {}
  for k, v in pairs(context or {}) do ctx[k] = v end
  local base = company()
  if type(ctx.company) == "table" then
    for k, v in pairs(ctx.company) do base[k] = v end
  end
  ctx.company = base
  local public_url = (herald.config and herald.config.public_url) or ""
  public_url = public_url:gsub("/+$", "")
  if ctx.public_url == nil then ctx.public_url = public_url end
  if ctx.unsubscribe_url == nil then ctx.unsubscribe_url = public_url .. M.DEFAULTS.unsubscribe_path end
  ctx.message_type = message_type
  ctx.channel = channel
  ctx.locale = locale or default_locale()
  return ctx
end

-- Whether an email of this type carries the List-Unsubscribe headers
-- (settings.unsubscribe: the type's own entry, else its default).
function M.unsubscribe(message_type)
  local u = settings.unsubscribe or {}
  local v = u[message_type]
  if v == nil then v = u.default end
  return v == true
end

-- The shipped placeholder identity (settings.company as distributed). A
-- production deployment must not send from it: `herald check` with
-- HERALD_ENV=production asks identity() and refuses what it reports.
M.PLACEHOLDER = {
  address = "1200 Market Street, Suite 400, San Francisco, CA 94102, USA",
  support_email = "support@example.com",
}

local function blank(v) return type(v) ~= "string" or v:match("^%s*$") ~= nil end

-- The company identity every footer uses, and what is wrong with it for a
-- production deployment: a list of sentences, empty when nothing is.
function M.identity()
  local c = company()
  local problems = {}
  for _, k in ipairs({"name", "address", "support_email"}) do
    if blank(c[k]) then
      problems[#problems + 1] = "settings.company." .. k .. " is empty (CAN-SPAM footer)"
    end
  end
  if not blank(c.address) and trim(c.address) == M.PLACEHOLDER.address then
    problems[#problems + 1] = "settings.company.address is the shipped placeholder; " ..
      "set your own valid postal address"
  end
  if not blank(c.support_email) then
    local e = trim(c.support_email):lower()
    if e == M.PLACEHOLDER.support_email or not e:match("^[^@%s]+@[^@%s]+%.[^@%s]+$")
      or e:match("@example%.[a-z]+$") then
      problems[#problems + 1] = "settings.company.support_email is a placeholder or " ..
        "not an address; set the mailbox clients can write to"
    end
  end
  return {company = c, problems = problems}
end

-- What the engine gives every template besides the declared context.
M.PROVIDED = {company = true, public_url = true, unsubscribe_url = true, message_type = true,
  channel = true, experiment = true, variant = true, locale = true}

function M.channels(message_type)
  local list = {}
  for _, channel in ipairs({"email", "sms", "whatsapp"}) do
    if (M.TEMPLATES[message_type] or {})[channel] then list[#list + 1] = channel end
  end
  return list
end

function M.render(message_type, channel, context, opts)
  local entry = M.TEMPLATES[message_type]
  if not entry then
    error("content: unknown message type '" .. tostring(message_type) .. "'", 2)
  end
  local names = entry[channel]
  if not names then
    error(("content: unknown channel '%s' (message type '%s')"):format(tostring(channel),
      message_type), 2)
  end
  local loc = M.choose_locale(message_type, channel, opts and opts.locale)
  local tag = loc.locale
  local ctx = M.context(message_type, channel, types.prepare(message_type, context, tag), tag)
  local out
  if channel == "email" then
    -- an A/B arm (experiments.lua, recorded at acceptance): its templates or subject
    local arm = ctx.experiment and experiments.arm(ctx.experiment, ctx.variant)
    if arm and arm.template then names = email(arm.template) end
    local ropts = {locale = tag}
    local subject = (arm and experiments.subject(ctx.experiment, ctx.variant, ctx)
      or get(names.subject, tag)(ctx, ropts)):gsub("%s+", " ")
    local t = settings.tracking or {}
    local track = t.enabled == true and not (t.off and t.off[message_type])
    out = {subject = trim(subject), html = get(names.html, tag)(ctx, ropts),
      text = trim(get(names.text, tag)(ctx, ropts)) .. "\n",
      track = track, track_days = t.link_days, unsubscribe = M.unsubscribe(message_type),
      unsubscribe_mailto = settings.unsubscribe_mailto}
  elseif channel == "sms" then
    -- no-break spaces (French amounts) are not GSM-7: plain ones in a text
    local render, ropts = get(names, tag), {locale = tag, plain_spaces = true}
    local fitted = sms.fit(function(c) return trim(render(c, ropts)) end, ctx,
      M.SMS_SHORTEN[message_type] or M.SMS_SHORTEN.default)
    out = {text = fitted.text, encoding = fitted.encoding, segments = fitted.segments}
  else
    out = {text = trim(get(names, tag)(ctx, {locale = tag}))}
  end
  out.locale, out.locale_requested, out.locale_fallback = tag, loc.requested, loc.fallback
  return out
end

-- Compiles every file of templates/ (a locale's in its own view, so that
-- its include and extends read the locale's layout), checks that every
-- template named in M.TEMPLATES exists in every locale and reads only what
-- its type declares (types.lua). A locale whose folder, with its parents of
-- the same language, lacks a template is refused: the default would fill
-- the gap in another language. true, or nil and a list of "name:line: message".
function M.compile_all()
  use_compiled = false
  M.reset()
  local errors = {}
  local default = default_locale()
  local names = {}
  for name in pairs(herald.templates) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local dir, base = name:match("^([^/]+)/(.+)$")
    local tag = dir and M.locale_tag(dir)
    if dir and tag ~= dir then
      errors[#errors + 1] = ("%s:0: a folder of templates/ is a locale's and is named by its tag " ..
        "(fr, fr-CA, pt-BR): '%s' is not one"):format(name, dir)
    elseif dir and tag == default then
      errors[#errors + 1] = ("%s:0: the default locale's templates (%s) are the files at the top " ..
        "of templates/, not in a folder"):format(name, default)
    else
      local ok, err = pcall(get, base or name, tag)
      if not ok then errors[#errors + 1] = tostring(err) end
    end
  end
  local with_templates = {}
  for t in pairs(M.TEMPLATES) do with_templates[#with_templates + 1] = t end
  table.sort(with_templates)
  for _, tag in ipairs(M.locales()) do
    local v = view(tag)
    local trees = {} -- the compiled templates' trees, for every type's check
    for name, tpl in pairs(v.objects) do
      tpl.ast.file = tpl.name
      trees[name] = tpl.ast
    end
    local missing = {}
    for _, t in ipairs(with_templates) do
      for _, channel in ipairs({"email", "sms", "whatsapp"}) do
        local want = M.TEMPLATES[t][channel]
        if want == nil and tag == default then
          errors[#errors + 1] = ("content.lua:0: message type '%s' has no %s template"):format(t, channel)
        end
        for _, name in ipairs(want and needed(t, channel) or {}) do
          if v.find(name) == nil then
            if tag == default then
              errors[#errors + 1] = ("%s:0: missing (needed by message type '%s' on %s)")
                :format(name, t, channel)
            else
              missing[#missing + 1] = name
            end
          elseif types.TYPES[t] then
            for _, e in ipairs(tnames.check(name, v.loader, types.TYPES[t].fields, M.PROVIDED, t,
              trees)) do
              errors[#errors + 1] = e
            end
          end
        end
      end
    end
    if #missing > 0 then
      local shown = {}
      for i = 1, math.min(#missing, 6) do shown[i] = missing[i] end
      errors[#errors + 1] = ("templates/%s:0: locale %s is incomplete: no %s%s in templates/%s/ " ..
        "or a parent of the same language; add them, or remove the folder to send %s clients " ..
        "the fallback's text"):format(tag, tag, table.concat(shown, ", "),
        #missing > 6 and (" and %d more"):format(#missing - 6) or "", tag, tag)
    end
  end
  for _, t in ipairs(with_templates) do
    if types.TYPES[t] == nil then
      errors[#errors + 1] = ("types.lua:0: message type '%s' has templates but no declaration")
        :format(t)
    end
  end
  for _, t in ipairs(types.names()) do
    if M.TEMPLATES[t] == nil then
      errors[#errors + 1] = ("content.lua:0: message type '%s' is declared in types.lua but has no templates")
        :format(t)
    end
  end
  if #errors > 0 then return nil, errors end
  return true
end

-- After compile_all: every compiled template, "tag\tname" -> its frozen text
-- (lib.template.compiler.freeze). The engine gives them to its other states
-- as herald.compiled, so a thread's new state compiles nothing.
function M.export_compiled()
  local out = {}
  for tag, v in pairs(views) do
    for name, tpl in pairs(v.objects) do
      out[tag .. "\t" .. name] = require("lib.template.compiler").freeze(tpl)
    end
  end
  return out
end

return M
