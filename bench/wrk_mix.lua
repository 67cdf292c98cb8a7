-- wrk script for bench/load.py: every request is one API v2 call of a random customer, an
-- `add` (a link of its own), a `status` of 20 of that customer's orders or `services`, in
-- the proportions of $WRK_MIX. $WRK_CLIENTS is "key:id,id,…;key:id,…", $WRK_ADD the rest
-- of an add's form ("service=…&quantity=…"). Replies that are not HTTP 200 or carry an
-- API "error" are counted; done() prints the counts and the latency percentiles.
local clients = {}
for entry in (os.getenv("WRK_CLIENTS") or ""):gmatch("[^;]+") do
  local key, ids = entry:match("([^:]+):(.*)")
  table.insert(clients, {key = key, ids = ids})
end
local add_form = os.getenv("WRK_ADD") or ""
local mix = {}
for weight in (os.getenv("WRK_MIX") or "0.3,0.5,0.2"):gmatch("[^,]+") do
  table.insert(mix, tonumber(weight))
end
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  math.randomseed(os.time() + tid)
  sent, adds, statuses, listings, bad, sample = 0, 0, 0, 0, 0, ""
end

function request()
  sent = sent + 1
  local client = clients[math.random(#clients)]
  local roll = math.random()
  local body
  if roll < mix[1] then
    adds = adds + 1
    body = "action=add&key=" .. client.key .. "&" .. add_form ..
           "&link=https%3A%2F%2Finstagram.com%2Fp%2Fload-" .. tid .. "-" .. sent
  elseif roll < mix[1] + mix[2] then
    statuses = statuses + 1
    body = "action=status&key=" .. client.key .. "&orders=" .. client.ids
  else
    listings = listings + 1
    body = "action=services&key=" .. client.key
  end
  return wrk.format("POST", "/api/v2", headers, body)
end

function response(status, headers, reply)
  if status ~= 200 or reply:sub(1, 9) == '{"error":' then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. reply:sub(1, 200) end
  end
end

function done(summary, latency, requests)
  local totals = {adds = 0, statuses = 0, listings = 0, bad = 0}
  local sample_any = ""
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
    if sample_any == "" then sample_any = thread:get("sample") end
  end
  io.write(string.format("MIX add=%d status=%d services=%d\n", totals.adds, totals.statuses,
                         totals.listings))
  io.write(string.format("LATENCY_MS p50=%.1f p90=%.1f p99=%.1f max=%.1f\n",
                         latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                         latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("BAD %d %s\n", totals.bad, sample_any))
end
