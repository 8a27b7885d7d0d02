-- SMS first: for an audience that reads texts within minutes and email within
-- days (say, clients planning a graduation or a twenty-something's birthday).
-- Data only, the same shape as scripts/matrix.lua (whose comments describe it);
-- every other module of this set is the shipped one (symbolic links).
--
-- What changes: the conversational messages go by SMS, then WhatsApp (only
-- with the client's opt-in: settings.consent), then email. What stays:
-- documents and long lists go by email, which carries a PDF and a table;
-- the low-urgency reminders still collect into the daily email digest.

return {
  welcome = {
    urgency = "normal",
    primary = "sms",
    fallbacks = { "whatsapp", "email" },
  },

  -- a budget has three strategies and their totals: readable in a text with a
  -- link to the plan, and email keeps the full table as the fallback
  budget_summary = {
    urgency = "normal",
    primary = "sms",
    fallbacks = { "email" },
  },

  -- vendor lists are long: WhatsApp shows them with links, email when the
  -- client has not opted in to WhatsApp
  vendor_options = {
    urgency = "high",
    primary = "whatsapp",
    fallbacks = { "email", "sms" },
  },

  selection_confirmation = {
    urgency = "normal",
    primary = "sms",
    fallbacks = { "email" },
  },

  blueprint_delivery = {
    urgency = "high",
    primary = "email",
    fallbacks = { "whatsapp", "sms" },
    notes = {
      email = "PDF attached",
      whatsapp = "link to the PDF",
      sms = "link to the PDF",
    },
  },

  error_notification = {
    urgency = "critical",
    primary = "sms",
    fallbacks = { "whatsapp", "email" },
  },

  reminder = {
    urgency = "low",
    primary = "email",
    fallbacks = {},
  },
}
