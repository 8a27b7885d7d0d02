-- What a message a client sends us means (issue 12 item 3). The engine asks
-- inbound.keyword for every text that arrives through a provider's inbound
-- webhook (Twilio's incoming-message webhook for SMS, Meta's `messages`
-- notifications for WhatsApp) and does what it answers:
--
--   opt_out  the number is opted out of the channel it wrote on (every
--            client with that number) and put on the suppression list
--   opt_in   the opt-out is lifted and the suppression of reason opt_out or
--            unsubscribe comes off (a bounce stays)
--   help     recorded in the consent ledger, nothing changes
--   none     not a keyword: only the time of contact is kept
--
-- The time of every inbound message is kept whatever the answer (it opens
-- WhatsApp's 24-hour customer-service window). The text is the client's
-- own words: it is never logged, and an error here never quotes it.
-- Contract: docs/scripting.md ("Inbound messages").

local settings = require("settings")

local inbound = {}

-- The longest text that can be a keyword; longer ones are not looked at.
local MAX_KEYWORD = 32

local ACTIONS = { "opt_out", "opt_in", "help" }

-- inbound.keyword(channel, text) -> { action = ..., keyword = "STOP" | nil }
function inbound.keyword(channel, text)
  if type(text) ~= "string" or #text > MAX_KEYWORD * 4 then
    return { action = "none" }
  end
  local word = text:match("^%s*(.-)%s*$")
  if #word == 0 or #word > MAX_KEYWORD or not word:match("^%a+$") then
    return { action = "none" }
  end
  word = word:upper()
  local lists = (settings.inbound or {})[channel] or {}
  for _, action in ipairs(ACTIONS) do
    for _, w in ipairs(lists[action] or {}) do
      if w:upper() == word then
        return { action = action, keyword = word }
      end
    end
  end
  return { action = "none" }
end

return inbound
