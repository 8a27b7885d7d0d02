-- Which channel, in which order, when and how urgently a message goes out.
-- The matrix (matrix.lua) and the numbers (settings.lua) are data; this file
-- only reads them. Contract: docs/scripting.md.
--
-- How the channel chain is built, step by step (each step leaves a reason):
--   1. The matrix row for request.message_type: [primary, fallbacks...].
--      The request's urgency, when given, overrides the row's.
--   2. prefs.channels, when given, is the client's ordered list of allowed
--      channels: the chain becomes the channels of that list that the matrix
--      row also has, in the client's order, and nothing else. (A client who
--      lists whatsapp first gets whatsapp first, but never a channel the
--      matrix does not use for this message type: the templates and
--      attachments are written for the matrix's channels.) nil means every
--      channel; an empty list means none (the contract: "nil: all").
--   3. request.channel, when given, goes first (the business asked for it),
--      even if the matrix does not name it; the rest of the chain follows
--      as fallbacks.
--   4. Channels strategy.refusal refuses are dropped, forced or not: ones
--      the client opted out of (prefs.opted_out[ch]), whose address is
--      suppressed (prefs.suppressed[ch], set before every attempt), has left out of a
--      stated list (prefs.channels), has no address for (email needs
--      prefs.email; sms and whatsapp need prefs.phone), or has not
--      consented to (settings.consent; prefs.consent = {given, at}).
--      The engine asks strategy.refusal again before every attempt and
--      obeys it: it is the whole consent rule.
--   5. Nothing left -> primary_channel = nil, and the reasons say why.

local experiments = require("experiments")
local matrix = require("matrix")
local settings = require("settings")
local timing = require("timing")

local strategy = {}

-- The preference field holding the address each channel sends to, and how
-- a missing one reads in a reason.
local ADDRESS = { email = "email", sms = "phone", whatsapp = "phone" }
local NO_ADDRESS = { email = "no email address", sms = "no phone number", whatsapp = "no phone number" }

local URGENCIES = { low = true, normal = true, high = true, critical = true }

-- See timing.lua: JSON null arrives as herald.null; "" means "not set".
local function given(v)
  return v ~= nil and v ~= herald.null and v ~= ""
end

local function known_types()
  local names = {}
  for name in pairs(matrix) do
    names[#names + 1] = name
  end
  table.sort(names)
  return table.concat(names, ", ")
end

-- Whether the list (a JSON array) names ch.
local function lists(list, ch)
  for _, v in ipairs(list) do
    if v == ch then
      return true
    end
  end
  return false
end

-- opted_out is a set ({sms = true}); a list ({"sms"}) is accepted too, as a
-- JSON array is the natural way to write one by hand.
local function opted_out(prefs, ch)
  local set = prefs.opted_out
  return type(set) == "table" and (set[ch] == true or lists(set, ch))
end

-- prefs.consent = {given = true|false, at = "RFC 3339"|nil}: "given", a
-- "refused" no (false with the time it was said: a withdrawal or a recorded
-- refusal), or "unstated" (never asked; no consent object at all).
local function consent_state(prefs)
  local c = prefs.consent
  if type(c) ~= "table" then
    return "unstated"
  end
  if c.given == true then
    return "given"
  end
  if c.given == false and given(c.at) then
    return "refused"
  end
  return "unstated"
end

-- prefs.channels, when the client stated a list: the channels they allow.
-- No stated list: every channel (an empty one allows none).
local function allowed(prefs, ch)
  return type(prefs.channels) ~= "table" or lists(prefs.channels, ch)
end

--- Why channel ch may not carry a message to this client, or nil when it
-- may: opted out, not among the client's allowed channels, no address for
-- it, or no consent as settings.consent asks. This is the whole rule:
-- strategy.decide uses it for the chain, and the engine asks it again before
-- every attempt and obeys, so a change of mind after acceptance is honoured
-- and an operator's edit here is the engine's behaviour.
-- @param ch string  "email", "sms" or "whatsapp"
-- @param prefs table|nil  as for strategy.decide
-- @return string|nil  the reason, e.g. "client opted out"; nil: usable
function strategy.refusal(ch, prefs)
  prefs = type(prefs) == "table" and prefs or {}
  if not ADDRESS[ch] then
    return "unknown channel"
  end
  if opted_out(prefs, ch) then
    return "client opted out"
  end
  -- prefs.suppressed = {email = "bounce", ...}: the address is on the
  -- suppression list (the engine reads it before every attempt)
  if type(prefs.suppressed) == "table" and prefs.suppressed[ch] then
    return "address suppressed (" .. tostring(prefs.suppressed[ch]) .. ")"
  end
  if not allowed(prefs, ch) then
    return "not among the client's allowed channels"
  end
  if not given(prefs[ADDRESS[ch]]) then
    return NO_ADDRESS[ch]
  end
  local state = consent_state(prefs)
  local rules = settings.consent or {}
  if state == "refused" and rules.withdrawal_stops_all ~= false then
    return "the client withdrew consent (" .. tostring(prefs.consent.at) .. ")"
  end
  if state ~= "given" and rules.required and rules.required[ch] then
    return "no consent: " .. ch .. " needs the client's opt-in"
  end
  return nil
end

local function with_note(row, ch)
  local note = row.notes and row.notes[ch]
  return note and (ch .. " (" .. note .. ")") or ch
end

local function list(chain)
  return #chain > 0 and table.concat(chain, ", ") or "none"
end

-- The matrix row of request.message_type and the message's urgency (the
-- request's, else the row's); errors name the calling function (level 3:
-- the script that called decide or when).
local function urgency_of(request, fn)
  local mt = request.message_type
  local row = matrix[mt]
  if not row then
    error(string.format("strategy.%s: unknown message_type '%s' (matrix.lua knows: %s)", fn,
      tostring(mt), known_types()), 3)
  end
  local urgency = row.urgency
  if given(request.urgency) then
    if not URGENCIES[request.urgency] then
      error(string.format("strategy.%s: unknown urgency '%s' (expected low, normal, high or critical)",
        fn, tostring(request.urgency)), 3)
    end
    urgency = request.urgency
  end
  return row, urgency
