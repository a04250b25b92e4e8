-- Settle the admitted requests of one tenant and route that finished in the same event-loop
-- tick, in order, as if each had run alone: reconcile each token reservation with real
-- usage, free the concurrency slots, and add usage and spend to the day and month usage
-- hashes. One call writes each key once, however many requests it settles.
--
-- KEYS     token windows (n_tokens), concurrency keys (n_slots), usage hashes (the rest)
-- ARGV     n_tokens, n_slots, window_ms, expires_at... (one Unix second per usage hash, in
--          KEYS order), then one argument per request: "id admitted_ms delta_tokens
--          spend_micro input_tokens output_tokens cached_input_tokens", space-separated (one
--          string is cheaper for the caller to encode than seven; what is fixed for a tenant
--          and route comes first, so callers can pack it once)
-- Returns  the new spend_micro of each usage hash, in KEYS order, after the last request.
-- A token window is the hash admit.lua keeps: unix-second buckets plus 'sum' and 'tail'.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local n_tokens = tonumber(ARGV[1])
local n_slots = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local n_usage = #KEYS - n_tokens - n_slots
local base = 3 + n_usage
local k = #ARGV - base
local ids, admitted_at, deltas, amounts = {}, {}, {}, {}
for j = 1, k do
  local id, admitted, delta, spend, input, output, cached =
    string.match(ARGV[base + j], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  ids[j], admitted_at[j], deltas[j] = id, tonumber(admitted), tonumber(delta)
  amounts[j] = {tonumber(spend), tonumber(input), tonumber(output), tonumber(cached)}
end
local second = math.floor(now / 1000)
local oldest = second - window / 1000

for i = 1, n_tokens do
  local key = KEYS[i]
  local change, held = {}, {}  -- per second: the net change to write, what the bucket holds
  for j = 1, k do
    local delta = deltas[j]
    if delta > 0 then
      -- Usage beyond the reservation counts from now: it was spent during the response.
      change[second] = (change[second] or 0) + delta
      if held[second] then held[second] = held[second] + delta end
    elseif delta < 0 then
      -- Refund an over-reservation where it was charged, while it still counts, and never
      -- more than that second holds.
      local admitted = math.floor(admitted_at[j] / 1000)
      if admitted > oldest then
        local holds = held[admitted]
        if holds == nil then
          holds = tonumber(redis.call('HGET', key, admitted) or '0') + (change[admitted] or 0)
        end
        local refund = math.min(holds, -delta)
        if refund > 0 then change[admitted] = (change[admitted] or 0) - refund end
        held[admitted] = holds - math.max(refund, 0)
      end
    end
  end
  local total = 0
  for at, amount in pairs(change) do
    if amount ~= 0 then
      -- A bucket's first charge keeps the key one window past it.
      if redis.call('HINCRBY', key, at, amount) == amount and amount > 0 then
        redis.call('PEXPIRE', key, window + 1000)
      end
      total = total + amount
    end
  end
  if total ~= 0 then redis.call('HINCRBY', key, 'sum', total) end
end

if n_slots > 0 then
  for i = n_tokens + 1, n_tokens + n_slots do
    redis.call('ZREM', KEYS[i], unpack(ids))
  end
end

local fields = {'spend_micro', 'input_tokens', 'output_tokens', 'cached_input_tokens'}
local sums = {0, 0, 0, 0}
for j = 1, k do
  for f = 1, 4 do sums[f] = sums[f] + amounts[j][f] end
end
local spend = {}
for i = 1, n_usage do
  local key = KEYS[n_tokens + n_slots + i]
  -- A usage hash lives to its period's end plus retention: set once, when it is made.
  if redis.call('HINCRBY', key, 'requests', k) == k then redis.call('EXPIREAT', key, ARGV[3 + i]) end
  spend[i] = redis.call('HINCRBY', key, 'spend_micro', sums[1])
  for f = 2, 4 do
    if sums[f] ~= 0 then redis.call('HINCRBY', key, fields[f], sums[f]) end
  end
end
return spend
