-- The decision matrix (DESIGN.md §3): data only, read by strategy.lua.
--
-- One row per message type:
--   urgency    the default urgency ("low", "normal", "high", "critical");
--              a request that names its own urgency overrides it
--   primary    the channel tried first ("email", "sms", "whatsapp")
--   fallbacks  the channels tried next, in order, when the primary fails
--              or cannot be used for this client ({} for none)
--   notes      optional, per channel: what that channel carries, shown in
--              explain() so nobody wonders why the WhatsApp text has a link
--
-- To add a message type, add a row here and its templates in templates/.

return {
  welcome = {
    urgency = "normal",
    primary = "email",
    fallbacks = { "sms" },
  },

  budget_summary = {
    urgency = "normal",
    primary = "email",
    fallbacks = { "whatsapp" },
  },

  -- Vendors hold their dates for a short time, hence high.
  vendor_options = {
    urgency = "high",
    primary = "email",
    fallbacks = { "whatsapp", "sms" },
  },

  selection_confirmation = {
    urgency = "normal",
    primary = "email",
    fallbacks = { "sms" },
  },

  blueprint_delivery = {
    urgency = "high",
    primary = "email",
    fallbacks = { "whatsapp" },
    notes = {
      email = "PDF attached",
      whatsapp = "link to the PDF",
    },
  },

  -- Something went wrong with the client's plan: reach them wherever they
  -- are, SMS first because it is read soonest.
  error_notification = {
    urgency = "critical",
    primary = "sms",
    fallbacks = { "email", "whatsapp" },
  },

  -- Low urgency: collected into the client's daily digest email.
  reminder = {
    urgency = "low",
    primary = "email",
    fallbacks = {},
  },
}
