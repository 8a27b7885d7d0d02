-- limits.lua - provider capacity (issue 13 item 3), decided in Lua.
--
--   limits.buckets(channel, sender, message_type, urgency)
--     -> { {key, rate, per, burst, slow}, ... }   the buckets a send draws from
--
-- Providers enforce rates: a Twilio long code about 1 message a second, a
-- WhatsApp number 80, an SMTP relay its quota. settings.limits.buckets names
-- buckets "<channel>:<sender>" (the sender: the SMS From number, the
-- WhatsApp phone number id, "relay" for the SMTP server) or "<channel>" (every
-- sender of the channel); a send draws from each that exists. The engine
-- checks a batch's buckets in one round trip to Redis (core/limit: GCRA,
-- shared by every process; in-process at rate / processes while Redis is
-- down). A send a bucket refuses is not an error: its job waits exactly the
-- bucket's retry-after, with no attempt recorded and no fallback, and the
-- claim's priority order (critical first) decides who goes next.
--
-- When a provider answers rate_limit anyway (its quota is lower than
-- declared, or shared with another sender), the engine slows the send's
-- buckets down in that process: the rate is multiplied by slow.factor (at
-- most once a second), never below slow.floor of the declared rate, and
-- doubles back every slow.recover_seconds without another rate_limit.
-- settings.limits.slow_down sets them for every bucket, a bucket's own
-- slow_down for it; the defaults below halve, down to 1/64, back in 20 s.

local settings = require("settings")

local M = {}

local function conf() return (settings.limits or {}).buckets or {} end

local SLOW_DEFAULT = { factor = 0.5, floor = 1 / 64, recover_seconds = 20 }

local function check_slow(where, t)
  if t == nil then return end
  if type(t) ~= "table" then error(where .. ": a table {factor, floor, recover_seconds}", 0) end
  for k, v in pairs(t) do
    if k ~= "factor" and k ~= "floor" and k ~= "recover_seconds" then
      error(where .. "." .. tostring(k) .. ": not a setting (factor, floor, recover_seconds)", 0)
    end
    local ok = type(v) == "number" and v == v
    if k == "factor" then ok = ok and v > 0 and v < 1
    elseif k == "floor" then ok = ok and v > 0 and v <= 1
    else ok = ok and v > 0 and v < 1e7 end
    if not ok then
      error(where .. "." .. k .. ": " .. (k == "factor" and "a share above 0 and below 1"
        or k == "floor" and "a share above 0, at most 1" or "seconds, above 0"), 0)
    end
  end
end

check_slow("settings.limits.slow_down", (settings.limits or {}).slow_down)

-- The slow-down of bucket b: its own, then settings.limits.slow_down, then the default.
local function slow_of(b)
  local all, own = (settings.limits or {}).slow_down or {}, b.slow_down or {}
  local out = {}
  for k, v in pairs(SLOW_DEFAULT) do
    if own[k] ~= nil then out[k] = own[k] elseif all[k] ~= nil then out[k] = all[k] else out[k] = v end
  end
  return out
end

-- Checked at load: a mistyped bucket fails the reload with its name.
for key, b in pairs(conf()) do
  local where = "settings.limits.buckets[\"" .. tostring(key) .. "\"]"
  if type(key) ~= "string" or not key:match("^[a-z]+[:%w%+%._%-]*$") or #key > 150 then
    error(where .. ": a name like \"sms:+15550001111\", \"whatsapp:1055500\" or \"email\"", 0)
  end
  if type(b) ~= "table" or type(b.rate) ~= "number" or b.rate <= 0 then
    error(where .. ".rate: sends per `per` seconds, above 0", 0)
  end
  if b.per ~= nil and (type(b.per) ~= "number" or b.per <= 0) then
    error(where .. ".per: seconds, above 0", 0)
  end
  if b.burst ~= nil and (math.type(b.burst) ~= "integer" or b.burst < 1) then
    error(where .. ".burst: a whole number, at least 1", 0)
  end
  check_slow(where .. ".slow_down", b.slow_down)
end

-- The caps a client may receive on a channel (settings.caps), e.g.
-- caps = { sms = { per_day = 3 }, email = { per_day = 10 }, exempt = { critical = true } }
local function check_caps()
  for ch, c in pairs((settings.caps or {})) do
    if ch ~= "exempt" then
      local where = "settings.caps." .. tostring(ch)
      if ch ~= "email" and ch ~= "sms" and ch ~= "whatsapp" then
        error(where .. ": a channel (email, sms, whatsapp) or exempt", 0)
      end
      if type(c) ~= "table" or math.type(c.per_day) ~= "integer" or c.per_day < 1
          or c.per_day > 1000000 then
        error(where .. ".per_day: a whole number from 1 to 1000000", 0)
      end
      if c.over ~= nil and c.over ~= "wait" and c.over ~= "digest" then
        error(where .. ".over: \"wait\" (the message waits for its slot) or \"digest\" "
          .. "(it joins the client's digest)", 0)
      end
    end
  end
end
check_caps()

-- limits.cap(channel, message_type, urgency) -> {count, per, over} | nil: how
-- many messages a client may receive on the channel per `per` seconds; nil:
-- no cap (none set, or the urgency is exempt). The engine counts in Redis,
-- per client and channel (a rolling day: `count` at once, then one every
-- per / count seconds). A message over it, as `over` says: "wait" for its
-- slot, or "digest": join the client's next digest (or become one at the
-- slot), so what is over the cap goes out together; either way with the
-- reason recorded as a `deferred` event.
function M.cap(channel, message_type, urgency)
  local caps = settings.caps or {}
  if (caps.exempt or {})[urgency] then return nil end
  local c = caps[channel]
  if type(c) ~= "table" then return nil end
  return { count = c.per_day, per = 86400, over = c.over or "wait" }
end

-- A bucket's burst when it declares none: the sends of SLACK_SECONDS at its
-- rate, at least 2. A send the bucket refused comes back some milliseconds
-- after its slot opens (its job is due again, claimed, rendered, checked);
-- with a burst of 1 every such delay is lost for good, and a 5/s bucket
-- delivered 4.1-4.8/s. One slot of slack lets the next send make the delay
-- up, so the rate over time is the declared one. burst = 1 turns it off
-- (sends never closer than 1/rate, the rate a little lower).
local SLACK_SECONDS = 0.2
local function default_burst(b)
  return math.max(2, math.ceil(b.rate / (b.per or 1) * SLACK_SECONDS))
end

function M.buckets(channel, sender, message_type, urgency)
  local out = {}
  for _, key in ipairs({ channel .. ":" .. tostring(sender or ""), channel }) do
    local b = conf()[key]
    if b then
      out[#out + 1] = { key = key, rate = b.rate, per = b.per or 1,
        burst = b.burst or default_burst(b), slow = slow_of(b) }
    end
  end
  return out
end

return M
