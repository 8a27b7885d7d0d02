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
  -- An address for the mailto in List-Unsubscribe, next to the one-click
  -- URL (RFC 2369), e.g. "unsubscribe@yourcompany.example"; nil: none. Herald
  -- does not read that mailbox: its subject is "unsubscribe-<token>", and
  -- whoever reads it acts with POST /u/<token> (docs/compliance.md).
  unsubscribe_mailto = nil,

  -- WhatsApp (whatsapp.lua). Meta lets a business send free-form text only
  -- within window_hours of the client's last message to it; outside that
  -- window (or when Meta has said it is closed: error 131047) only an
  -- approved template may start the conversation. Each message type maps to
  -- the template approved for it in Meta's WhatsApp Manager: its name, its
  -- language (the locale content.render writes the client's text in, or the
  -- client's own variant of that language, through `languages`, else
  -- `language`; dates and amounts in the parameters follow it: date('long')),
  -- and its parameters, each a template expression over the type's context
  -- (types.lua), in the order the approved template numbers them:
  --   header = {...}   the header's {{1}}... (text headers)
  --   body = {...}     the body's {{1}}, {{2}}...
  --   buttons = { {index = 0, url = "..."} }   a URL button's dynamic suffix
  -- A type without a template is not sent on WhatsApp outside the window
  -- (the channel is skipped with the reason; the next one is tried).
  whatsapp = {
    window_hours = 24,
    language = "en_US",
    languages = { en = "en_US", ["en-GB"] = "en_GB", fr = "fr", es = "es" },
    templates = {
      welcome = { name = "herald_welcome_v1",
        body = { "{{ client_name }}", "{{ company.name }}", "{{ event_type }}",
          "{{ event_date|date('long') }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      budget_summary = { name = "herald_budget_ready_v1",
        body = { "{{ client_name }}", "{{ event_type }}", "{{ total_budget|currency(currency) }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      vendor_options = { name = "herald_vendor_options_v2",
        body = { "{{ client_name }}", "{{ event_type }}",
          "{{ categories|length }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      selection_confirmation = { name = "herald_selection_confirm_v1",
        body = { "{{ client_name }}", "{{ event_type }}", "{{ selected_vendors|length }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      blueprint_delivery = { name = "herald_blueprint_ready_v1",
        body = { "{{ client_name }}", "{{ event_type }}", "{{ event_date|date('long') }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      error_notification = { name = "herald_action_needed_v1",
        body = { "{{ client_name }}", "{{ event_type }}", "{{ error_summary }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      reminder = { name = "herald_reminder_v1",
        body = { "{{ client_name }}", "{{ due_item }}", "{{ due_date|date('day_month') }}" },
        buttons = { { index = 0, url = "{{ plan_id }}" } } },
      digest = { name = "herald_daily_digest_v1",
        body = { "{{ client_name }}", "{{ items|length }}" } },
    },
  },

  -- A/B experiments (experiments.lua): per message type, variants with
  -- weights; a client always gets the same variant (a hash of the
  -- experiment and the client id). The first variant is the control; set
  -- enabled = false to send everyone the control. Example:
  --   welcome_subject = {
  --     message_type = "welcome", enabled = true,
  --     variants = {
  --       { name = "control", weight = 50 },
  --       { name = "short", weight = 50, subject = "Welcome, {{ client_name }}!" },
  --     },
  --   },
  -- A variant may also set template (another template set), channel (tried
  -- first) or delay_minutes. GET /api/crm/analytics?group_by=variant&
  -- message_type=welcome compares them.
  experiments = {},

  -- Provider capacity (limits.lua): buckets a send draws from, by
  -- "<channel>:<sender>" (the SMS From number, the WhatsApp phone number id,
  -- "relay" for the SMTP server) or "<channel>", each {rate = n, per =
  -- seconds, burst = n}. A send over a bucket waits exactly as long as the
  -- bucket says (no attempt, no fallback). burst defaults to the sends of
  -- 0.2 s at the rate, at least 2 (limits.lua says why). Examples:
  --   ["sms:+15550001111"] = { rate = 1, per = 1 },     -- a Twilio long code
  --   ["whatsapp:1055500"] = { rate = 80, per = 1 },    -- a WhatsApp number
  --   ["email:relay"] = { rate = 14, per = 1, burst = 14 }, -- an SES quota
  -- When a provider still answers rate_limit, the engine slows that bucket
  -- down: slow_down = { factor = 0.5, floor = 1/64, recover_seconds = 20 }
  -- (the defaults; next to buckets for all, or inside one bucket for it).
  limits = { buckets = {} },

  -- Per-recipient caps (limits.lua): at most per_day messages a client
  -- receives on a channel (a rolling day); urgencies in exempt are not
  -- counted. A message over the cap waits for its slot (over = "wait", the
  -- default) or joins the client's digest (over = "digest"), with the reason.
  --   caps = { sms = { per_day = 3, over = "digest" }, email = { per_day = 10 },
  --            exempt = { critical = true } },
  caps = { exempt = { critical = true } },

  -- Messages clients send us (inbound.lua): the words that opt a number
  -- out of a channel, back in, or ask for help. A text is a keyword only
  -- when the whole of it (trimmed, any case) is one of these. The SMS lists
  -- are the carriers' standard set (CTIA; Twilio Advanced Opt-Out answers
  -- them too); WhatsApp has no carrier keywords, so these are Herald's.
  inbound = {
    sms = {
      opt_out = { "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT" },
      opt_in = { "START", "YES", "UNSTOP" },
      help = { "HELP", "INFO" },
    },
    whatsapp = {
      opt_out = { "STOP", "UNSUBSCRIBE" },
      opt_in = { "START" },
      help = { "HELP" },
    },
  },

  -- The language of each message (content.lua, docs/scripting.md "Locales"):
  -- the templates at the top of templates/ are in `default`; templates/<tag>/
  -- holds a locale's own (templates/fr/welcome.subject). A client's locale
  -- (preferences, or the request's recipient.locale) falls back through its
  -- parents (fr-CA -> fr), then `fallbacks` of its language, then `default`.
  -- fallbacks: e.g. { ca = { "es" } } sends Catalan clients the Spanish text
  -- rather than the default.
  locales = {
    default = "en",
    fallbacks = {},
  },

  -- Queue priority by urgency: higher goes first when workers are busy.
  priorities = { critical = 100, high = 75, normal = 50, low = 10 },
}
