-- What a failed send means: maps what a transport saw (SMTP reply and
-- enhanced status codes, Twilio and Meta error codes, HTTP status, network
-- errors) to a category retry.lua acts on. Contract: docs/scripting.md.
--
-- Categories:
--   transient     may work if tried again later
--   permanent     will fail again the same way on this channel
--   rate_limit    the provider asks us to slow down
--   auth_failure  our credentials or account are wrong
--   invalid       the recipient's address on this channel is unusable
--
-- may_have_been_sent says whether the recipient may already have the message
-- (a retry could duplicate it): true only when the provider may have
-- received the request and not answered with a clear rejection.
--
-- The code tables come first and are data: add a code by adding a line.
-- Each entry is { category, "what it means" }.

local classify = {}

---------------------------------------------------------------- SMTP ----

-- Reply codes decided by the reply code alone, whatever enhanced code
-- comes with them (535 5.7.8 is our credentials, not a policy block).
local SMTP_DECISIVE = {
  [530] = { "auth_failure", "authentication required" },
  [534] = { "auth_failure", "authentication mechanism too weak" },
  [535] = { "auth_failure", "authentication credentials invalid" },
  [538] = { "auth_failure", "encryption required for the authentication mechanism" },
}

-- Reply codes whose meaning depends on the SMTP stage. RFC 5321 §4.5.3.1.10:
-- 552 "too much mail" given to RCPT is to be treated as temporary.
local SMTP_AT_STAGE = {
  rcpt = {
    [552] = { "transient", "mailbox over its storage allocation at RCPT (treated as temporary)" },
  },
}

-- Enhanced status codes (RFC 3463), exact first, then by subject ("5.1"),
-- then by class ("4", "5"). They refine a reply code of the same class.
local SMTP_ENHANCED = {
  ["5.1.1"] = { "invalid", "bad destination mailbox", suppress = "bounce" },
  ["5.1.2"] = { "invalid", "bad destination domain", suppress = "bounce" },
  ["5.1.3"] = { "invalid", "bad destination mailbox address syntax" },
  ["5.1.10"] = { "invalid", "recipient domain has a null MX", suppress = "bounce" },
}
local SMTP_ENHANCED_SUBJECT = {
  ["5.1"] = { "invalid", "address problem" },
  ["5.7"] = { "permanent", "rejected by policy" },
}
local SMTP_ENHANCED_CLASS = {
  ["4"] = { "transient", "temporary failure" },
  ["5"] = { "permanent", "permanent failure" },
}

-- Reply codes (RFC 5321) used when no enhanced code decides.
local SMTP_REPLY = {
  [421] = { "transient", "service not available, closing channel" },
  [450] = { "transient", "mailbox unavailable (busy or greylisted)" },
  [451] = { "transient", "local error in processing" },
  [452] = { "transient", "insufficient system storage" },
  [455] = { "transient", "server unable to accommodate parameters" },
  [500] = { "permanent", "syntax error, command unrecognised" },
  [501] = { "permanent", "syntax error in parameters" },
  [502] = { "permanent", "command not implemented" },
  [503] = { "permanent", "bad sequence of commands" },
  [504] = { "permanent", "command parameter not implemented" },
  [521] = { "permanent", "server does not accept mail" },
  [550] = { "permanent", "mailbox unavailable or rejected" },
  [551] = { "permanent", "user not local" },
  [552] = { "permanent", "exceeded storage allocation" },
  [553] = { "permanent", "mailbox name not allowed" },
  [554] = { "permanent", "transaction failed" },
  [555] = { "permanent", "MAIL/RCPT parameters not recognised" },
  [556] = { "permanent", "domain does not accept mail" },
}
-- Reply codes not listed above, by their first digit.
local SMTP_REPLY_CLASS = {
  [4] = "transient",
  [5] = "permanent",
}

-------------------------------------------------- providers (HTTP APIs) ----

