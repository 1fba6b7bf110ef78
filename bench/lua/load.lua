-- One wrk script for every scenario of the bench suite (bench/suite/wrk.py writes the plan).
--
--   wrk -t T -c C -d 8s -s bench/lua/load.lua http://127.0.0.1:8000 -- PLAN_FILE T
--
-- The plan file has one tab-separated entry per line:
--   method <GET|POST|PUT>       body <format with one %d: a number unique per request>
--   token <access token>        (rotated per request; none: no Authorization header)
--   path <path>                 (rotated per request)
--   value <v>                   item <path> <start> <payload>: instead of paths, requests
--   itembody <format>           rotate over the items (split between threads, so no two
--                               threads send the same item); visit v of an item sends the
--                               itembody with $VALUE = values[start + v] and $PAYLOAD = the
--                               item's payload, so each visit changes what it sets
--                               (assign: the assignee of a ticket; bulk: the priority of
--                               100 tickets)
-- done() prints one line `BENCH_JSON {...}` with the counts and latencies (microseconds).

local threads = {}
local created = 0

function setup(thread)
   thread:set("thread_id", created)
   created = created + 1
   table.insert(threads, thread)
end

local method = "GET"
local body_format = nil
local item_body = nil
local tokens, paths, values, items = {}, {}, {}, {}
local thread_total = 1
local counter = 0
statuses = {} -- global: done() collects it from each thread with thread:get

function init(args)
   thread_total = tonumber(args[2]) or 1
   local item_index = 0
   for line in io.lines(args[1]) do
      local kind, first, second = line:match("^([^\t]+)\t([^\t]*)\t?(.*)$")
      if kind == "method" then
         method = first
      elseif kind == "body" then
         body_format = first
      elseif kind == "token" then
         tokens[#tokens + 1] = first
      elseif kind == "path" then
         paths[#paths + 1] = first
      elseif kind == "itembody" then
         item_body = first
      elseif kind == "value" then
         values[#values + 1] = first
      elseif kind == "item" then
         -- Each thread takes its own share, so no two threads change the same tickets.
         if item_index % thread_total == thread_id then
            local start, payload = second:match("^([^\t]*)\t?(.*)$")
            items[#items + 1] = { path = first, start = tonumber(start), payload = payload }
         end
         item_index = item_index + 1
      end
   end
end

function request()
   counter = counter + 1
   local headers = {}
   if #tokens > 0 then
      headers["Authorization"] = "Bearer " .. tokens[(counter + thread_id) % #tokens + 1]
   end
   if #items > 0 then
      local k = counter - 1
      local item = items[k % #items + 1]
      local visit = math.floor(k / #items)
      local value = values[(item.start + visit) % #values + 1]
      local body = item_body:gsub("%$VALUE", function() return value end)
      body = body:gsub("%$PAYLOAD", function() return item.payload end)
      headers["Content-Type"] = "application/json"
      return wrk.format(method, item.path, headers, body)
   end
   local path = paths[((counter - 1) * thread_total + thread_id) % #paths + 1]
   local body = nil
   if body_format then
      headers["Content-Type"] = "application/json"
      body = string.format(body_format, thread_id * 1000000000 + counter)
   end
   return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
   if status >= 300 then
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local merged = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      if counts then
         for status, n in pairs(counts) do
            merged[status] = (merged[status] or 0) + n
         end
      end
   end
   local parts = {}
   for status, n in pairs(merged) do
      parts[#parts + 1] = string.format('"%d":%d', status, n)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f,"mean":%.1f},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"statuses":{%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(parts, ",")))
end
