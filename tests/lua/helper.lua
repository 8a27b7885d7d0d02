-- Loaded by busted before every spec (see tests/CMakeLists.txt). Makes the
-- policy modules under scripts/ requirable as they are inside the engine,
-- and provides the `herald` global: the real C primitives (build/herald.so)
-- with every file of templates/ in herald.templates, as the engine loads them.
package.path = "scripts/?.lua;scripts/?/init.lua;" .. package.path
local moddir = os.getenv("HERALD_MODULE_DIR") or "build"
package.cpath = moddir .. "/?.so;" .. package.cpath

herald = require("herald")

-- every file, a locale's folder too ("fr/welcome.subject"), as the engine names them
local list = io.popen("cd templates 2>/dev/null && find . -type f ! -name '.*' | sed 's|^\\./||'")
if list then
  for name in list:lines() do
    local f = io.open("templates/" .. name, "rb")
    if f then
      herald.templates[name] = f:read("a")
      f:close()
    end
  end
  list:close()
end