-- Provider error codes by channel. Fields beyond the pair:
--   suppress = reason  the address goes on the suppression list (crm_suppressions)
--                     with this reason: never sent to again on this channel
--   opted_out = true  the recipient opted out of this channel (retry.lua
--                     moves to the next channel).
local PROVIDER = {
  -- Twilio (SMS): API errors (2xxxx) and delivery errors (3xxxx).
  sms = {
    name = "Twilio",
    codes = {
      [20003] = { "auth_failure", "authentication failed" },
      [20429] = { "rate_limit", "too many requests" },
      [21211] = { "invalid", "invalid 'To' phone number" },
      [21408] = { "permanent", "sending to this region is not enabled" },
      [21610] = { "invalid", "recipient replied STOP (unsubscribed)", opted_out = true,
        suppress = "opt_out" },
      [21614] = { "invalid", "'To' number is not a valid mobile number", suppress = "invalid" },
      [21617] = { "permanent", "message body over 1600 characters" },
      [30001] = { "transient", "queue overflow" },
      [30002] = { "auth_failure", "account suspended" },
      [30003] = { "transient", "unreachable destination handset" },
      [30004] = { "permanent", "message blocked" },
      [30005] = { "invalid", "unknown destination handset" },
      [30006] = { "invalid", "landline or unreachable carrier" },
      [30007] = { "permanent", "carrier filtering" },
      [30008] = { "transient", "unknown error" },
    },
  },
  -- Meta WhatsApp Cloud API.
  whatsapp = {
    name = "Meta",
    codes = {
      [4] = { "rate_limit", "application request limit reached" },
      [10] = { "auth_failure", "permission denied" },
      [190] = { "auth_failure", "access token expired or invalid" },
      [80007] = { "rate_limit", "WhatsApp Business Account rate limit" },
      [130429] = { "rate_limit", "throughput rate limit" },
      [131000] = { "transient", "something went wrong" },
      [131026] = { "invalid", "message undeliverable (recipient cannot receive WhatsApp)" },
      [131030] = { "invalid", "recipient not in the allowed list" },
      -- the attempt is retried at once: whatsapp.choose then sees the closed
      -- window and sends the approved template, never the same text again
      [131047] = { "transient", "re-engagement window closed: free text is not allowed more than "
        .. "24 h after the client's last message; the approved template goes instead",
        window_closed = true },
      [131048] = { "rate_limit", "spam rate limit" },
      [131050] = { "invalid", "recipient stopped marketing messages", opted_out = true,
        suppress = "opt_out" },
      [131051] = { "permanent", "unsupported message type" },
      [131056] = { "rate_limit", "too many messages to this recipient (pair rate limit)" },
      -- Template problems (settings.whatsapp.templates names one Meta does not
      -- have, or does not have like this): the same send fails again, so the
      -- next channel; the reason says which.
      [132000] = { "invalid", "template parameter count mismatch: the parameters "
        .. "settings.whatsapp.templates builds do not match the approved template" },
      [132001] = { "invalid", "template does not exist in that name and language "
        .. "(settings.whatsapp.templates)" },
      [132005] = { "invalid", "template hydrated text too long" },
      [132007] = { "invalid", "template format character policy violated" },
      [132012] = { "invalid", "template parameter format mismatch" },
      [132015] = { "invalid", "template is paused for low quality" },
      [132016] = { "invalid", "template is disabled for low quality" },
    },
  },
}

-- HTTP status when there is no provider code (or it is unknown).
local HTTP_STATUS = {
  [401] = { "auth_failure", "unauthorised" },
  [403] = { "auth_failure", "forbidden" },
  [404] = { "permanent", "not found" },
  [408] = { "transient", "request timeout" },
  [429] = { "rate_limit", "too many requests" },
}
-- Statuses not listed above, by their first digit. A 2xx/3xx reaching here
-- means the transport could not make sense of the answer: not retried.
local HTTP_CLASS = {
  [2] = { "permanent", "success status the transport could not use" },
  [3] = { "permanent", "unexpected redirect" },
  [4] = { "permanent", "request refused" },
  [5] = { "transient", "provider server error" },
}
-- Statuses meaning the provider may have accepted the message although the
-- transport saw a failure: a 5xx can come after the work was done, and a
-- 2xx it could not read may be a success. 4xx (429 included) are refusals.
local HTTP_MAY_HAVE_SENT = { [2] = true, [5] = true }

