-- The shipped config.lua: the table it returns, with env() as the engine
-- defines it (the variable's value, else the default).
local function load_config(vars)
  local env = {
    env = function(name, default)
      local v = vars[name]
      if v ~= nil and v ~= "" then return v end
      return default
    end,
  }
  local chunk = assert(loadfile("config.lua", "t", env))
  return chunk()
end

describe("config.lua", function()
  it("runs with no environment and names the local services", function()
    local c = load_config({})
    assert.are.equal("127.0.0.1:8080", c.http.listen)
    assert.are.equal("http://127.0.0.1:8080", c.http.public_url)
    assert.matches("^postgresql://.*:55432/herald$", c.database.url)
    assert.are.equal("redis://127.0.0.1:56379/0", c.redis.url)
    assert.is_true(c.auth.allow_dev_keys)
  end)

  it("takes the DESIGN.md §6 variables from the environment", function()
    local c = load_config({
      HERALD_LISTEN = "0.0.0.0:9999",
      HERALD_PUBLIC_URL = "https://herald.example.com",
      HERALD_DATABASE_URL = "postgresql://u@db:5432/x",
      HERALD_REDIS_URL = "redis://cache:6379/2",
      HERALD_WORKERS = "3",
      HERALD_RETRY_SCALE = "0.001",
      HERALD_ALLOW_DEV_KEYS = "false",
    })
    assert.are.equal("0.0.0.0:9999", c.http.listen)
    assert.are.equal("https://herald.example.com", c.http.public_url)
    assert.are.equal("postgresql://u@db:5432/x", c.database.url)
    assert.are.equal("redis://cache:6379/2", c.redis.url)
    assert.are.equal("3", c.engine.workers)
    assert.are.equal("0.001", c.engine.retry_scale)
    assert.is_false(c.auth.allow_dev_keys)
  end)

  it("holds no secret", function()
    local function walk(t, path)
      for k, v in pairs(t) do
        local p = path .. "." .. k
        assert.is_nil(string.find(k, "secret"), p)
        assert.is_nil(string.find(k, "password"), p)
        if type(v) == "table" then walk(v, p) end
      end
    end
    walk(load_config({}), "config")
  end)
end)
