-- Loaded by busted before every spec (see tests/CMakeLists.txt): makes the
-- policy modules under scripts/ requirable as they are inside the engine.
package.path = "scripts/?.lua;scripts/lib/?.lua;" .. package.path
