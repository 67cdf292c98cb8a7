-- wrk script for bench/api.py: POST the form body in $WRK_BODY, each "{n}" replaced by a
-- number unique to the request (so every `add` orders a link of its own), as a TLS proxy
-- would forward it (X-Forwarded-Proto). Replies that are not HTTP 200 or that carry an API
-- "error" are counted and printed at the end: a fast wrong reply must not count as speed.
local body = os.getenv("WRK_BODY") or ""
local threads = {}
local headers = {["Content-Type"] = "application/x-www-form-urlencoded",
                 ["X-Forwarded-Proto"] = "https"}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  sent = 0
  bad = 0
  sample = ""
end

function request()
  sent = sent + 1
  local filled = body:gsub("{n}", tid .. "-" .. sent)
  return wrk.format("POST", nil, headers, filled)
end

function response(status, headers, reply)
  if status ~= 200 or reply:find('"error"', 1, true) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. reply:sub(1, 200) end
  end
end

function done(summary, latency, requests)
  local bad_total, sample_any = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    if sample_any == "" then sample_any = thread:get("sample") end
  end
  io.write(string.format("BAD %d %s\n", bad_total, sample_any))
end