------------------------------------------------------------- network ----

-- sent: whether the provider may have received the request. nil means "it
-- depends on result.request_sent" (a timeout after the request was written
-- may have been processed; one before it was not).
local NETWORK = {
  connect_failed = { "transient", "could not connect", sent = false },
  dns_failed = { "transient", "could not resolve the host", sent = false },
  tls_failed = { "transient", "TLS handshake failed", sent = false },
  timeout = { "transient", "timed out" },
  -- the connection broke mid-exchange: as with a timeout, whether the
  -- provider has the message depends on whether the request was written
  connection_lost = { "transient", "connection lost" },
}

---------------------------------------------------------- local I/O ----

-- kind "io": the outbox driver could not write its file (result.io_error
-- is the errno symbol). The directory is ours, not the recipient's: a full
-- disk, a read-only mount or a misplaced directory is fixed by an operator,
-- and the message waits on its channel's retry schedule meanwhile. Errors
-- not listed are transient too.
local IO = {
  ENOSPC = { "transient", "no space left on the device" },
  EDQUOT = { "transient", "disk quota exceeded" },
  EROFS = { "transient", "read-only file system" },
  EACCES = { "transient", "permission denied" },
  EPERM = { "transient", "operation not permitted" },
  EIO = { "transient", "input/output error" },
  ENOTDIR = { "transient", "a path component is not a directory" },
  ENOENT = { "transient", "the directory does not exist" },
  EISDIR = { "transient", "a directory is in the way" },
  EMFILE = { "transient", "too many open files in the process" },
  ENFILE = { "transient", "too many open files in the system" },
}

--------------------------------------------------------------- logic ----

local function given(v)
  return v ~= nil and v ~= herald.null and v ~= ""
end

local function out(category, may_have_been_sent, reason, result, extra)
  local c = {
    category = category,
    may_have_been_sent = may_have_been_sent,
    reason = reason,
  }
  local after = tonumber(result.retry_after)
  if after and after > 0 then
    c.retry_after = after
  end
  if extra and extra.opted_out then
    c.opted_out = true
  end
  if extra and extra.suppress then
    c.suppress = extra.suppress
  end
  if extra and extra.window_closed then
    c.window_closed = true
  end
  return c
end

local function classify_network(result)
  local err = tostring(result.network_error)
  local entry = NETWORK[err]
  local sent = result.request_sent == true
  if not entry then
    return out("transient", sent, string.format("unknown network error '%s': transient%s", err,
      sent and " (request was sent, may have been delivered)" or ""), result)
  end
  if entry.sent ~= nil then
    sent = entry.sent
  end
  local when = sent and "after the request was sent" or "before the request was sent"
  return out(entry[1], sent, string.format("network: %s %s → %s", entry[2], when, entry[1]), result)
end

local function classify_io(result)
  local err = given(result.io_error) and tostring(result.io_error) or "unknown"
  local entry = IO[err] or { "transient", "local I/O error" }
  -- Nothing left the machine: never sent.
  return out(entry[1], false, string.format("local I/O %s: %s → %s (%s)", err, entry[2], entry[1],
    tostring(result.text or "")), result)
end

