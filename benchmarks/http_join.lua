-- wrk script of benchmarks/http_join.py (the load generator when wrk is installed).
--
--   wrk -t1 -c64 -d12 -s benchmarks/http_join.lua URL -- hello OUT
--   wrk -t1 -c64 -d12 -s benchmarks/http_join.lua URL -- join OUT WORK TOKEN THREADS
--
-- hello: GET /api/v1/health. join: POST /api/v1/groups/join with {"customer_id", "invite_code",
-- "pay": {}}, one line of WORK ("customer_id invite_code") per request, every customer once, each
-- request with an Idempotency-Key of its own; the operator TOKEN acts for the customers. Every
-- thread writes OUT.<thread> (one JSON object per line: the pay paths of its orders, then its
-- counts) and done() writes OUT.summary (wrk's own figures and latency percentiles). A thread
-- stops sending at its first refusal for lack of stock (the campaign ends when its stock runs
-- out), like the Python generator; only the requests then in flight are refused after it.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } tuan_timespec;
int clock_gettime(int clk_id, tuan_timespec *tp);
]]
local ts = ffi.new("tuan_timespec")
local function now() -- CLOCK_MONOTONIC, seconds
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
local counter = 0
local sold_out = { out_of_stock = true, campaign_not_live = true, campaign_cap_reached = true }

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  mode, out_prefix = args[1], args[2]
  work, next_i = {}, 0
  ok, refused, exhausted = 0, 0, 0
  first, last_ok = 0, 0
  codes = {}
  if mode == "join" then
    local total = tonumber(args[5])
    local i = 0
    for line in io.lines(args[3]) do
      if i % total == id then
        local customer, code = line:match("^(%S+) (%S+)$")
        work[#work + 1] = '{"customer_id":"' .. customer .. '","invite_code":"' .. code
          .. '","pay":{}}'
      end
      i = i + 1
    end
    headers = {
      ["Authorization"] = "Bearer " .. args[4],
      ["Content-Type"] = "application/json",
    }
    paths = io.open(out_prefix .. "." .. id, "w")
  end
end

function request()
  if first == 0 then first = now() end
  if mode ~= "join" then
    return wrk.format("GET", "/api/v1/health")
  end
  next_i = next_i + 1
  local body = work[next_i]
  if body == nil then -- every customer has been sent: keep the connection busy, uncounted
    exhausted = exhausted + 1
    return wrk.format("GET", "/api/v1/health")
  end
  headers["Idempotency-Key"] = "w" .. id .. "-" .. next_i
  return wrk.format("POST", "/api/v1/groups/join", headers, body)
end

function response(status, hdrs, body)
  if mode ~= "join" then
    if status == 200 then ok = ok + 1 else refused = refused + 1 end
    return
  end
  if status == 201 then
    ok = ok + 1
    last_ok = now()
    local url = body:match('"pay_url":"([^"]+)"')
    paths:write((url and url:match("^https?://[^/]+(/.*)$") or "") .. "\n")
  elseif status ~= 200 then -- 200: the health requests sent once the customers ran out
    refused = refused + 1
    local code = body:match('"code":"([^"]+)"') or tostring(status)
    codes[code] = (codes[code] or 0) + 1
    if sold_out[code] then -- the stock ran out: stop, as the Python client does, so that the
      wrk.thread:stop()    -- phase's server CPU is the joins' and not seconds of refusals
    end
  end
end

function done(summary, latency, requests)
  local f = io.open(threads[1]:get("out_prefix") .. ".summary", "w") -- init ran in threads
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "threads": [',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
  for i, t in ipairs(threads) do
    local parts = {}
    for k, v in pairs(t:get("codes") or {}) do
      parts[#parts + 1] = string.format('"%s": %d', k, v)
    end
    f:write(string.format(
      '%s{"ok": %d, "refused": %d, "exhausted": %d, "first": %.6f, "last_ok": %.6f, ' ..
      '"codes": {%s}}',
      i > 1 and ", " or "", t:get("ok"), t:get("refused"), t:get("exhausted"),
      t:get("first"), t:get("last_ok"), table.concat(parts, ", ")))
  end
  f:write("]}\n")
  f:close()
end
