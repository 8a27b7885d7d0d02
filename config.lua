-- Herald's default configuration: runs with no accounts anywhere.
-- Every key is documented in docs/configuration.md. Secrets (HERALD_JWT_SECRET,
-- HERALD_ENCRYPTION_KEY, provider tokens) are read from the environment only;
-- without them, development keys are generated under var/dev-keys/.
return {
  http = {
    listen = env("HERALD_LISTEN", "127.0.0.1:8080"),
    -- what the outside world uses (links in messages, webhook signatures)
    public_url = env("HERALD_PUBLIC_URL", "http://" .. env("HERALD_LISTEN", "127.0.0.1:8080")),
    threads = 16,
    max_body_bytes = 1024 * 1024,
    -- slow and idle clients (docs/configuration.md): connections at once, from
    -- one address (0: no limit, e.g. behind a proxy), and seconds for a
    -- request's headers and for a silent connection
    max_connections = 4096,
    max_connections_per_address = 256,
    header_timeout = 10,
    idle_timeout = 30,
    -- largest provider callback (a Meta payload of 3,000 statuses is ~1 MB)
    webhook_max_bytes = 2 * 1024 * 1024,
  },
  database = {
    -- the private cluster of `make run` (tools/services.sh) unless set
    url = env("HERALD_DATABASE_URL",
              "postgresql://herald@127.0.0.1:" .. env("HERALD_PG_PORT", "55432") .. "/herald"),
    pool_size = 8,
    connect_timeout = 5,       -- seconds to open a connection
    query_timeout_ms = 10000,  -- every query answers within this, or fails
  },
  redis = {
    url = env("HERALD_REDIS_URL", "redis://127.0.0.1:" .. env("HERALD_REDIS_PORT", "56379") .. "/0"),
    timeout_ms = 500,
  },
  auth = {
    issuer = "herald",
    audience = "herald-api",
    access_ttl = 60 * 60,
    refresh_ttl = 30 * 24 * 60 * 60,
    -- set to false in production: a missing secret then stops the start
    allow_dev_keys = env("HERALD_ALLOW_DEV_KEYS", "true") == "true",
  },
  -- rate limits, shared by every process through Redis (docs/configuration.md)
  limits = {
    api_rate = env("HERALD_LIMIT_API_RATE", "50"),   -- requests per second per token subject
    api_burst = env("HERALD_LIMIT_API_BURST", "100"), -- of them at once
    auth_failures = env("HERALD_LIMIT_AUTH_FAILURES", "10"), -- refused keys a minute per address
    -- per source address, burst twice the rate: generous, so only a flood is refused
    webhook_rate = env("HERALD_LIMIT_WEBHOOK_RATE", "1000"),  -- provider callbacks a second
    tracking_rate = env("HERALD_LIMIT_TRACKING_RATE", "100"), -- open and click hits a second
    processes = 1, -- the share each process takes when Redis is down and cannot count them
  },
  engine = {
    workers = env("HERALD_WORKERS", "0"),     -- 0: one per core
    -- when the last claim emptied the queue, the next waits up to this many
    -- ms for more messages so one claim carries several (0: claim at once)
    claim_linger_ms = env("HERALD_CLAIM_LINGER_MS", "5"),
    outcome_linger_ms = env("HERALD_OUTCOME_LINGER_MS", "2"),
    retry_scale = env("HERALD_RETRY_SCALE", "1"),
    -- a claimed job returns to the queue after this if its process died;
    -- keep it above the longest channel timeout
    lease_seconds = env("HERALD_LEASE_SECONDS", "120"),
    -- GET /api/crm/analytics reads daily rows the database keeps with every
    -- message change, plus the changes not folded in yet (exact at each
    -- read); the changes are folded in this often
    analytics_refresh_seconds = env("HERALD_ANALYTICS_REFRESH_SECONDS", "10"),
    -- POSTed {"alert":"communication_failed", ...} when every channel failed
    alert_url = env("HERALD_ALERT_URL"),
    -- and/or emailed (through the email channel's driver) to this address
    alert_email = env("HERALD_ALERT_EMAIL"),
  },
  -- How long what Herald stores is kept (docs/compliance.md). Ended messages
  -- (with their attempts and events) and events are deleted in small batches
  -- by one process at a time; the analytics daily rows stay. 0: for ever.
  retention = {
    communications_days = env("HERALD_RETENTION_COMMUNICATIONS_DAYS", "730"),
    events_days = env("HERALD_RETENTION_EVENTS_DAYS", "730"),
    batch_size = env("HERALD_RETENTION_BATCH_SIZE", "1000"),
    pause_ms = env("HERALD_RETENTION_PAUSE_MS", "50"),
    interval_seconds = env("HERALD_RETENTION_INTERVAL_SECONDS", "3600"),
  },
  paths = {
    var = env("HERALD_VAR_DIR", "var"),
    migrations = "migrations",
    scripts = env("HERALD_SCRIPTS_DIR", "scripts"),
    templates = env("HERALD_TEMPLATES_DIR", "templates"),
  },
  lua = {
    instruction_limit = 10 * 1000 * 1000, -- per policy call; a runaway loop stops here
    memory_limit_mb = 64,                 -- per Lua state (one per thread)
    -- deadlines per call; the environment may move them (a sanitizer build
    -- runs every instruction several times slower)
    decision_ms = env("HERALD_LUA_DECISION_MS", "50"), -- strategy, classify, retry calls
    render_ms = env("HERALD_LUA_RENDER_MS", "200"),    -- content calls
    load_ms = env("HERALD_LUA_LOAD_MS", "5000"),       -- loading a module, a reload's checks
    pattern_max_bytes = 16384,            -- longest subject a Lua pattern may scan
  },
  -- How each channel leaves: "outbox" writes files under outbox_dir (see what
  -- would have been sent, no account needed); the real drivers are smtp,
  -- twilio and whatsapp. Passwords and tokens come from the environment only:
  -- HERALD_SMTP_PASSWORD, HERALD_TWILIO_AUTH_TOKEN, HERALD_WHATSAPP_TOKEN.
  channels = {
    outbox_dir = env("HERALD_OUTBOX_DIR", "var/outbox"),
    email = {
      driver = env("HERALD_EMAIL_DRIVER", "outbox"),     -- outbox | smtp
      smtp_url = env("HERALD_SMTP_URL"),                 -- smtp://host:587 or smtps://host:465
      username = env("HERALD_SMTP_USERNAME"),
      starttls = env("HERALD_SMTP_STARTTLS", "try"),     -- off | try | required
      from = env("HERALD_EMAIL_FROM", "Herald <noreply@localhost>"),
      timeout_ms = 30000,
      connections = env("HERALD_SMTP_CONNECTIONS", "8"), -- kept open and reused
      -- DKIM signing, off unless both are set; the key's path: HERALD_DKIM_KEY_FILE
      dkim_domain = env("HERALD_DKIM_DOMAIN"),           -- d=, e.g. example.com
      dkim_selector = env("HERALD_DKIM_SELECTOR"),       -- s=, e.g. herald2026
    },
    sms = {
      driver = env("HERALD_SMS_DRIVER", "outbox"),       -- outbox | twilio
      base_url = env("HERALD_TWILIO_BASE_URL", "https://api.twilio.com"),
      account_sid = env("HERALD_TWILIO_ACCOUNT_SID"),
      from = env("HERALD_TWILIO_FROM"),                  -- a number, or an MG... service
      timeout_ms = 15000,
      in_flight = env("HERALD_SMS_IN_FLIGHT", "200"),
    },
    whatsapp = {
      driver = env("HERALD_WHATSAPP_DRIVER", "outbox"),  -- outbox | whatsapp
      base_url = env("HERALD_WHATSAPP_BASE_URL", "https://graph.facebook.com/v18.0"),
      phone_number_id = env("HERALD_WHATSAPP_PHONE_NUMBER_ID"),
      timeout_ms = 15000,
      in_flight = env("HERALD_WHATSAPP_IN_FLIGHT", "200"),
    },
  },
  policy = {
    -- clients without a (valid) time zone are scheduled in this one
    default_timezone = env("HERALD_DEFAULT_TIMEZONE", "UTC"),
  },
  log = {
    level = env("HERALD_LOG_LEVEL", "info"),
  },
}
