-- template_diff_driver.lua - the Herald side of test_template_diff.py: reads
-- one JSON case a line on stdin ({"name", "source", "context"}), renders it
-- with lib.template, the context decoded by herald.json_decode (the engine's
-- JSON -> Lua conversion), and writes one JSON line a case:
-- {"ok": true, "out": text} or {"ok": false, "error": message, "compile": true
-- when compiling refused it}.
-- Run from the source tree: lua5.4 tests/integration/template_diff_driver.lua
package.path = "scripts/?.lua;scripts/?/init.lua;" .. package.path
package.cpath = (os.getenv("HERALD_MODULE_DIR") or "build") .. "/?.so;" .. package.cpath
herald = require("herald")
local template = require("lib.template")

for line in io.lines() do
  local case = herald.json_decode(line)
  local res
  local cok, render = pcall(template.compile, case.source, case.name)
  if not cok then
    res = {ok = false, compile = true, error = tostring(render)}
  else
    local ok, out = pcall(render, herald.json_decode(case.context))
    res = ok and {ok = true, out = tostring(out)} or {ok = false, error = tostring(out)}
  end
  io.write(herald.json_encode(res), "\n")
end