end

--- Decide channel chain, send time, priority and batching for one message.
-- @param request table  {message_type, urgency?, plan_id, client_id, channel?, send_at?, context}
-- @param prefs table|nil  {timezone?, locale?, email?, phone?, channels? {ch...},
--   opted_out? {[ch] = true}, quiet_hours? {start, ["end"]}, digest_time?}
-- @param now number  Unix seconds
-- @return table  {primary_channel = ch|nil, fallback_channels = {ch...}, send_at = Unix seconds,
--   priority = number, batch = bool, urgency = string, timezone = string, reasons = {string...}}
function strategy.decide(request, prefs, now)
  if type(request) ~= "table" then
    error("strategy.decide: request must be a table", 2)
  end
  prefs = type(prefs) == "table" and prefs or {}
  now = tonumber(now) or herald.now()

  local mt = request.message_type
  local row, urgency = urgency_of(request, "decide")
  local reasons = {}

  -- 1. Urgency and the matrix chain.
  if urgency == row.urgency then
    reasons[#reasons + 1] = string.format("%s: %s urgency", mt, urgency)
  else
    reasons[#reasons + 1] = string.format("%s: %s urgency (request; the matrix says %s)",
      mt, urgency, row.urgency)
  end
  local chain = { row.primary }
  for _, ch in ipairs(row.fallbacks or {}) do
    chain[#chain + 1] = ch
  end

  -- 2. The client's allowed channels, in the client's order.
  local source = "matrix"
  if given(prefs.channels) and type(prefs.channels) == "table" then
    local in_matrix, kept, seen = {}, {}, {}
    for _, ch in ipairs(chain) do
      in_matrix[ch] = true
    end
    local wanted = {}
    for _, ch in ipairs(prefs.channels) do
      wanted[#wanted + 1] = tostring(ch)
      if in_matrix[ch] and not seen[ch] then
        kept[#kept + 1] = ch
        seen[ch] = true
      end
    end
    reasons[#reasons + 1] = string.format("client allows %s; matrix has %s → %s",
      list(wanted), list(chain), list(kept))
    chain = kept
    source = "preferences"
  end

  -- 3. A channel the request forces goes first.
  local forced = request.channel
  if given(forced) then
    if not ADDRESS[forced] then
      error(string.format("strategy.decide: unknown channel '%s' (expected email, sms or whatsapp)",
        tostring(forced)), 2)
    end
    local rest = { forced }
    for _, ch in ipairs(chain) do
      if ch ~= forced then
        rest[#rest + 1] = ch
      end
    end
    chain = rest
  else
    forced = nil
  end

  -- 4. Never a channel the client opted out of, cannot be reached on, or
  -- has not consented to.
  local usable = {}
  for _, ch in ipairs(chain) do
    local why = strategy.refusal(ch, prefs)
    if why then
      reasons[#reasons + 1] = ch .. ": " .. why
    else
      usable[#usable + 1] = ch
    end
  end

  -- 5. The result.
  local primary, fallbacks = usable[1], {}
  for i = 2, #usable do
    fallbacks[#fallbacks + 1] = usable[i]
  end
  if not primary then
    reasons[#reasons + 1] = "no usable channel: the client cannot be reached for " .. mt
  else
    local why
    if primary == forced then
      why = "forced by the request"
    elseif source == "preferences" then
      why = primary == chain[1] and "preferred" or "first usable of the client's channels"
    else
      why = primary == row.primary and "matrix primary" or "first usable fallback"
    end
    local line = with_note(row, primary) .. ": " .. why
    if #fallbacks > 0 then
      local shown = {}
      for i, ch in ipairs(fallbacks) do
        shown[i] = with_note(row, ch)
      end
      line = line .. ", then " .. table.concat(shown, ", ")
    end
    reasons[#reasons + 1] = line
    -- WhatsApp: text or template is decided before each attempt (whatsapp.choose
    -- knows when the client last wrote); say what it will hinge on.
    for _, ch in ipairs(usable) do
      if ch == "whatsapp" then
        local t = ((settings.whatsapp or {}).templates or {})[mt]
        reasons[#reasons + 1] = t and ("whatsapp: free-form text if the client wrote within "
          .. tostring((settings.whatsapp or {}).window_hours or 24) .. " h, else the approved "
          .. "template " .. t.name) or "whatsapp: free-form text only inside the client's "
          .. "24-hour window (no approved template for " .. mt .. ")"
      end
    end
  end

  -- An experiment on this message type (experiments.lua): the client's arm.
  local experiment, arm = experiments.assign(mt, request.client_id)
  if experiment then
    reasons[#reasons + 1] = ("experiment %s: variant %s"):format(experiment, arm.name)
    if primary and arm.channel and arm.channel ~= primary then
      for i, ch in ipairs(fallbacks) do
        if ch == arm.channel then
          table.remove(fallbacks, i)
          table.insert(fallbacks, 1, primary)
          primary = ch
          reasons[#reasons + 1] = ("variant %s: %s first"):format(arm.name, ch)
          break
        end
      end
    end
  end

  -- Timing: when, and whether it waits for the daily digest.
  local when = timing.when(urgency, prefs, now, request.send_at)
  for _, r in ipairs(when.reasons) do
    reasons[#reasons + 1] = r
  end
  local send_at = when.send_at
  if arm and arm.delay_minutes and arm.delay_minutes > 0 and urgency ~= "critical" then
    send_at = send_at + arm.delay_minutes * 60
    reasons[#reasons + 1] = ("variant %s: %d min later"):format(arm.name, arm.delay_minutes)
  end

  return {
    experiment = experiment,
    variant = arm and arm.name or nil,
    primary_channel = primary,
    fallback_channels = fallbacks,
    send_at = send_at,
    priority = settings.priorities[urgency],
    batch = when.batch,
    urgency = urgency,
    timezone = when.zone,
    reasons = reasons,
  }
end

--- When a message accepted earlier may go out, asked again just before each attempt
-- (the client may have moved, or changed their quiet hours, since acceptance): the
-- send time strategy.decide would give now for a request without a client_id (so no
-- experiment's delay), without building the channel chain. The engine holds the
-- message back when this is more than a minute away. A decide that computes its
-- send time differently must do the same here.
-- @param request table  {message_type, urgency?, send_at?}
-- @param prefs table|nil  as for strategy.decide
-- @param now number  Unix seconds
-- @return table  {send_at = Unix seconds, urgency = string, reasons = {string...}}
function strategy.when(request, prefs, now)
  if type(request) ~= "table" then
    error("strategy.when: request must be a table", 2)
  end
  prefs = type(prefs) == "table" and prefs or {}
  now = tonumber(now) or herald.now()
  local _, urgency = urgency_of(request, "when")
  local w = timing.when(urgency, prefs, now, request.send_at)
  return { send_at = w.send_at, urgency = urgency, reasons = w.reasons }
end

--- The reasons behind a decision in plain words, joined by "; ".
-- @param decision table  a result of strategy.decide ({reasons = {string...}, ...})
-- @return string  e.g. "email: preferred; 21:03 local is in quiet hours 21:00–08:00 → sent 08:00"
function strategy.explain(decision)
  if type(decision) ~= "table" then
    error("strategy.explain: decision must be a table", 2)
  end
  local reasons = decision.reasons
  if type(reasons) ~= "table" or #reasons == 0 then
    return "no reasons recorded"
  end
  local parts = {}
  for i, r in ipairs(reasons) do
    parts[i] = tostring(r)
  end
  return table.concat(parts, "; ")
end

return strategy
