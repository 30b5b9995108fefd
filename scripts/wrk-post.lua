-- wrk script for scripts/bench_c1.py: POST WRK_BODY with the headers in
-- WRK_HEADERS ("name: value" lines), then print the run as one JSON line.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
for name, value in string.gmatch(os.getenv("WRK_HEADERS") or "", "([^:\n]+): ([^\n]*)") do
  wrk.headers[name] = value
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"errors":%d,"status":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"duration_us":%d}\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, summary.duration))
end
