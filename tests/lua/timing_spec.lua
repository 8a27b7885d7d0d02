-- busted specs for scripts/timing.lua: when a message may go out.
-- Instants are written as UTC calendar times computed here, independently of
-- herald.from_local, so a wrong zone conversion shows up as a wrong number.

local timing = require("timing")
local settings = require("settings")

-- Unix seconds for a UTC calendar time (proleptic Gregorian).
local function utc(y, m, d, h, mi)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400 + h * 3600 + (mi or 0) * 60
end

local function has(text, part)
  return type(text) == "string" and text:find(part, 1, true) ~= nil
end

local function joined(w)
  return table.concat(w.reasons, "; ")
end

-- Paris in January is UTC+1. 2026-01-14 is a Wednesday.
local PARIS = "Europe/Paris"
local function paris_winter(d, h, mi)
  return utc(2026, 1, d, h - 1, mi)
end

local function quiet(s, e)
  return { start = s, ["end"] = e }
end

describe("timing.when", function()
  describe("time zones east and west of UTC", function()
    it("Asia/Tokyo: 08:30 local is before opening, sent 09:00 JST (00:00 UTC)", function()
      local now = utc(2026, 1, 14, 23, 30) -- Thu 15th 08:30 JST
      local w = timing.when("normal", { timezone = "Asia/Tokyo" }, now)
      assert.are.equal(utc(2026, 1, 15, 0, 0), w.send_at)
      assert.are.equal("Asia/Tokyo", w.zone)
      assert.is_false(w.batch)
    end)

    it("America/Los_Angeles: 09:30 PST is inside business hours, sent now", function()
      local now = utc(2026, 1, 14, 17, 30)
      local w = timing.when("normal", { timezone = "America/Los_Angeles" }, now)
      assert.are.equal(now, w.send_at)
      assert.is_true(has(joined(w), "09:30 local is inside business hours 09:00–18:00 → sent now"))
    end)

    it("America/Los_Angeles: 18:30 PST Wednesday is sent Thursday 09:00 PST (17:00 UTC)", function()
      local now = utc(2026, 1, 15, 2, 30) -- still Wednesday in California
      local w = timing.when("normal", { timezone = "America/Los_Angeles" }, now)
      assert.are.equal(utc(2026, 1, 15, 17, 0), w.send_at)
    end)

    it("the same UTC instant is sent now in one zone and held in another", function()
      local now = utc(2026, 1, 14, 12, 0) -- 13:00 Paris, 21:00 Tokyo
      assert.are.equal(now, timing.when("normal", { timezone = PARIS }, now).send_at)
      assert.are.equal(utc(2026, 1, 15, 0, 0), timing.when("normal", { timezone = "Asia/Tokyo" }, now).send_at)
    end)
  end)

  describe("a DST change day", function()
    local saved
    before_each(function()
      saved = settings.working_days
    end)
    after_each(function()
      settings.working_days = saved
    end)

    -- 2026-03-29 (a Sunday): Paris goes from CET (+1) to CEST (+2) at 02:00.
    it("Europe/Paris 2026-03-29 08:30 local (Sunday) → Monday 09:00 CEST = 07:00 UTC", function()
      local now = utc(2026, 3, 29, 6, 30) -- 08:30 CEST
      local w = timing.when("normal", { timezone = PARIS }, now)
      assert.are.equal(utc(2026, 3, 30, 7, 0), w.send_at)
      assert.is_true(has(joined(w), "Sun 08:30 local is not a working day → sent Mon 09:00"))
    end)

    it("Europe/Paris 2026-03-29 08:30 local on a working Sunday → 09:00 CEST the same day = 07:00 UTC", function()
      settings.working_days = { [1] = true, [2] = true, [3] = true, [4] = true, [5] = true, [7] = true }
      local w = timing.when("normal", { timezone = PARIS }, utc(2026, 3, 29, 6, 30))
      assert.are.equal(utc(2026, 3, 29, 7, 0), w.send_at)
      assert.is_true(has(joined(w), "08:30 local is before business hours 09:00–18:00 → sent 09:00"))
    end)

    it("Europe/Paris: quiet hours 21:00–08:00 across the change end at 08:00 CEST (06:00 UTC), 8 h later", function()
      local now = utc(2026, 3, 28, 22, 0) -- Sat 23:00 CET
      local w = timing.when("high", { timezone = PARIS, quiet_hours = quiet("21:00", "08:00") }, now)
      assert.are.equal(utc(2026, 3, 29, 6, 0), w.send_at)
      assert.are.equal(8 * 3600, w.send_at - now)
    end)

    it("Europe/Paris: a digest time inside the skipped hour (02:30) moves forward by the gap", function()
      local w = timing.when("low", { timezone = PARIS, digest_time = "02:30" }, utc(2026, 3, 28, 23, 30))
      assert.are.equal(utc(2026, 3, 29, 1, 30), w.send_at) -- 03:30 CEST
    end)

    -- 2026-11-01 (a Sunday): New York goes from EDT (-4) to EST (-5) at 02:00.
    it("America/New_York 2026-11-01 08:30 local (Sunday) → Monday 09:00 EST = 14:00 UTC", function()
      local now = utc(2026, 11, 1, 13, 30) -- 08:30 EST
      local w = timing.when("normal", { timezone = "America/New_York" }, now)
      assert.are.equal(utc(2026, 11, 2, 14, 0), w.send_at)
    end)

    it("America/New_York 2026-11-01 08:30 local on a working Sunday → 09:00 EST the same day = 14:00 UTC", function()
      settings.working_days = { [1] = true, [2] = true, [3] = true, [4] = true, [5] = true, [7] = true }
      local w = timing.when("normal", { timezone = "America/New_York" }, utc(2026, 11, 1, 13, 30))
      assert.are.equal(utc(2026, 11, 1, 14, 0), w.send_at)
    end)

    it("America/New_York: the daily digest on the change day is 09:00 EST (14:00 UTC)", function()
      local now = utc(2026, 11, 1, 3, 30) -- Sat 23:30 EDT
      local w = timing.when("low", { timezone = "America/New_York" }, now)
      assert.are.equal(utc(2026, 11, 1, 14, 0), w.send_at)
    end)

    it("America/New_York: quiet hours 21:00–08:00 across the change end at 08:00 EST, 10 h later", function()
      local now = utc(2026, 11, 1, 3, 0) -- Sat 23:00 EDT
      local w = timing.when("high", { timezone = "America/New_York", quiet_hours = quiet("21:00", "08:00") }, now)
      assert.are.equal(utc(2026, 11, 1, 13, 0), w.send_at)
      assert.are.equal(10 * 3600, w.send_at - now)
    end)
  end)

  describe("quiet hours across midnight (21:00–08:00)", function()
    local prefs = { timezone = PARIS, quiet_hours = quiet("21:00", "08:00") }

    it("at 23:00 a high message waits until 08:00 the next day", function()
      local w = timing.when("high", prefs, paris_winter(14, 23, 0))
      assert.are.equal(paris_winter(15, 8, 0), w.send_at)
      assert.is_true(has(joined(w), "23:00 local is in quiet hours 21:00–08:00 → sent 08:00"))
    end)

    it("at 07:59 a high message waits one minute", function()
      local w = timing.when("high", prefs, paris_winter(15, 7, 59))
      assert.are.equal(paris_winter(15, 8, 0), w.send_at)
    end)

    it("at 08:00 quiet hours are over: sent now", function()
      local now = paris_winter(15, 8, 0)
      assert.are.equal(now, timing.when("high", prefs, now).send_at)
    end)

    it("at 20:59 quiet hours have not begun: sent now", function()
      local now = paris_winter(14, 20, 59)
      assert.are.equal(now, timing.when("high", prefs, now).send_at)
    end)

    it("a normal message at 23:00 goes at the next opening, 09:00", function()
      local w = timing.when("normal", prefs, paris_winter(14, 23, 0))
      assert.are.equal(paris_winter(15, 9, 0), w.send_at)
    end)

    it("a normal message's opening inside quiet hours (21:00–09:30) is pushed to 09:30", function()
      local w = timing.when("normal", { timezone = PARIS, quiet_hours = quiet("21:00", "09:30") },
        paris_winter(14, 23, 0))
      assert.are.equal(paris_winter(15, 9, 30), w.send_at)
      assert.is_true(has(joined(w), "09:00 local is in quiet hours 21:00–09:30 → sent 09:30"))
    end)
  end)

  describe("quiet hours within a day (13:00–14:00)", function()
    local prefs = { timezone = PARIS, quiet_hours = quiet("13:00", "14:00") }

    it("a normal message at 13:30 waits until 14:00", function()
      assert.are.equal(paris_winter(14, 14, 0), timing.when("normal", prefs, paris_winter(14, 13, 30)).send_at)
    end)

    it("a high message at 13:30 waits until 14:00", function()
      assert.are.equal(paris_winter(14, 14, 0), timing.when("high", prefs, paris_winter(14, 13, 30)).send_at)
    end)

    it("12:59 and 14:00 are outside: sent now", function()
      for _, now in ipairs({ paris_winter(14, 12, 59), paris_winter(14, 14, 0) }) do
        assert.are.equal(now, timing.when("normal", prefs, now).send_at)
      end
    end)

    it("a high message at 23:00 is not held (the window does not wrap)", function()
      local now = paris_winter(14, 23, 0)
      assert.are.equal(now, timing.when("high", prefs, now).send_at)
    end)

    it("start == end means no quiet hours", function()
      local now = paris_winter(14, 13, 30)
      local w = timing.when("high", { timezone = PARIS, quiet_hours = quiet("13:00", "13:00") }, now)
      assert.are.equal(now, w.send_at)
    end)

    it("quiet hours covering all business hours (08:00–19:00) send when they end, 19:00", function()
      local w = timing.when("normal", { timezone = PARIS, quiet_hours = quiet("08:00", "19:00") },
        paris_winter(14, 10, 0))
      assert.are.equal(paris_winter(14, 19, 0), w.send_at)
    end)
  end)

  describe("critical", function()
    it("ignores quiet hours and business hours: sent now, and says why", function()
      local now = paris_winter(17, 23, 0) -- Saturday night
      local w = timing.when("critical", { timezone = PARIS, quiet_hours = quiet("21:00", "08:00") }, now)
      assert.are.equal(now, w.send_at)
      assert.is_true(has(joined(w), "23:00 local is in quiet hours 21:00–08:00 but critical ignores them → sent now"))
    end)
  end)

  describe("high", function()
    it("goes now outside business hours and on weekends (no quiet hours)", function()
      local now = paris_winter(17, 22, 0) -- Saturday 22:00
      assert.are.equal(now, timing.when("high", { timezone = PARIS }, now).send_at)
    end)
  end)

  describe("working days and business hours", function()
    it("Saturday 10:00 → Monday 09:00", function()
      local w = timing.when("normal", { timezone = PARIS }, paris_winter(17, 10, 0))
      assert.are.equal(paris_winter(19, 9, 0), w.send_at)
      assert.is_true(has(joined(w), "Sat 10:00 local is not a working day → sent Mon 09:00"))
    end)

    it("Sunday 20:00 → Monday 09:00", function()
      assert.are.equal(paris_winter(19, 9, 0), timing.when("normal", { timezone = PARIS }, paris_winter(18, 20, 0)).send_at)
    end)

    it("Friday 18:30 → Monday 09:00", function()
      local w = timing.when("normal", { timezone = PARIS }, paris_winter(16, 18, 30))
      assert.are.equal(paris_winter(19, 9, 0), w.send_at)
      assert.is_true(has(joined(w), "Fri 18:30 local is after business hours 09:00–18:00 → sent Mon 09:00"))
    end)

    it("Friday 17:59 is still open; 18:00 is closed", function()
      local open = paris_winter(16, 17, 59)
      assert.are.equal(open, timing.when("normal", { timezone = PARIS }, open).send_at)
      assert.are.equal(paris_winter(19, 9, 0), timing.when("normal", { timezone = PARIS }, paris_winter(16, 18, 0)).send_at)
    end)

    it("09:00 sharp is open", function()
      local now = paris_winter(14, 9, 0)
      assert.are.equal(now, timing.when("normal", { timezone = PARIS }, now).send_at)
    end)
  end)

  describe("low urgency: the daily digest", function()
    it("is batched and goes at the next digest time (tomorrow 09:00 when today's has gone)", function()
      local w = timing.when("low", { timezone = PARIS }, paris_winter(14, 10, 0))
      assert.is_true(w.batch)
      assert.are.equal(paris_winter(15, 9, 0), w.send_at)
    end)

    it("goes today when the digest time is still ahead", function()
      local w = timing.when("low", { timezone = PARIS }, paris_winter(14, 7, 0))
      assert.are.equal(paris_winter(14, 9, 0), w.send_at)
    end)

    it("uses the client's digest_time", function()
      local w = timing.when("low", { timezone = PARIS, digest_time = "19:30" }, paris_winter(14, 10, 0))
      assert.are.equal(paris_winter(14, 19, 30), w.send_at)
    end)

    it("uses the settings' digest time when the client's is unreadable, and logs it", function()
      local saved, lines = herald.log, {}
      herald.log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end
      local ok, w = pcall(timing.when, "low", { timezone = PARIS, digest_time = "7pm" }, paris_winter(14, 7, 0))
      herald.log = saved
      assert.is_true(ok, w)
      assert.are.equal(paris_winter(14, 9, 0), w.send_at)
      assert.are.same({ "warn ignoring unreadable digest time" }, lines)
    end)

    it("is pushed past quiet hours", function()
      local w = timing.when("low", { timezone = PARIS, digest_time = "07:00", quiet_hours = quiet("21:00", "08:00") },
        paris_winter(14, 10, 0))
      assert.are.equal(paris_winter(15, 8, 0), w.send_at)
    end)

    it("other urgencies are not batched", function()
      for _, u in ipairs({ "normal", "high", "critical" }) do
        assert.is_false(timing.when(u, { timezone = PARIS }, paris_winter(14, 10, 0)).batch)
      end
    end)
  end)

  describe("unknown or missing time zone", function()
    local saved_log, saved_zone, lines
    before_each(function()
      saved_log, saved_zone, lines = herald.log, settings.default_timezone, {}
      herald.log = function(level, msg, fields)
        lines[#lines + 1] = { level = level, msg = msg, fields = fields }
      end
    end)
    after_each(function()
      herald.log, settings.default_timezone = saved_log, saved_zone
    end)

    it("an unknown zone falls back to the default zone (UTC) and logs a warning naming it", function()
      local now = utc(2026, 1, 14, 8, 30) -- 08:30 UTC
      local w = timing.when("normal", { timezone = "Mars/Olympus_Mons" }, now)
      assert.are.equal("UTC", w.zone)
      assert.are.equal(utc(2026, 1, 14, 9, 0), w.send_at)
      assert.are.equal(1, #lines)
      assert.are.equal("warn", lines[1].level)
      assert.is_true(has(lines[1].msg, "Mars/Olympus_Mons"))
      assert.is_true(has(joined(w), "unknown time zone 'Mars/Olympus_Mons', using UTC"))
    end)

    it("the default zone comes from settings", function()
      settings.default_timezone = "Asia/Tokyo"
      local w = timing.when("normal", { timezone = "Nowhere/Town" }, utc(2026, 1, 14, 23, 30))
      assert.are.equal("Asia/Tokyo", w.zone)
      assert.are.equal(utc(2026, 1, 15, 0, 0), w.send_at)
    end)

    it("a missing zone uses the default, said in the reasons and not logged", function()
      -- a client known only by an inline recipient has no zone: normal, and
      -- a warning per message would flood the log (two lines an email)
      local w = timing.when("normal", { timezone = herald.null }, utc(2026, 1, 14, 8, 30))
      assert.are.equal("UTC", w.zone)
      assert.are.equal(utc(2026, 1, 14, 9, 0), w.send_at)
      assert.are.equal(0, #lines)
      assert.is_true(has(joined(w), "no time zone given, using UTC"))
      timing.when("normal", nil, utc(2026, 1, 14, 8, 30))
      assert.are.equal(0, #lines)
    end)
  end)

  describe("request.send_at is a lower bound", function()
    local prefs = { timezone = PARIS }

    it("a later send_at inside business hours is kept", function()
      local w = timing.when("normal", prefs, paris_winter(14, 10, 0), paris_winter(14, 15, 0))
      assert.are.equal(paris_winter(14, 15, 0), w.send_at)
    end)

    it("a later send_at after closing moves to the next opening", function()
      local w = timing.when("normal", prefs, paris_winter(14, 10, 0), paris_winter(14, 20, 0))
      assert.are.equal(paris_winter(15, 9, 0), w.send_at)
    end)

    it("a send_at in the past changes nothing", function()
      local now = paris_winter(14, 10, 0)
      assert.are.equal(now, timing.when("normal", prefs, now, now - 3600).send_at)
    end)

    it("bounds critical messages too", function()
      local w = timing.when("critical", prefs, paris_winter(14, 10, 0), paris_winter(14, 10, 30))
      assert.are.equal(paris_winter(14, 10, 30), w.send_at)
    end)

    it("the digest after a send_at is the one following it", function()
      local w = timing.when("low", prefs, paris_winter(14, 7, 0), paris_winter(14, 9, 30))
      assert.are.equal(paris_winter(15, 9, 0), w.send_at)
    end)
  end)

  it("rejects an unknown urgency", function()
    local ok, err = pcall(timing.when, "urgent", {}, 0)
    assert.is_false(ok)
    assert.is_true(has(err, "unknown urgency 'urgent'"))
  end)
end)
