-- lib/template/locales.lua - data: how each language writes dates, numbers
-- and amounts, for the date, number and currency filters (filters.lua).
--
-- One table per language, taken from the Unicode CLDR as Debian 12's
-- python3-babel (2.10) ships it, so that tests/integration/test_locale_format.py
-- can compare the filters with Babel byte for byte:
--   months, months_short, days, days_short   (days from Sunday)
--   am, pm
--   dates = {short, medium, long, full,      strftime-like patterns (filters.lua);
--            day_month}                      day_month is CLDR's skeleton MMMMd
--   decimal, group                           the separators
--   group_min                                digits before a grouping starts (CLDR's
--                                            minimumGroupingDigits + 3)
--   currency = "before" | "after"            where the symbol goes
--   currency_space                           between the number and a symbol after it
--   symbols = {USD = "$", ...}               a code not listed is written as its code
--
-- A locale tag reaches its data by language: "fr-CA" and "fr_FR" read fr;
-- a language without a table reads en (M.get). To add a language, add its
-- table here (and its templates under templates/<tag>/, docs/scripting.md).

local NBSP, NNBSP = "\u{A0}", "\u{202F}"

local M = {}

M.DATA = {
  en = {
    months = {"January", "February", "March", "April", "May", "June", "July", "August",
      "September", "October", "November", "December"},
    months_short = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
      "Dec"},
    days = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
    days_short = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"},
    am = "AM", pm = "PM",
    dates = {short = "%-m/%-d/%y", medium = "%b %e, %Y", long = "%B %e, %Y",
      full = "%A, %B %e, %Y", day_month = "%B %e"},
    decimal = ".", group = ",", group_min = 4,
    currency = "before", currency_space = "",
    symbols = {USD = "$", EUR = "€", GBP = "£", JPY = "¥", CAD = "CA$", AUD = "A$", MXN = "MX$"},
    -- Herald's own before locales: a code without a symbol is "CHF 1,234.50"
    code_space = " ",
  },
  fr = {
    months = {"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
      "septembre", "octobre", "novembre", "décembre"},
    months_short = {"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.",
      "oct.", "nov.", "déc."},
    days = {"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"},
    days_short = {"dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."},
    am = "AM", pm = "PM",
    dates = {short = "%d/%m/%Y", medium = "%e %b %Y", long = "%e %B %Y", full = "%A %e %B %Y",
      day_month = "%e %B"},
    decimal = ",", group = NNBSP, group_min = 4,
    currency = "after", currency_space = NBSP,
    symbols = {USD = "$US", EUR = "€", GBP = "£GB", JPY = "JPY", CAD = "$CA", AUD = "$AU",
      MXN = "$MX"},
  },
  es = {
    months = {"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
      "septiembre", "octubre", "noviembre", "diciembre"},
    months_short = {"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov",
      "dic"},
    days = {"domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"},
    days_short = {"dom", "lun", "mar", "mié", "jue", "vie", "sáb"},
    am = "a. m.", pm = "p. m.",
    dates = {short = "%e/%-m/%y", medium = "%e %b %Y", long = "%e de %B de %Y",
      full = "%A, %e de %B de %Y", day_month = "%e de %B"},
    decimal = ",", group = ".", group_min = 4,
    currency = "after", currency_space = NBSP,
    symbols = {USD = "US$", EUR = "€", GBP = "GBP", JPY = "JPY", CAD = "CAD", AUD = "AUD",
      MXN = "MXN"},
  },
}

-- Decimal places of a currency (ISO 4217) where it is not 2.
M.DECIMALS = {JPY = 0, KRW = 0, CLP = 0, ISK = 0, HUF = 2}

M.DEFAULT = "en"

-- The data of a locale tag ("fr-CA", "fr_FR", "es"), by its language; en for
-- a language without data. The tag is bounded before it is matched.
function M.get(tag)
  if type(tag) == "table" then return tag end
  if type(tag) ~= "string" or #tag > 64 then return M.DATA[M.DEFAULT] end
  local lang = tag:match("^%a%a%a?")
  return (lang and M.DATA[lang:lower()]) or M.DATA[M.DEFAULT]
end

-- Whether a language has its own data ("de": no, until someone adds it).
function M.has(tag)
  if type(tag) ~= "string" or #tag > 64 then return false end
  local lang = tag:match("^(%a%a%a?)")
  return lang ~= nil and M.DATA[lang:lower()] ~= nil
end

M.NBSP, M.NNBSP = NBSP, NNBSP

return M
