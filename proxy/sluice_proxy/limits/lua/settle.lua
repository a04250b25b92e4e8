-- Settle one admitted request: reconcile its token reservation with real usage, free its
-- concurrency slots, and add its usage and spend to the day and month usage hashes.
--
-- KEYS     token windows (n_tokens), concurrency keys (n_slots), usage hashes (the rest)
-- ARGV     n_tokens, n_slots, window_ms, expires_at... (one Unix second per usage hash, in
--          KEYS order), then id, admitted_ms, delta_tokens, spend_micro, input_tokens,
--          output_tokens, cached_input_tokens
--          (what is fixed for a tenant and route comes first, so callers can pack it once)
-- Returns  the new spend_micro of each usage hash, in KEYS order.
-- A token window is the hash admit.lua keeps: unix-second buckets plus 'sum' and 'tail'.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local n_tokens = tonumber(ARGV[1])
local n_slots = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local n_usage = #KEYS - n_tokens - n_slots
local base = 3 + n_usage
local id = ARGV[base + 1]
local admitted_second = math.floor(tonumber(ARGV[base + 2]) / 1000)
local delta = tonumber(ARGV[base + 3])
local second = math.floor(now / 1000)

for i = 1, n_tokens do
  local key = KEYS[i]
  if delta > 0 then
    -- Usage beyond the reservation counts from now: it was spent during the response.
    if redis.call('HINCRBY', key, second, delta) == delta then
      redis.call('PEXPIRE', key, window + 1000)
    end
    redis.call('HINCRBY', key, 'sum', delta)
  elseif delta < 0 and admitted_second > second - window / 1000 then
    -- Refund an over-reservation where it was charged, while it still counts.
    local charged = tonumber(redis.call('HGET', key, admitted_second) or '0')
    local refund = math.min(charged, -delta)
    if refund > 0 then
      redis.call('HINCRBY', key, admitted_second, -refund)
      redis.call('HINCRBY', key, 'sum', -refund)
    end
  end
end

for i = n_tokens + 1, n_tokens + n_slots do
  redis.call('ZREM', KEYS[i], id)
end

local fields = {'spend_micro', 'input_tokens', 'output_tokens', 'cached_input_tokens'}
local spend = {}
for i = 1, n_usage do
  local key = KEYS[n_tokens + n_slots + i]
  -- A usage hash lives to its period's end plus retention: set once, when it is made.
  if redis.call('HINCRBY', key, 'requests', 1) == 1 then redis.call('EXPIREAT', key, ARGV[3 + i]) end
  spend[i] = redis.call('HINCRBY', key, 'spend_micro', ARGV[base + 4])
  for f = 2, 4 do
    local amount = ARGV[base + 3 + f]
    if amount ~= '0' then redis.call('HINCRBY', key, fields[f], amount) end
  end
end
return spend
