-- experiments.lua - A/B variants (issue 14 item 3), decided in Lua.
--
--   experiments.assign(message_type, client_id) -> name, arm | nil
--   experiments.arm(name, variant) -> the arm (a table of settings.experiments)
--
-- settings.experiments names experiments; each applies to one message type
-- and splits clients between its variants by weight. The assignment is a
-- hash of the experiment's name and the client id, so a client always gets
-- the same arm of an experiment (and different experiments split clients
-- independently). strategy.decide records it on the message (`experiment`,
-- `variant`, and a reason); content.render reads the arm's subject or
-- template; GET /api/crm/analytics?group_by=variant compares the arms. An
-- experiment with enabled = false (or removed) sends everyone the control:
-- the message type's own subject, templates, channel and time.
--
-- A variant: {name, weight, subject?, template?, channel?, delay_minutes?}
--   subject        a template expression for the email subject
--   template       another template set for the email (templates/<t>.subject,
--                  .html, .txt), read like the type's own
--   channel        this channel first, when the client can be reached on it
--   delay_minutes  send this much later than the policy would (not critical)
-- The first variant is the control.

local settings = require("settings")
local template = require("lib.template")
local types = require("types")

local M = {}

local function list()
  local names = {}
  for name in pairs(settings.experiments or {}) do names[#names + 1] = name end
  table.sort(names)
  return names
end

local SUBJECTS = {} -- "experiment/variant" -> compiled subject

-- Checked at load, so a mistyped experiment fails the reload with its name.
local function check()
  local seen_type = {}
  for _, name in ipairs(list()) do
    local e = settings.experiments[name]
    local where = "settings.experiments." .. name
    if type(e) ~= "table" or types.TYPES[e.message_type] == nil then
      error(where .. ".message_type: a message type declared in types.lua", 0)
    end
    if e.enabled ~= false then
      if seen_type[e.message_type] then
        error(("%s: %s already has an enabled experiment (%s)"):format(where, e.message_type,
          seen_type[e.message_type]), 0)
      end
      seen_type[e.message_type] = name
    end
    if type(e.variants) ~= "table" or #e.variants < 2 then
      error(where .. ".variants: at least two, the first being the control", 0)
    end
    local names = {}
    for i, v in ipairs(e.variants) do
      local vw = where .. ".variants[" .. i .. "]"
      if type(v.name) ~= "string" or not v.name:match("^[%w_%-]+$") or names[v.name] then
        error(vw .. ".name: a distinct name of letters, digits, _ or -", 0)
      end
      names[v.name] = true
      if math.type(v.weight) ~= "integer" or v.weight < 0 or v.weight > 1000000 then
        error(vw .. ".weight: a whole number from 0 to 1000000", 0)
      end
      if v.subject ~= nil then
        if type(v.subject) ~= "string" then error(vw .. ".subject: a template expression", 0) end
        SUBJECTS[name .. "/" .. v.name] = {source = v.subject, render = template.compile(
          v.subject, vw .. ".subject",
          {autoescape = function() return false end, loader = function() return nil end})}
      end
      if v.template ~= nil and (type(v.template) ~= "string" or not v.template:match("^[%w_.%-]+$")) then
        error(vw .. ".template: a template set name (templates/<name>.subject, .html, .txt)", 0)
      end
      for _, ext in ipairs(v.template and {".subject", ".html", ".txt"} or {}) do
        if herald.templates and herald.templates[v.template .. ext] == nil then
          error(("%s.template: templates/%s%s is missing"):format(vw, v.template, ext), 0)
        end
      end
      if v.channel ~= nil and v.channel ~= "email" and v.channel ~= "sms" and v.channel ~= "whatsapp" then
        error(vw .. ".channel: email, sms or whatsapp", 0)
      end
      if v.delay_minutes ~= nil and (type(v.delay_minutes) ~= "number" or v.delay_minutes < 0
          or v.delay_minutes > 7 * 24 * 60) then
        error(vw .. ".delay_minutes: from 0 to a week", 0)
      end
    end
  end
end
check()

-- The client's bucket in [0, total): the first 52 bits of a SHA-256.
local function bucket(name, client_id, total)
  local h = herald.sha256(name .. ":" .. tostring(client_id))
  return tonumber(h:sub(1, 13), 16) % total
end

function M.assign(message_type, client_id)
  if client_id == nil or client_id == "" then return nil end
  for _, name in ipairs(list()) do
    local e = settings.experiments[name]
    if e.message_type == message_type and e.enabled ~= false then
      local total = 0
      for _, v in ipairs(e.variants) do total = total + v.weight end
      if total == 0 then return nil end
      local b = bucket(name, client_id, total)
      for _, v in ipairs(e.variants) do
        if b < v.weight then return name, v end
        b = b - v.weight
      end
    end
  end
  return nil
end

function M.arm(name, variant)
  local e = (settings.experiments or {})[name]
  if type(e) ~= "table" then return nil end
  for _, v in ipairs(e.variants or {}) do
    if v.name == variant then return v end
  end
  return nil
end

-- The arm's subject rendered with ctx, or nil when the arm has none.
function M.subject(name, variant, ctx)
  local arm = M.arm(name, variant)
  if arm == nil or type(arm.subject) ~= "string" then return nil end
  local key = tostring(name) .. "/" .. tostring(variant)
  local c = SUBJECTS[key]
  if c == nil or c.source ~= arm.subject then -- settings changed inside this state (tests)
    c = {source = arm.subject, render = template.compile(arm.subject, key .. ".subject",
      {autoescape = function() return false end, loader = function() return nil end})}
    SUBJECTS[key] = c
  end
  return c.render(ctx)
end

return M
