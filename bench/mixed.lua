-- wrk script for bench/mixed.sh: each request POSTs a body drawn at random from the file named
-- by $BODIES (one JSON request body per line), seeded by $SEED and the thread's number, and
-- the run ends with one line: RESULT req/s p50_ms p99_ms errors requests.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("number", counter)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(os.getenv("BODIES")) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  math.randomseed(tonumber(os.getenv("SEED") or "1") * 1000 + number)
  headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
end

function request()
  return wrk.format("POST", nil, headers, bodies[math.random(#bodies)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status + e.connect + e.read + e.write + e.timeout, summary.requests))
end
