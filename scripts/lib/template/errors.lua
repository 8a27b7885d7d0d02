-- lib/template/errors.lua - how the template engine reports an error and where.
--
-- Provides:
--   fail(name, line, msg)  raises a compile error, {tplerr = "name:line: msg"}
--   rterr(msg)             raises a render error, a plain string
--   format_error(err)      "name:line: message" for either: a render error is
--                          prefixed with the position the compiled code last
--                          recorded in POS[1] (template id * LINES + line)
--   POS, LINES, NAMES      those position registers, shared by the compiled code,
--                          the compiler (NAMES[id] = template name) and the render
--                          wrapper
-- Uses: nothing.

local M = {}

local POS = {0}
local LINES = 16777216
local NAMES = {}

local function fail(name, line, msg)
  error({tplerr = ("%s:%d: %s"):format(name, line or 0, msg)}, 0)
end

local function rterr(msg) error(msg, 0) end

local function format_error(err)
  if type(err) == "table" and err.tplerr then return err.tplerr end
  local code = POS[1] or 0
  local name = NAMES[code // LINES] or "?"
  return ("%s:%d: %s"):format(name, code % LINES, tostring(err))
end

M.POS, M.LINES, M.NAMES = POS, LINES, NAMES
M.fail, M.rterr, M.format_error = fail, rterr, format_error

return M
