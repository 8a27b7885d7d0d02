-- Herald policy settings: data only, no logic.
--
-- An operator edits the values below; the engine reloads scripts/ on save and
-- the next decision uses them. Times of day are "HH:MM" on a 24-hour clock in
-- the client's own time zone; durations are seconds.

-- The zone used when a client has no time zone, or one Herald does not know.
-- The engine's configuration (default_timezone in config.lua) wins over "UTC"
-- so one deployment can serve, say, a single country without editing scripts.
local configured = herald.config and herald.config.default_timezone
if type(configured) ~= "string" or configured == "" then
  configured = nil
end

return {
  -- Normal-urgency messages go out only between these local times: open is
  -- inclusive, close exclusive (a message at 18:00 waits for the next day).
  business_hours = { open = "09:00", close = "18:00" },

  -- Days on which normal-urgency messages go out, by ISO weekday
  -- (1 = Monday ... 7 = Sunday, as herald.to_local reports wday).
  -- Add [6] = true to work Saturdays.
  working_days = { [1] = true, [2] = true, [3] = true, [4] = true, [5] = true },

  -- Time zone for clients without a usable one (an IANA name such as
  -- "Europe/Paris"). Unknown client zones are logged at warn.
  default_timezone = configured or "UTC",

  -- Local time of the one daily digest that collects a client's
  -- low-urgency messages; a client's own prefs.digest_time wins.
  digest_time = "09:00",

  -- A high-urgency message is due within this many seconds. Timing sends it
  -- at once (quiet hours still respected), so this is the promise explain()
  -- states, not a delay that is added.
  high_window = 3600,

  -- Who the messages come from: every email's footer names the company, its
  -- valid postal address (CAN-SPAM asks for one) and where to write with
  -- questions. A request's context.company overrides it field by field for
  -- that message. The values below are placeholders: with HERALD_ENV=production
  -- `herald check` refuses them (content.identity, docs/compliance.md).
  company = {
    name = "Herald Events",
    address = "1200 Market Street, Suite 400, San Francisco, CA 94102, USA",
    support_email = "support@example.com",
  },

  retry = {
    -- Wait before retry number N of the same channel (seconds): 1, 5 and 15
    -- minutes. After the last one the next fallback channel is tried, so
    -- adding entries means more patience before switching channel.
    schedule = { 60, 300, 900 },
    -- Each wait is spread by up to this fraction either way (0.2 = ±20%) so
    -- that messages failing together do not all retry in the same second.
    jitter = 0.2,
    -- An operations alert (engine.alert_url / engine.alert_email) whose
    -- delivery failed is tried again after alert_schedule[N] seconds (then
    -- the last entry again) until alert_give_up_after attempts: the
    -- endpoint may be down for a while, and the alert must still arrive.
    alert_schedule = { 5, 30, 120, 600 },
    alert_give_up_after = 50,
  },

  -- Consent: when a channel may be used without the client's explicit yes
  -- (prefs consent.given = true, POST /api/crm/preferences "consent").
  consent = {
    -- Channels used only after an opt-in. WhatsApp: Meta's Business policy
    -- requires one before a business starts a conversation. SMS and email
    -- about the client's own event are transactional (the number and address
    -- were given for it), so they go without; add sms = true where the law
    -- you work under asks for an explicit yes to texts.
    required = { whatsapp = true },
    -- A client who said no (consent.given = false with a time: a withdrawal,
    -- or a recorded refusal) gets nothing on any channel. false: only the
    -- channels in `required` stop.
    withdrawal_stops_all = true,
  },

  -- No delivery receipt: a message sent on a channel that reports delivery
  -- (sms, whatsapp) and not delivered within this many seconds goes on to the
  -- next channel of its chain, by channel and urgency. by_type overrides per
  -- message type, e.g. by_type = { blueprint_delivery = { whatsapp = { high = 300 } } }.
  -- Email has no delivery receipts: never list it.
  no_receipt = {
    whatsapp = { high = 600, critical = 600 },
    by_type = {},
  },

  -- Open and click tracking of email: links go through /t/c/{token} and a
  -- 1x1 pixel /t/o/{token}.gif is added (the unsubscribe link stays direct).
  tracking = {
    enabled = true,
    -- message types never tracked, e.g. { error_notification = true }
    off = {},
    -- how long tracked links keep working (days); after that a click shows
    -- "expired" instead of redirecting
    link_days = 365,
  },

  -- Unsubscribe: the message types whose email carries the signed link
  -- /u/{token} and the List-Unsubscribe / List-Unsubscribe-Post headers
  -- (RFC 8058 one-click). default covers every type not named; name a type
  -- false to leave it out (only what is strictly transactional).
  unsubscribe = { default = true, error_notification = false },

  -- Queue priority by urgency: higher goes first when workers are busy.
  priorities = { critical = 100, high = 75, normal = 50, low = 10 },
}
