-- whatsapp.lua - free-form text or an approved template (issue 14 item 1).
--
--   whatsapp.choose(message_type, context, who, now)
--     -> {mode = "text", reason}
--      | {mode = "template", reason, template = {name, language, components}}
--
-- Meta lets a business send free-form text only within 24 hours of the
-- client's last message to it (the customer-service window); outside it only
-- an approved template may start a conversation, and free-form text is
-- refused with error 131047. The engine asks this before every WhatsApp
-- attempt with the facts it keeps (who.last_inbound.whatsapp: when the
-- client last wrote, from Meta's `messages` webhook; who.window_closed.whatsapp:
-- when Meta last refused text as outside the window) and sends what it
-- answers; `reason` goes into the message's events. The text itself is
-- content.render's. settings.whatsapp holds the window, the languages and the
-- template of each message type; its parameters are template expressions
-- over the type's context, checked at load like every template (a variable
-- the type does not declare refuses the reload with its place).
-- Contract: docs/scripting.md ("whatsapp.choose").

local settings = require("settings")
local template = require("lib.template")
local tnames = require("lib.template.names")
local types = require("types")
local content = require("content")

local M = {}

local function conf() return settings.whatsapp or {} end

-- Where a parameter's source is, for errors: settings.whatsapp.templates.welcome.body[2]
local function place(message_type, part, i)
  return ("settings.whatsapp.templates.%s.%s[%d]"):format(message_type, part, i)
end

-- Every parameter of every template, compiled once per generation:
-- PARAMS[type] = {header = {render...}, body = {...}, buttons = {{index, render}...}}.
local PARAMS, SOURCES = {}, {}

local function compile(message_type, part, i, source)
  local name = place(message_type, part, i)
  if type(source) ~= "string" or source == "" then
    error(name .. ": expected a template expression such as \"{{ client_name }}\"", 0)
  end
  SOURCES[name] = source
  local render = template.compile(source, name, {loader = function(n) return SOURCES[n] end,
    autoescape = function() return false end})
  local decl = types.TYPES[message_type]
  if decl then
    local problems = tnames.check(name, function(n) return SOURCES[n] end, decl.fields,
      content.PROVIDED, message_type, {})
    if #problems > 0 then error(table.concat(problems, "; "), 0) end
  end
  return render
end

local function load_templates()
  for message_type, t in pairs(conf().templates or {}) do
    local where = "settings.whatsapp.templates." .. tostring(message_type)
    if types.TYPES[message_type] == nil then
      error(where .. ": not a message type declared in types.lua", 0)
    end
    if type(t) ~= "table" or type(t.name) ~= "string" or not t.name:match("^[a-z0-9_]+$")
      or #t.name > 512 then
      error(where .. ".name: the approved template's name (lower case, digits, _)", 0)
    end
    local p = {header = {}, body = {}, buttons = {}}
    for i, src in ipairs(t.header or {}) do p.header[i] = compile(message_type, "header", i, src) end
    for i, src in ipairs(t.body or {}) do p.body[i] = compile(message_type, "body", i, src) end
    for i, b in ipairs(t.buttons or {}) do
      local idx = type(b) == "table" and math.tointeger(b.index)
      if not idx or idx < 0 or idx > 9 then
        error(place(message_type, "buttons", i) .. ".index: a whole number from 0 to 9", 0)
      end
      p.buttons[i] = {index = idx, render = compile(message_type, "buttons", i, b.url)}
    end
    PARAMS[message_type] = p
  end
end
load_templates()

-- The template language for a locale: the locale itself, then its language
-- ("fr-CA" -> "fr"), through settings.whatsapp.languages; else the default.
function M.language(locale)
  local c = conf()
  local map = c.languages or {}
  if type(locale) == "string" and locale ~= "" then
    if map[locale] then return map[locale] end
    local lang = locale:match("^(%a+)[-_]")
    if lang and map[lang] then return map[lang] end
  end
  return c.language or "en_US"
end

local function ago(seconds)
  if seconds < 3600 then return ("%d min ago"):format(seconds // 60) end
  if seconds < 2 * 86400 then return ("%.1f h ago"):format(seconds / 3600) end
  return ("%d days ago"):format(seconds // 86400)
end

-- Whether free-form text may go now, and why.
function M.window(who, now)
  local hours = tonumber(conf().window_hours) or 24
  local last = type(who) == "table" and type(who.last_inbound) == "table"
    and tonumber(who.last_inbound.whatsapp) or nil
  local closed = type(who) == "table" and type(who.window_closed) == "table"
    and tonumber(who.window_closed.whatsapp) or nil
  if last == nil then
    return false, "the client has never written to us on WhatsApp"
  end
  if closed and closed >= last then
    return false, ("Meta said the %d-hour window was closed %s (the client last wrote %s)")
      :format(hours, ago(now - closed), ago(now - last))
  end
  if now - last >= hours * 3600 then
    return false, ("the client last wrote %s, outside the %d-hour window"):format(ago(now - last),
      hours)
  end
  return true, ("the client wrote %s, inside the %d-hour window"):format(ago(now - last), hours)
end

local function text_param(s)
  s = tostring(s):gsub("[\r\n\t]+", " "):gsub("  +", " "):gsub("^ ", ""):gsub(" $", "")
  return {type = "text", text = s}
end

function M.choose(message_type, context, who, now)
  local open, why = M.window(who, tonumber(now) or herald.now())
  if open then
    return {mode = "text", reason = "free-form text: " .. why}
  end
  local t = (conf().templates or {})[message_type]
  local p = PARAMS[message_type]
  if t == nil or p == nil then
    error(("no approved WhatsApp template for '%s' (settings.whatsapp.templates), and %s")
      :format(tostring(message_type), why), 0)
  end
  -- The language the text would be written in (content.choose_locale: the
  -- client's chain, down to the default when templates/ lacks theirs): the
  -- template's parameters (dates, amounts) are in it, and so is the template,
  -- in the client's own variant of it when that is the same language
  -- (en-GB -> en_GB through settings.whatsapp.languages).
  local asked = type(who) == "table" and who.locale or nil
  local written = content.choose_locale(message_type, "whatsapp", asked).locale
  local tag = content.locale_tag(asked)
  local language = M.language((tag and tag:match("^[^%-]+") == written:match("^[^%-]+")) and tag
    or written)
  local ctx = content.context(message_type, "whatsapp",
    types.prepare(message_type, context, written), written)
  local ropts = {locale = written}
  local components = {}
  local function part(kind, list)
    if #list == 0 then return end
    local params = {}
    for i, render in ipairs(list) do
      local v = render(ctx, ropts)
      if v:match("^%s*$") then
        error(("%s rendered an empty parameter (Meta refuses it)"):format(place(message_type, kind,
          i)), 0)
      end
      params[i] = text_param(v)
    end
    components[#components + 1] = {type = kind, parameters = params}
  end
  part("header", p.header)
  part("body", p.body)
  for _, b in ipairs(p.buttons) do
    components[#components + 1] = {type = "button", sub_type = "url", index = tostring(b.index),
      parameters = {{type = "text", text = b.render(ctx, ropts)}}}
  end
  return {mode = "template", reason = ("approved template %s: %s"):format(t.name, why),
    template = {name = t.name, language = language, components = components}}
end

return M
