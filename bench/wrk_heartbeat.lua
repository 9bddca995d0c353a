-- wrk script for bench.load's heartbeat-only scenario: node agents heartbeating, round robin over many nodes.
--   wrk -t2 -c16 -d8s -s bench/wrk_heartbeat.lua http://127.0.0.1:PORT -- TOKENS_FILE SEQ_BASE
-- TOKENS_FILE holds one node agent token (rsn_…) per line. Each thread numbers its heartbeats from its own
-- range above SEQ_BASE, so every (node, seq) is new: no request is a duplicate.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  base = tonumber(args[2]) + id * 1e10
  n = 0
end

function request()
  n = n + 1
  local token = tokens[((n + id * 7919) % #tokens) + 1]
  local body = string.format(
    '{"seq": %.0f, "status": "ok", "gpus": [{"index": 0, "utilisation": 0.5, "temperature_c": 65}], "leases": []}',
    base + n)
  return wrk.format("POST", "/api/v1/agent/heartbeat",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end

dofile(os.getenv("RIGSHIFT_WRK_REPORT") or "bench/wrk_report.lua")
