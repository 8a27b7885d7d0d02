-- What to do after a failed attempt: retry the same channel later, move on
-- to the next fallback channel, or give up. Contract: docs/scripting.md.
--
-- The schedule and jitter live in settings.lua (settings.retry); the table
-- below says which categories wait on the schedule. When the engine gets
-- "next_channel" and no channel is left, the communication fails and an
-- alert is raised: that is the engine's job, not this script's.

local settings = require("settings")

local retry = {}

-- How each category from classify.lua is handled:
--   "schedule"    retry after settings.retry.schedule[attempt] (± jitter),
--                 then the next channel once the schedule is used up
--   "retry_after" like "schedule", but never sooner than the provider's
--                 retry_after
--   "next"        no retry on this channel: the same send would fail again
local HANDLING = {
  transient = "schedule",    -- a timeout or a busy server may work next time
  auth_failure = "schedule", -- often a credential being rotated; alerting is the engine's
  rate_limit = "retry_after",
  permanent = "next",
  invalid = "next",          -- a bad address on this channel; another may work
}

local function scale()
  local s = tonumber(herald.config and herald.config.retry_scale)
  if not s or s < 0 then
    return 1
  end
  return s
end

-- schedule[attempt] spread by ±jitter with herald.random() (uniform).
local function jittered(base)
  local j = tonumber(settings.retry.jitter) or 0
  return base * (1 + j * (2 * herald.random() - 1))
end

local function action(name, reason, delay)
  return { action = name, reason = reason, delay = delay }
end

--- What to do after a failed attempt on one channel.
-- @param category string  from classify: "transient" | "permanent" | "rate_limit" | "auth_failure" | "invalid"
-- @param attempt number  attempts this channel has had (1 after the first failure)
-- @param result table|nil  the classification ({retry_after?, opted_out?, reason?, ...})
-- @return table  {action = "retry", delay = seconds (the schedule already × herald.config.retry_scale;
--                 a provider's retry_after is never scaled), reason}
--   | {action = "next_channel", reason} | {action = "give_up", reason}
function retry.policy(category, attempt, result)
  result = type(result) == "table" and result or {}
  attempt = math.max(1, math.floor(tonumber(attempt) or 1))

  -- An opted-out recipient is opted out of this channel only: another
  -- channel may still reach them, and retrying this one never will.
  if result.opted_out == true then
    return action("next_channel", "recipient opted out of this channel: trying the next channel")
  end

  -- WhatsApp's window was closed (Meta 131047): the engine recorded it, and
  -- the next attempt sends the approved template instead of the text
  -- (whatsapp.choose). At once, and counted: a template refused the same way
  -- runs the schedule out and moves on.
  if result.window_closed == true and settings.retry.schedule[attempt] then
    return action("retry", "the 24-hour window is closed: sending the approved template", 0)
  end

  local how = HANDLING[category]
  if not how then
    herald.log("error", "retry.policy: unknown category, giving up", { category = tostring(category) })
    return action("give_up", string.format("unknown category '%s': giving up", tostring(category)))
  end
  if how == "next" then
    return action("next_channel", category .. ": retrying would fail again, trying the next channel")
  end

  local schedule = settings.retry.schedule
  local base = schedule[attempt]
  if not base then
    return action("next_channel", string.format("%s: %d attempts, retries used up, trying the next channel",
      category, attempt))
  end

  -- Our own schedule scales (tests run it in milliseconds); the provider's
  -- Retry-After does not: it is the provider's limit, not our policy.
  local delay = jittered(base) * scale()
  local reason = string.format("%s: retry %d of %d after %ds (±%d%%)", category, attempt, #schedule,
    base, math.floor((tonumber(settings.retry.jitter) or 0) * 100 + 0.5))
  if how == "retry_after" then
    local after = tonumber(result.retry_after)
    if after and after > delay then
      delay = after
      reason = string.format("%s: retry %d of %d after the provider's retry-after %ds", category,
        attempt, #schedule, math.ceil(after))
    end
  end
  return action("retry", reason, delay)
end

--- How long a message sent on channel may go without a delivery receipt
-- before the next channel of its chain is tried (settings.no_receipt), or
-- nil for no such timer. The engine arms the timer when the send is
-- recorded; a receipt (delivered, read) or a failure receipt first disarms
-- it, and a receipt arriving after the fallback never causes a third message.
-- @param message_type string
-- @param urgency string  low, normal, high, critical
-- @param channel string  the channel the message was sent on
-- @return number|nil  seconds. Not scaled by herald.config.retry_scale: it
--   waits for the provider's world (a receipt takes the time it takes), as a
--   provider's Retry-After is not scaled either.
function retry.no_receipt(message_type, urgency, channel)
  local rules = settings.no_receipt or {}
  local by_type = rules.by_type and rules.by_type[message_type]
  local row = (by_type and by_type[channel]) or rules[channel]
  local after = type(row) == "table" and tonumber(row[urgency]) or nil
  if not after or after <= 0 then
    return nil
  end
  return after
end

--- An operations alert (the failure alert's POST or email) could not be
-- delivered: try again later, or give up. Alerts are durable jobs; this says
-- how patient the engine is with the operations endpoint.
-- @param attempt number  failed deliveries so far (1 after the first)
-- @param result table  what the transport saw ({ok, kind, http_status?, text, ...})
-- @return table  {action = "retry", delay = seconds (× herald.config.retry_scale), reason}
--   | {action = "give_up", reason}
function retry.alert(attempt, result)
  attempt = math.max(1, math.floor(tonumber(attempt) or 1))
  local r = settings.retry
  local limit = tonumber(r.alert_give_up_after) or 50
  if attempt >= limit then
    return action("give_up", string.format("alert not delivered after %d attempts: giving up", attempt))
  end
  local schedule = r.alert_schedule or { 60 }
  local base = schedule[math.min(attempt, #schedule)]
  local what = type(result) == "table" and tostring(result.text or "") or ""
  return action("retry", string.format("alert attempt %d failed (%s): again in %ds", attempt, what, base),
    jittered(base) * scale())
end

return retry
