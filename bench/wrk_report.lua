-- wrk script for bench.load: prints one line of name=value figures when the run is done.
-- Used alone (the floor: GET /healthz/live) and by wrk_heartbeat.lua.
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "wrk_requests=%d wrk_non2xx=%d wrk_socket_errors=%d wrk_duration_s=%.3f wrk_p50_ms=%.2f wrk_p99_ms=%.2f\n",
    summary.requests, summary.errors.status, errors, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
