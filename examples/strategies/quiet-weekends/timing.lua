-- Quiet weekends: nothing reaches a client on their Saturday or Sunday except
-- a critical message (an error with their plan). A high-urgency message and
-- the daily digest that would land on a weekend wait for Monday's opening
-- (settings.business_hours.open, in the client's time zone); normal-urgency
-- messages already wait for a working day (settings.working_days).
--
-- This module wraps the shipped timing (timing_base.lua is a link to
-- scripts/timing.lua) instead of copying it: every other rule (quiet hours,
-- business hours, digests, DST) stays the shipped one, and it is asked again
-- with Monday's opening as the earliest time, so quiet hours still apply.

local base = require("timing_base")
local settings = require("settings")

local timing = setmetatable({}, { __index = base })

local SATURDAY, SUNDAY = 6, 7

local function clock(text)
  local h, m = tostring(text):match("^(%d%d):(%d%d)$")
  return tonumber(h), tonumber(m)
end

-- The instant of the next Monday's opening after local time lt in zone.
local function monday_opening(zone, lt)
  local days = 8 - lt.wday -- Saturday: 2, Sunday: 1
  -- from local noon, so a DST change that night cannot move the date
  local noon = herald.from_local(zone, { year = lt.year, month = lt.month, day = lt.day,
    hour = 12, min = 0, sec = 0 })
  local mon = herald.to_local(noon + days * 86400, zone)
  local h, m = clock(settings.business_hours.open)
  return herald.from_local(zone, { year = mon.year, month = mon.month, day = mon.day,
    hour = h, min = m, sec = 0 })
end

--- Same contract as scripts/timing.lua's timing.when.
function timing.when(urgency, prefs, now, not_before)
  local w = base.when(urgency, prefs, now, not_before)
  if urgency == "critical" then
    return w
  end
  local lt = herald.to_local(w.send_at, w.zone)
  if lt.wday ~= SATURDAY and lt.wday ~= SUNDAY then
    return w
  end
  local monday = monday_opening(w.zone, lt)
  local again = base.when(urgency, prefs, now, monday)
  local reasons = { string.format("quiet weekends: %s falls on a %s → not before Monday %s",
    urgency, lt.wday == SATURDAY and "Saturday" or "Sunday", settings.business_hours.open) }
  for _, r in ipairs(again.reasons) do
    reasons[#reasons + 1] = r
  end
  again.reasons = reasons
  return again
end

assert(clock(settings.business_hours.open), "settings.business_hours.open must be \"HH:MM\"")

return timing
