-- types.lua - the message types Herald sends and what each one's context
-- holds: a contract between the workflow that asks and the templates that say.
--
--   types.check(message_type, context)
--       -> {known = true|false, problems = {{path, expected, got}, ...},
--           warnings = {{path, message}, ...}}
--       Acceptance asks this before anything is stored: a problem is a 400
--       invalid_context naming the field (vendors[2].url: lists count from 0);
--       an undeclared field is kept and named in the 202's warnings, or
--       refused when the type says strict = true.
--   types.prepare(message_type, context, locale?) -> the context with the declared
--       defaults (in the locale's language where a field has `defaults`), or raises naming what no longer matches (content.render
--       calls it before every render: digests, fallbacks, retries, `herald
--       render` see the same declarations).
--   types.list() -> {{name, description, channels, strict, schema, example}, ...}
--       for GET /api/crm/message-types: schema is JSON Schema (draft 2020-12).
--
-- Each type declares its fields with lib/schema.lua's kinds (string, integer,
-- number, boolean, date, url, email, currency, money, list, object): required
-- unless optional = true or a default is given. Every type also has the fields
-- of COMMON. The templates may use only what is declared (content.compile_all
-- checks them, so `herald check` and a live reload refuse a template that
-- reads an undeclared variable, with its file and line), and print an optional
-- field without a default only behind an {% if %} or through |default(...).
-- The example is the type's documentation, served with its schema; `herald
-- check` renders it on every channel and `herald render` uses it by default.
--
-- To add a type: declare it here, add its templates and its line in
-- content.lua's TEMPLATES, and its row in matrix.lua (docs/scripting.md).

local S = require("lib.schema")

local M = {}

-- Fields every type has.
local COMMON = {
  client_name = S.string{max = 100, default = "there",
    defaults = {fr = "Madame, Monsieur", es = "estimado cliente"},
    description = "how to greet the client; without it, the name in their preferences"},
  plan_id = S.string{max = 200, from = "request",
    description = "the request's plan_id unless the context gives another"},
  company = S.object({
    name = S.string{max = 100, optional = true},
    address = S.string{max = 300, optional = true},
    support_email = S.string{max = 254, optional = true},
  }, {optional = true, description = "overrides settings.company, field by field"}),
}

-- Fields many types share.
local event_type = S.string{max = 100, description = "what the client celebrates: a wedding, ..."}
local event_date = S.date{description = "the day of the event"}
local plan_url = S.url{description = "the client's page of their plan"}
local currency = S.currency{description = "the currency of every amount (ISO 4217)"}

M.TYPES = {
  welcome = {
    description = "The first message to a new client: their plan, their planner, what comes next.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      guest_count = S.integer{min = 1, max = 100000, optional = true},
      venue = S.string{max = 200, optional = true},
      planner = S.object({
        name = S.string{max = 100},
        email = S.email{optional = true},
        phone = S.string{max = 40, optional = true},
      }, {optional = true, description = "who plans the event with the client"}),
      next_steps = S.list(S.string{max = 300}, {max = 10, optional = true}),
    },
    example = {
      client_name = "Maria Alvarez",
      event_type = "wedding",
      event_date = "2025-06-14",
      plan_id = "PLN-2025-0412",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0412",
      guest_count = 120,
      venue = "Presidio Golden Gate Club, San Francisco",
      planner = {
        name = "Jordan Lee",
        email = "jordan.lee@heraldevents.com",
        phone = "+1 415 555 0142",
      },
      next_steps = {
        "Tell us your total budget and what matters most to you",
        "Share your guest list size and any must-have vendors",
        "Pick a time for a 30-minute kickoff call",
      },
    },
  },
  budget_summary = {
    description = "The budget strategies prepared for the plan, one of them recommended.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      guest_count = S.integer{min = 1, max = 100000, optional = true},
      currency = currency,
      total_budget = S.money{description = "the client's budget, in currency units"},
      recommended = S.string{max = 100, optional = true,
        description = "the name of the recommended strategy"},
      strategies = S.list(S.object{
        name = S.string{max = 100},
        total = S.money{},
        description = S.string{max = 500},
      }, {min = 1, max = 10}),
    },
    example = {
      client_name = "Daniel Okafor",
      event_type = "corporate retreat",
      event_date = "2025-09-18",
      plan_id = "PLN-2025-0467",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0467",
      guest_count = 60,
      currency = "USD",
      total_budget = 48000,
      recommended = "Balanced",
      strategies = {
        {
          name = "Essential",
          total = 36500,
          description = "A day venue in Sonoma, buffet catering and a shared shuttle from the city.",
        },
        {
          name = "Balanced",
          total = 44750.5,
          description = "An overnight stay with plated dinner, a team workshop facilitator and private transport.",
        },
        {
          name = "Premium",
          total = 52300,
          description = "Two nights at a vineyard resort, chef's tasting menu and a guided wine tour.",
        },
      },
    },
  },
  vendor_options = {
    description = "Shortlisted vendors by category, to choose from before a deadline.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      currency = currency,
      selection_deadline = S.date{optional = true},
      categories = S.list(S.object{
        name = S.string{max = 100},
        vendors = S.list(S.object{
          name = S.string{max = 100},
          price = S.money{},
          rating = S.number{min = 0, max = 5, optional = true},
          url = S.url{optional = true},
        }, {max = 20}),
      }, {min = 1, max = 20}),
    },
    example = {
      client_name = "Priya Raman",
      event_type = "50th birthday party",
      event_date = "2025-11-08",
      plan_id = "PLN-2025-0489",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0489",
      currency = "USD",
      selection_deadline = "2025-09-26",
      categories = {
        {
          name = "Venue",
          vendors = {
            {
              name = "The Lark Rooftop",
              price = 6500,
              rating = 4.8,
              url = "https://vendors.heraldevents.com/v/lark-rooftop",
            },
            {
              name = "Harbor House Loft",
              price = 5200,
              rating = 4.6,
              url = "https://vendors.heraldevents.com/v/harbor-house-loft",
            },
          },
        },
        {
          name = "Catering",
          vendors = {
            {
              name = "Saffron & Salt",
              price = 4800,
              rating = 4.9,
              url = "https://vendors.heraldevents.com/v/saffron-and-salt",
            },
            {
              name = "Golden Gate Grill Co.",
              price = 3900,
              rating = 4.4,
              url = "https://vendors.heraldevents.com/v/golden-gate-grill",
            },
            {
              name = "Verde Kitchen",
              price = 4250,
              rating = 4.7,
              url = "https://vendors.heraldevents.com/v/verde-kitchen",
            },
          },
        },
        {
          name = "Photography",
          vendors = {
            {
              name = "Zoë Laurent Photography",
              price = 2400,
              rating = 5.0,
              url = "https://vendors.heraldevents.com/v/zoe-laurent",
            },
            {
              name = "Brightline Studio",
              price = 1850,
              rating = 4.5,
              url = "https://vendors.heraldevents.com/v/brightline-studio",
            },
          },
        },
        {
          name = "Music",
          vendors = {
            {
              name = "DJ Marcus Hale",
              price = 1200,
              rating = 4.7,
              url = "https://vendors.heraldevents.com/v/dj-marcus-hale",
            },
          },
        },
      },
    },
  },
  selection_confirmation = {
    description = "The vendors the client chose, to confirm before they are booked.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      currency = currency,
      confirm_by = S.date{optional = true},
      selection_total = S.money{optional = true,
        description = "defaults to the sum of the selected vendors' prices"},
      deposit_total = S.money{optional = true},
      selected_vendors = S.list(S.object{
        category = S.string{max = 100},
        name = S.string{max = 100},
        price = S.money{},
        url = S.url{optional = true},
      }, {min = 1, max = 30}),
    },
    example = {
      client_name = "Tom Becker",
      event_type = "wedding",
      event_date = "2026-05-23",
      plan_id = "PLN-2025-0502",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0502",
      currency = "USD",
      confirm_by = "2025-10-10",
      selection_total = 27150,
      deposit_total = 5430,
      selected_vendors = {
        {
          category = "Venue",
          name = "Cavallo Point Lodge",
          price = 14500,
          url = "https://vendors.heraldevents.com/v/cavallo-point",
        },
        {
          category = "Catering",
          name = "Saffron & Salt",
          price = 8200,
          url = "https://vendors.heraldevents.com/v/saffron-and-salt",
        },
        {
          category = "Photography",
          name = "Brightline Studio",
          price = 2950,
          url = "https://vendors.heraldevents.com/v/brightline-studio",
        },
        {
          category = "Flowers",
          name = "Wild Poppy Florals",
          price = 1500,
          url = "https://vendors.heraldevents.com/v/wild-poppy",
        },
      },
    },
  },
  blueprint_delivery = {
    description = "The event's blueprint (timeline, floor plan, contacts) is ready.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      blueprint_url = S.url{optional = true, description = "defaults to the plan's page"},
      blueprint_pages = S.integer{min = 1, max = 10000, optional = true},
      highlights = S.list(S.string{max = 300}, {max = 10, optional = true}),
    },
    example = {
      client_name = "Aiko Tanaka",
      event_type = "engagement party",
      event_date = "2025-08-30",
      plan_id = "PLN-2025-0533",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0533",
      blueprint_url = "https://app.heraldevents.com/b/PLN-2025-0533.pdf",
      blueprint_pages = 14,
      highlights = {
        "Timeline from setup at 2:00 PM to last call at 11:00 PM",
        "Floor plan for 80 guests with the lounge and dance floor",
        "Vendor contacts, arrival times and payment schedule",
      },
    },
  },
  error_notification = {
    description = "Something went wrong with the plan and the client must act.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      error_summary = S.string{max = 300},
      error_details = S.string{max = 2000, optional = true},
      action = S.string{max = 300, description = "what the client should do",
        default = "Please get in touch with us so we can sort this out together.",
        defaults = {
          fr = "Contactez-nous : nous trouverons ensemble une solution.",
          es = "Póngase en contacto con nosotros y lo resolveremos juntos.",
        }},
      support_phone = S.string{max = 40, optional = true},
      support_email = S.email{optional = true},
    },
    example = {
      client_name = "Chris Morgan",
      event_type = "graduation party",
      event_date = "2025-06-07",
      plan_id = "PLN-2025-0548",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0548",
      error_summary = "Your photographer cancelled.",
      error_details = "Brightline Studio told us this morning that they can no longer cover June 7. Your deposit of $370.00 will be refunded in full within 5 business days.",
      action = "Please pick a new one by May 30.",
      support_phone = "+1 415 555 0100",
      support_email = "help@heraldevents.com",
    },
  },
  reminder = {
    description = "A task of the plan is due soon.",
    fields = {
      event_type = event_type, event_date = event_date, plan_url = plan_url,
      due_item = S.string{max = 200},
      due_date = S.date{},
      due_details = S.string{max = 1000, optional = true},
      other_items = S.list(S.object{
        what = S.string{max = 200},
        due_date = S.date{},
      }, {max = 10, optional = true}),
    },
    example = {
      client_name = "Elena Petrova",
      event_type = "wedding",
      event_date = "2025-07-19",
      plan_id = "PLN-2025-0391",
      plan_url = "https://app.heraldevents.com/p/PLN-2025-0391",
      due_item = "Final guest count",
      due_date = "2025-06-20",
      due_details = "The caterer needs the final number of guests and any dietary requirements to confirm the menu and seating.",
      other_items = {
        {
          what = "Second payment to Cavallo Point Lodge",
          due_date = "2025-06-27",
        },
        {
          what = "Song list for the DJ",
          due_date = "2025-07-05",
        },
      },
    },
  },
  digest = {
    description = "The day's low-urgency messages of a client in one; the engine builds its items.",
    fields = {
      items = S.list(S.object{
        subject = S.string{max = 300},
        summary = S.string{max = 500, optional = true},
        message_type = S.string{max = 64, optional = true},
      }, {min = 1, max = 100}),
    },
    example = {
      client_name = "Maria Alvarez",
      plan_id = "PLN-2025-0412",
      items = {
        {
          subject = "Reminder: Final guest count due June 1",
          summary = "Send the caterer your final numbers.",
        },
        {
          subject = "Reminder: Cake tasting on May 20",
        },
      },
    },
  },
}

for _, t in pairs(M.TYPES) do
  for name, f in pairs(COMMON) do
    if t.fields[name] == nil then t.fields[name] = f end
  end
end

local function array(t)
  if herald and herald.array then return herald.array(t) end
  return t
end

function M.check(message_type, context)
  local t = M.TYPES[message_type]
  if t == nil then return {known = false, problems = array({}), warnings = array({})} end
  local problems, warnings = S.check(t.fields, context or {}, {strict = t.strict})
  return {known = true, problems = array(problems), warnings = array(warnings)}
end

function M.prepare(message_type, context, locale)
  local t = M.TYPES[message_type]
  if t == nil then error("types: unknown message type '" .. tostring(message_type) .. "'", 2) end
  local problems = S.check(t.fields, context or {}, {render = true})
  if #problems > 0 then
    local list = {}
    for i, p in ipairs(problems) do
      if i > 5 then
        list[#list + 1] = ("and %d more"):format(#problems - 5)
        break
      end
      list[#list + 1] = ("%s: expected %s, got %s"):format(p.path, p.expected, p.got)
    end
    error(("the context does not match message type '%s' (scripts/types.lua): %s")
      :format(message_type, table.concat(list, "; ")), 0)
  end
  return S.prepare(t.fields, context, locale)
end

function M.names()
  local names = {}
  for name in pairs(M.TYPES) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function M.list()
  local channels = require("content").channels
  local out = {}
  for _, name in ipairs(M.names()) do
    local t = M.TYPES[name]
    out[#out + 1] = {
      name = name,
      description = t.description,
      strict = t.strict == true,
      channels = array(channels(name)),
      schema = S.json_schema(t.fields, {strict = t.strict, title = name,
        description = t.description}),
      example = t.example,
    }
  end
  return array(out)
end

return M
