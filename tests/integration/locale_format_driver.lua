-- locale_format_driver.lua - the Herald side of test_locale_format.py: reads
-- one JSON case a line on stdin ({"template", "context", "locale"}), renders
-- it with lib.template in that locale (the date, number and currency
-- filters), and writes one JSON line a case: {"ok": true, "out": text} or
-- {"ok": false, "error": message}.
-- Run from the source tree: lua5.4 tests/integration/locale_format_driver.lua
package.path = "scripts/?.lua;scripts/?/init.lua;" .. package.path
package.cpath = (os.getenv("HERALD_MODULE_DIR") or "build") .. "/?.so;" .. package.cpath
herald = require("herald")
local template = require("lib.template")

local compiled = {}
for line in io.lines() do
  local case = herald.json_decode(line)
  local render = compiled[case.template]
  if render == nil then
    render = template.compile(case.template, "case.txt")
    compiled[case.template] = render
  end
  local ok, out = pcall(render, case.context, {locale = case.locale})
  local res = ok and {ok = true, out = tostring(out)} or {ok = false, error = tostring(out)}
  io.write(herald.json_encode(res), "\n")
end
