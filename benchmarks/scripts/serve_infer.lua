-- wrk script for `benchmarks/scripts/serve_bench.py`: POSTs one KServe v2 infer request body,
-- read from the file in EDGEGEN_BODY (made by serve_bench.py: JSON, or a JSON header plus
-- binary tensor data), to EDGEGEN_PATH; EDGEGEN_HEADER_LENGTH, when set, is the binary
-- extension's Inference-Header-Content-Length. At the end it prints one line
-- "EDGEGEN_RESULT {json}" with the counts and latency percentiles (microseconds) that the
-- script reads; wrk's own text report stays above it for a human.
local body_file = assert(os.getenv("EDGEGEN_BODY"), "set EDGEGEN_BODY")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.path = os.getenv("EDGEGEN_PATH") or "/v2/models/cdcgan/infer"
local header_length = os.getenv("EDGEGEN_HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = header_length
else
  wrk.headers["Content-Type"] = "application/json"
end

-- per-thread status counts (wrk counts non-2xx/3xx only as one number)
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, s503, other = 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    s503 = s503 + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local n200, n503, nother = 0, 0, 0
  for _, t in ipairs(threads) do
    n200 = n200 + (t:get("ok") or 0)
    n503 = n503 + (t:get("s503") or 0)
    nother = nother + (t:get("other") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'EDGEGEN_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "status_200": %d, ' ..
    '"status_503": %d, "status_other": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, n200, n503, nother, e.connect,
    e.read, e.write, e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
