-- When a message may go out: urgency, business hours, quiet hours, the daily
-- digest and the client's time zone. Used by strategy.lua.
--
-- Every local <-> UTC conversion goes through herald.to_local and
-- herald.from_local (the system's zoneinfo), never os.date/os.time, so DST
-- change days come out right. Calendar arithmetic ("the next day") is done on
-- dates, not by adding 86400 seconds, for the same reason.
--
-- The rules (values in settings.lua):
--   critical  at once; quiet hours do not apply
--   high      at once, unless inside quiet hours: then when they end
--   normal    at once inside business hours on a working day and outside
--             quiet hours; otherwise the next opening, pushed past quiet hours
--   low       batched: the next daily digest time, pushed past quiet hours
-- A request's send_at is a lower bound: the rules start from it.

local settings = require("settings")

local timing = {}

local DAY_NAMES = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" }

-- Pushes (to an opening, past quiet hours) a normal message may take. Four
-- suffice when quiet hours leave any business time free; more means a bug or
-- a DST oddity, and the fallback below takes over.
local MAX_PUSHES = 8

-- A value from the request or preferences counts only when it is really
-- there: JSON null arrives as herald.null, and "" means "not set" too.
local function given(v)
  return v ~= nil and v ~= herald.null and v ~= ""
end

-- "HH:MM" (24-hour clock, "24:00" allowed) -> seconds since local midnight,
-- or nil when the text is not a time of day.
local function clock(text)
  if type(text) ~= "string" then
    return nil
  end
  local h, m = text:match("^(%d%d?):(%d%d)$")
  h, m = tonumber(h), tonumber(m)
  if not h or m > 59 or h > 24 or (h == 24 and m > 0) then
    return nil
  end
  return h * 3600 + m * 60
end

local function hhmm(secs)
  return string.format("%02d:%02d", secs // 3600, secs % 3600 // 60)
end

-- Seconds since local midnight of a herald.to_local table.
local function sod(lt)
  return lt.hour * 3600 + lt.min * 60 + lt.sec
end

-- Days since 1970-01-01 for a proleptic Gregorian date, and back
-- (H. Hinnant's algorithms; // is floor division, so negatives work).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return (m <= 2 and yoe + era * 400 + 1 or yoe + era * 400), m, d
end

-- The instant at local clock `secs` on the local date of `lt` plus `days`.
-- A clock time skipped by DST moves forward by the gap (herald.from_local).
local function at(zone, lt, days, secs)
  if secs >= 86400 then -- "24:00" is midnight of the next day
    days, secs = days + secs // 86400, secs % 86400
  end
  local y, m, d = lt.year, lt.month, lt.day
  if days ~= 0 then
    y, m, d = civil_from_days(days_from_civil(y, m, d) + days)
  end
  return herald.from_local(zone, {
    year = y, month = m, day = d,
    hour = secs // 3600, min = secs % 3600 // 60, sec = secs % 60,
  })
end

-- How an instant reads in a reason: "08:00" when it is the next time the
-- clock shows that (under a day after `from`), "Mon 09:00" within the week,
-- else the full date.
local function show(zone, t, from)
  local lt = herald.to_local(t, zone)
  local text = string.format("%02d:%02d", lt.hour, lt.min)
  if t - from < 86400 then
    return text
  elseif t - from < 7 * 86400 then
    return DAY_NAMES[lt.wday] .. " " .. text
  end
  return string.format("%04d-%02d-%02d %s", lt.year, lt.month, lt.day, text)
end

local function sent(zone, t, from, now)
  if t <= now then
    return "sent now"
  end
  return "sent " .. show(zone, t, from)
end

--- The client's time zone: prefs.timezone when the system knows it, else
--- settings.default_timezone (else "UTC"). A zone Herald does not know is
--- logged at warn (stored data to fix); a missing one is not: a client known
--- only by a request's inline recipient has none, and the reason says so.
-- @param prefs table|nil  client preferences ({timezone?})
-- @return string zone, string|nil reason (set when the default was used)
function timing.zone(prefs)
  local default = settings.default_timezone
  if type(default) ~= "string" or not herald.valid_zone(default) then
    herald.log("warn", "settings.default_timezone is not a known time zone, using UTC",
      { zone = tostring(default) })
    default = "UTC"
  end
  local want = prefs and prefs.timezone
  if not given(want) then
    return default, "no time zone given, using " .. default
  end
  if type(want) == "string" and herald.valid_zone(want) then
    return want, nil
  end
  herald.log("warn", string.format("unknown time zone '%s', using %s", tostring(want), default),
    { zone = tostring(want), default = default })
  return default, string.format("unknown time zone '%s', using %s", tostring(want), default)
end

-- Quiet hours from preferences as {start, stop, label} in seconds since
-- midnight, or nil for none (absent, start == end, or unreadable: logged).
local function quiet_window(prefs, reasons)
  local q = prefs.quiet_hours
  if not given(q) or type(q) ~= "table" then
    return nil
  end
  local s, e = clock(q.start), clock(q["end"])
  if not s or not e then
    herald.log("warn", "ignoring unreadable quiet hours", {
      start = tostring(q.start), ["end"] = tostring(q["end"]),
    })
    reasons[#reasons + 1] = string.format("quiet hours %s–%s unreadable, ignored",
      tostring(q.start), tostring(q["end"]))
    return nil
  end
  s, e = s % 86400, e % 86400
  if s == e then -- an empty window, not a whole day: "none"
    return nil
  end
  return { start = s, stop = e, label = hhmm(s) .. "–" .. hhmm(e) }
end

local function in_quiet(w, secs)
  if w.start < w.stop then -- 13:00–14:00
    return secs >= w.start and secs < w.stop
  end
  return secs >= w.start or secs < w.stop -- wraps midnight: 21:00–08:00
end

-- The instant quiet hours end, seen from inside them at t (local lt).
local function quiet_end(zone, w, t, lt)
  local s = sod(lt)
  local r = at(zone, lt, s < w.stop and 0 or 1, w.stop)
  if r <= t then
    -- Only in a repeated hour after a DST fall-back, where from_local takes
    -- the earlier instant: count the clock difference from t instead.
    r = t + (w.stop - s) % 86400
  end
  return r
end

local function business_hours()
  local bh = settings.business_hours or {}
  local open, close = clock(bh.open), clock(bh.close)
  if not open or not close or open >= close then
    error(string.format("settings.business_hours must be {open = \"HH:MM\", close = \"HH:MM\"} "
      .. "with open before close, not %s–%s", tostring(bh.open), tostring(bh.close)), 0)
  end
  return open, close, hhmm(open) .. "–" .. hhmm(close)
end

-- The next business opening at or after local lt: today when it is a
-- working day before opening time, else the next working day.
local function next_opening(zone, lt, open)
  for days = 0, 7 do
    local wday = (lt.wday - 1 + days) % 7 + 1
    if settings.working_days[wday] and (days > 0 or sod(lt) < open) then
      return at(zone, lt, days, open)
    end
  end
  error("settings.working_days names no working day (1 = Monday ... 7 = Sunday)", 0)
end

-- True when quiet hours leave no business second free on any day.
local function quiet_covers(w, open, close)
  if w.start < w.stop then
    return w.start <= open and w.stop >= close
  end
  return w.start <= open or w.stop >= close
end

local rules = {}

function rules.critical(zone, quiet, t0, now, reasons)
  local lt = herald.to_local(t0, zone)
  if quiet and in_quiet(quiet, sod(lt)) then
    reasons[#reasons + 1] = string.format("%s local is in quiet hours %s but critical ignores them → %s",
      hhmm(sod(lt)), quiet.label, sent(zone, t0, t0, now))
  else
    reasons[#reasons + 1] = "critical → " .. sent(zone, t0, t0, now)
  end
  return t0
end

function rules.high(zone, quiet, t0, now, reasons)
  local lt = herald.to_local(t0, zone)
  if quiet and in_quiet(quiet, sod(lt)) then
    local t = quiet_end(zone, quiet, t0, lt)
    reasons[#reasons + 1] = string.format("%s local is in quiet hours %s → %s",
      hhmm(sod(lt)), quiet.label, sent(zone, t, t0, now))
    return t
  end
  reasons[#reasons + 1] = string.format("high: due within %d min → %s",
    (settings.high_window or 3600) // 60, sent(zone, t0, t0, now))
  return t0
end

function rules.normal(zone, quiet, t0, now, reasons)
  local open, close, label = business_hours()
  if quiet and quiet_covers(quiet, open, close) then
    -- The client's quiet hours beat our business hours: go when they end
    -- after the next opening, even if that is after closing time.
    local lt = herald.to_local(t0, zone)
    local t = t0
    if not settings.working_days[lt.wday] or sod(lt) < open or sod(lt) >= close then
      t = next_opening(zone, lt, open)
      lt = herald.to_local(t, zone)
    end
    if in_quiet(quiet, sod(lt)) then
      t = quiet_end(zone, quiet, t, lt)
    end
    reasons[#reasons + 1] = string.format("quiet hours %s cover business hours %s → %s",
      quiet.label, label, sent(zone, t, t0, now))
    return t
  end
  local t = t0
  for _ = 1, MAX_PUSHES do
    local lt = herald.to_local(t, zone)
    local s = sod(lt)
    local why, nxt
    if not settings.working_days[lt.wday] then
      why = string.format("%s %s local is not a working day", DAY_NAMES[lt.wday], hhmm(s))
      nxt = next_opening(zone, lt, open)
    elseif s < open then
      why = string.format("%s local is before business hours %s", hhmm(s), label)
      nxt = next_opening(zone, lt, open)
    elseif s >= close then
      why = string.format("%s %s local is after business hours %s", DAY_NAMES[lt.wday], hhmm(s), label)
      nxt = next_opening(zone, lt, open)
    elseif quiet and in_quiet(quiet, s) then
      why = string.format("%s local is in quiet hours %s", hhmm(s), quiet.label)
      nxt = quiet_end(zone, quiet, t, lt)
    else
      if t == t0 then
        reasons[#reasons + 1] = string.format("%s local is inside business hours %s → %s",
          hhmm(s), label, sent(zone, t, t, now))
      end
      return t
    end
    reasons[#reasons + 1] = why .. " → " .. sent(zone, nxt, t, now)
    t = nxt
  end
  error("timing: no send time found for a normal message after " .. MAX_PUSHES .. " steps", 0)
end

function rules.low(zone, quiet, t0, now, reasons, prefs)
  local digest = settings.digest_time
  if given(prefs.digest_time) then
    if clock(prefs.digest_time) then
      digest = prefs.digest_time
    else
      herald.log("warn", "ignoring unreadable digest time", { digest_time = tostring(prefs.digest_time) })
      reasons[#reasons + 1] = string.format("digest time '%s' unreadable, using %s",
        tostring(prefs.digest_time), tostring(digest))
    end
  end
  local d = clock(digest)
  if not d then
    error(string.format("settings.digest_time must be \"HH:MM\", not %s", tostring(digest)), 0)
  end
  local lt = herald.to_local(t0, zone)
  local t = at(zone, lt, 0, d)
  if t < t0 then -- today's digest has gone: tomorrow's
    t = at(zone, lt, 1, d)
  end
  reasons[#reasons + 1] = string.format("low: batched into the daily digest at %s local → %s",
    hhmm(d), sent(zone, t, t0, now))
  local dl = herald.to_local(t, zone)
  if quiet and in_quiet(quiet, sod(dl)) then
    local later = quiet_end(zone, quiet, t, dl)
    reasons[#reasons + 1] = string.format("digest time %s local is in quiet hours %s → %s",
      hhmm(sod(dl)), quiet.label, sent(zone, later, t, now))
    t = later
  end
  return t
end

--- When a message may go out.
-- @param urgency string  "low" | "normal" | "high" | "critical"
-- @param prefs table|nil  {timezone?, quiet_hours? {start, ["end"]}, digest_time?}
-- @param now number  Unix seconds
-- @param not_before number|nil  Unix seconds, the request's send_at (a lower bound)
-- @return table  {send_at = Unix seconds, batch = bool, zone = string, reasons = {string...}}
function timing.when(urgency, prefs, now, not_before)
  local rule = rules[urgency]
  if not rule then
    error(string.format("timing: unknown urgency '%s' (expected low, normal, high or critical)",
      tostring(urgency)), 2)
  end
  prefs = type(prefs) == "table" and prefs or {}
  local reasons = {}
  local zone, zone_reason = timing.zone(prefs)
  if zone_reason then
    reasons[#reasons + 1] = zone_reason
  end
  local t0 = now
  if given(not_before) and tonumber(not_before) and tonumber(not_before) > now then
    t0 = tonumber(not_before)
    reasons[#reasons + 1] = "requested no earlier than " .. show(zone, t0, now) .. " local"
  end
  local quiet = quiet_window(prefs, reasons)
  local t = rule(zone, quiet, t0, now, reasons, prefs)
  return {
    send_at = math.max(t, t0), -- never before the lower bound, even by a fraction
    batch = urgency == "low",
    zone = zone,
    reasons = reasons,
  }
end

-- Checked when the module loads, so a mistyped setting fails the reload
-- (the previous scripts keep running) instead of failing every decision.
business_hours()
assert(clock(settings.digest_time), "settings.digest_time must be \"HH:MM\"")
assert(next(settings.working_days or {}) ~= nil, "settings.working_days names no working day")

return timing
