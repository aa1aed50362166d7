-- The benchmark's requests, for wrk:
--   wrk -t1 -cN -dD -s bench/wrk.lua URL -- SERVER WORKLOAD RUN TOKENS MESSAGES HASH
-- SERVER is favgate or baseline; WORKLOAD one of chat, message, set, persisted, page; RUN
-- a number (0-999) unique to this wrk run; TOKENS a file of tokens, one a line, used in
-- turn; MESSAGES how many messages the instance "bench" has (MSG0000, MSG0001, ...);
-- HASH the sha256 of setFavorite's document as bench/measure.py registers it (persisted
-- sends the hash alone, as Apollo's persisted queries do once a document is known).
--
-- Chat favorites name a new chat every time ("55" .. RUN .. counter), so that each one is
-- a real upsert. Message favorites go round the messages, favoriting them on the first
-- pass, unfavoriting them on the second, and so on: each one changes the record.
-- done() prints one line "BENCH-JSON {...}" that bench/measure.py reads.

local server, workload, run, messages, hash
local tokens = {}
local counter = 0

local SET = 'mutation Set($n: String!) { setFavorite(instance: \\"bench\\", number: $n, '
  .. 'favorite: true) { success message chatJid messageId favorite type } }'
local PAGE = 'query { favorites(instance: \\"pages\\", first: 20) { '
  .. 'edges { node { id chatJid messageId favoritedAt message { id text fromMe } } } '
  .. 'pageInfo { hasNextPage endCursor } } }'

local function number()
  return string.format("55%03d%09d", run, counter)
end

local function message_body()
  local index = (counter - 1) % messages
  local pass = math.floor((counter - 1) / messages)
  local favorite = (pass % 2 == 0) and "true" or "false"
  return string.format('{"messageId": "MSG%04d", "favorite": %s}', index, favorite)
end

-- path and body of each workload, per server
local requests = {
  favgate = {
    chat = function()
      return "/api/chat/favorite/bench", '{"number": "' .. number() .. '", "favorite": true}'
    end,
    message = function() return "/api/chat/favorite/bench", message_body() end,
    set = function()
      return "/graphql", '{"query": "' .. SET .. '", "variables": {"n": "' .. number() .. '"}}'
    end,
    persisted = function()
      return "/graphql", '{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "'
        .. hash .. '"}}, "variables": {"n": "' .. number() .. '"}}'
    end,
    page = function() return "/graphql", '{"query": "' .. PAGE .. '"}' end,
  },
  baseline = {
    chat = function()
      return "/chat/bench", '{"number": "' .. number() .. '", "favorite": true}'
    end,
    message = function() return "/message/bench", message_body() end,
    set = function()
      return "/chat/bench", '{"number": "' .. number() .. '", "favorite": true}'
    end,
    persisted = function()
      return "/chat/bench", '{"number": "' .. number() .. '", "favorite": true}'
    end,
    page = function() return "/page/pages", "{}" end,
  },
}

function init(args)
  server, workload = args[1], args[2]
  run, messages, hash = tonumber(args[3]), tonumber(args[5]), args[6]
  for line in io.lines(args[4]) do
    tokens[#tokens + 1] = line
  end
end

function request()
  counter = counter + 1
  local path, body = requests[server][workload]()
  local headers = {
    ["token"] = tokens[counter % #tokens + 1],
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout
  ))
end