local function classify_smtp(result)
  local code = tonumber(result.smtp_code)
  local enhanced = given(result.enhanced_code) and tostring(result.enhanced_code) or nil
  local stage = given(result.smtp_stage) and tostring(result.smtp_stage) or nil
  local label = "SMTP " .. (code and tostring(code) or "?") .. (enhanced and (" " .. enhanced) or "")
      .. (stage and (" at " .. stage) or "")
  local function done(entry)
    -- A reply is the server refusing the message: it was not delivered.
    return out(entry[1], false, label .. ": " .. entry[2] .. " → " .. entry[1], result, entry)
  end

  if code and SMTP_DECISIVE[code] then
    return done(SMTP_DECISIVE[code])
  end
  local at_stage = stage and SMTP_AT_STAGE[stage]
  if code and at_stage and at_stage[code] then
    return done(at_stage[code])
  end
  -- An enhanced code counts when its class agrees with the reply code's.
  local eclass = enhanced and enhanced:match("^(%d)%.%d+%.%d+$")
  if eclass and (not code or tostring(code // 100) == eclass) then
    local exact = SMTP_ENHANCED[enhanced]
    local subject = SMTP_ENHANCED_SUBJECT[enhanced:match("^(%d%.%d+)")]
    if exact then
      return done(exact)
    elseif subject then
      return done(subject)
    end
  end
  if code and SMTP_REPLY[code] then
    return done(SMTP_REPLY[code])
  end
  if eclass and SMTP_ENHANCED_CLASS[eclass] and (not code or tostring(code // 100) == eclass) then
    local e = SMTP_ENHANCED_CLASS[eclass]
    return done({ e[1], "unknown code, " .. e[2] .. " by its class" })
  end
  local category = code and SMTP_REPLY_CLASS[code // 100]
  if category then
    return done({ category, string.format("unknown code %d, %s as a %dxx", code, category, code // 100) })
  end
  return done({ "transient", "unknown code, no class to go by" })
end

local function classify_http(channel, result)
  local status = tonumber(result.http_status)
  local sent = status ~= nil and HTTP_MAY_HAVE_SENT[status // 100] == true
  local provider = PROVIDER[channel]
  local pcode = tonumber(result.provider_code)
  local label = status and ("HTTP " .. status) or "HTTP"
  local unknown = ""
  if given(result.provider_code) then
    local name = provider and provider.name or channel
    local entry = provider and pcode and provider.codes[pcode]
    local sub = given(result.provider_subcode) and (" (subcode " .. tostring(result.provider_subcode) .. ")") or ""
    if entry then
      return out(entry[1], sent, string.format("%s %s%s: %s → %s", name, tostring(result.provider_code),
        sub, entry[2], entry[1]), result, entry)
    end
    unknown = string.format("unknown %s code %s%s; ", name, tostring(result.provider_code), sub)
  end
  if not status then
    -- A provider code we do not know and no status: do not hammer the
    -- provider with a request it has rejected once already.
    return out("permanent", false, unknown .. "no HTTP status → permanent", result)
  end
  local entry = HTTP_STATUS[status]
  if entry then
    return out(entry[1], sent, string.format("%s%s %s → %s", unknown, label, entry[2], entry[1]), result)
  end
  local class = HTTP_CLASS[status // 100]
  if not class then
    return out("transient", sent, string.format("%sunknown status code %d → transient", unknown, status), result)
  end
  return out(class[1], sent, string.format("%s%s %s → %s", unknown, label, class[2], class[1]), result)
end

--- Classify a failed send.
-- @param channel string  "email" | "sms" | "whatsapp"
-- @param result table  what the transport saw: {ok, kind = "smtp"|"http"|"network"|"local"|"io",
--   smtp_code?, enhanced_code?, smtp_stage?, http_status?, provider_code?, provider_subcode?,
--   network_error?, io_error?, request_sent?, retry_after?}
-- @return table  {category, may_have_been_sent = bool, retry_after?, opted_out?, suppress?, reason}
function classify.classify(channel, result)
  if type(result) ~= "table" then
    error("classify: result must be a table", 2)
  end
  -- A network error wins over the kind: an SMTP connection that failed has
  -- no reply code to read.
  if given(result.network_error) or result.kind == "network" then
    return classify_network(result)
  end
  -- Refused by the engine itself before any I/O (a malformed address, a
  -- header injection attempt, a channel with no account): sending it again
  -- as it is cannot work.
  if result.kind == "local" then
    return out("invalid", false, tostring(result.text or "refused before sending"),
      result)
  end
  if result.kind == "io" then
    return classify_io(result)
  end
  if result.kind == "smtp" or (result.kind == nil and given(result.smtp_code)) then
    return classify_smtp(result)
  end
  if result.kind == "http" or given(result.http_status) or given(result.provider_code) then
    return classify_http(channel, result)
  end
  return out("transient", result.request_sent == true,
    string.format("unknown result (kind '%s', no code): transient", tostring(result.kind)), result)
end

return classify
