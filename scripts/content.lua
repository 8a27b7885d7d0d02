-- content.lua - what a message says on each channel.
--
--   content.render(message_type, channel, context)
--     email    -> {subject, html, text, track, track_days, unsubscribe}  (track: settings.tracking says
--                 the engine rewrites the links and adds the open pixel; unsubscribe:
--                 settings.unsubscribe says it adds the List-Unsubscribe headers)
--     sms      -> {text, encoding, segments}   (fitted to one segment where possible)
--     whatsapp -> {text}
--   content.compile_all() -> true, or nil and {"name:line: message", ...}
--     (every template compiles, every type has its templates and a declaration
--     in types.lua, and every template reads only what its type declares)
--   content.channels(message_type) -> the channels it has templates for
--
-- The context is first checked against the type's declaration (types.lua)
-- and given its defaults: a render never fills a blank with an absent field.
--
-- The templates live in templates/ and reach this module as herald.templates[name]
-- (see docs/scripting.md). The tables below are data: which templates a message
-- type uses on each channel, which values SMS fitting may shorten, and the
-- defaults every template can count on. Templates use Jinja2 syntax (lib/template);
-- .html templates are auto-escaped, the others are not.

local template = require("lib.template")
local tnames = require("lib.template.names")
local sms = require("lib.sms")
local settings = require("settings")
local types = require("types")

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

local function loader(name) return herald.templates[name] end
local function autoescape(name) return name:match("%.html$") ~= nil end

-- Compiled templates of this generation: name -> {source, render}. objects is
-- the engine's cache for what include and extends pull in (layout.html ...).
local compiled, objects = {}, {}

function M.reset()
  compiled, objects = {}, {}
end

-- Tests set trace = function(text, name, line, guarded) -> text (see
-- lib/template.lua) and call reset(): every {{ }} then reports what it printed.
M.trace = nil

local function get(name)
  local source = herald.templates[name]
  if source == nil then error("template '" .. name .. "' not found in templates/", 0) end
  local c = compiled[name]
  if c and c.source == source then return c.render end
  if c then M.reset() end -- a template changed inside this state: start afresh
  local render = template.compile(source, name,
    {loader = loader, autoescape = autoescape, cache = objects, trace = M.trace})
  compiled[name] = {source = source, render = render}
  return render
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function company()
  local c = {}
  for k, v in pairs(settings.company or {}) do c[k] = v end
  return c
end

-- The variables a template sees: the context, plus message_type, channel and
-- defaults for company and unsubscribe_url. The caller's table is not modified.
function M.context(message_type, channel, context)
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
  channel = true}

function M.channels(message_type)
  local list = {}
  for _, channel in ipairs({"email", "sms", "whatsapp"}) do
    if (M.TEMPLATES[message_type] or {})[channel] then list[#list + 1] = channel end
  end
  return list
end

function M.render(message_type, channel, context)
  local entry = M.TEMPLATES[message_type]
  if not entry then
    error("content: unknown message type '" .. tostring(message_type) .. "'", 2)
  end
  local names = entry[channel]
  if not names then
    error(("content: unknown channel '%s' (message type '%s')"):format(tostring(channel),
      message_type), 2)
  end
  local ctx = M.context(message_type, channel, types.prepare(message_type, context))
  if channel == "email" then
    local subject = get(names.subject)(ctx):gsub("%s+", " ")
    local t = settings.tracking or {}
    local track = t.enabled == true and not (t.off and t.off[message_type])
    return {subject = trim(subject), html = get(names.html)(ctx), text = trim(get(names.text)(ctx)) .. "\n",
      track = track, track_days = t.link_days, unsubscribe = M.unsubscribe(message_type)}
  elseif channel == "sms" then
    local render = get(names)
    local fitted = sms.fit(function(c) return trim(render(c)) end, ctx,
      M.SMS_SHORTEN[message_type] or M.SMS_SHORTEN.default)
    return {text = fitted.text, encoding = fitted.encoding, segments = fitted.segments}
  end
  return {text = trim(get(names)(ctx))}
end

-- Compiles every file of templates/, checks that every template named in
-- M.TEMPLATES exists and reads only what its type declares (types.lua).
-- true, or nil and a list of "name:line: message".
function M.compile_all()
  M.reset()
  local errors = {}
  local names = {}
  for name in pairs(herald.templates) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local ok, err = pcall(get, name)
    if not ok then errors[#errors + 1] = tostring(err) end
  end
  local trees = {} -- the compiled templates' trees, for every type's check
  for name, tpl in pairs(objects) do trees[name] = tpl.ast end
  local with_templates = {}
  for t in pairs(M.TEMPLATES) do with_templates[#with_templates + 1] = t end
  table.sort(with_templates)
  for _, t in ipairs(with_templates) do
    for _, channel in ipairs({"email", "sms", "whatsapp"}) do
      local want = M.TEMPLATES[t][channel]
      local list = type(want) == "table" and {want.subject, want.html, want.text} or {want}
      if want == nil then
        errors[#errors + 1] = ("content.lua:0: message type '%s' has no %s template"):format(t, channel)
      end
      for _, name in ipairs(want and list or {}) do
        if herald.templates[name] == nil then
          errors[#errors + 1] = ("%s:0: missing (needed by message type '%s' on %s)")
            :format(name, t, channel)
        elseif types.TYPES[t] then
          for _, e in ipairs(tnames.check(name, loader, types.TYPES[t].fields, M.PROVIDED, t,
            trees)) do
            errors[#errors + 1] = e
          end
        end
      end
    end
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

return M
