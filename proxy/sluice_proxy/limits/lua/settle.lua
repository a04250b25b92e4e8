-- Settle one admitted request: reconcile its token reservation with real usage, free its
-- concurrency slots, and add its usage and spend to the day and month usage hashes.
--
-- KEYS     token keys (n_tokens), concurrency keys (n_slots), usage hashes (the rest)
-- ARGV     id, admitted_ms, n_tokens, n_slots, delta_tokens, window_ms, usage_ttl_s...,
--          spend_micro, input_tokens, output_tokens, cached_input_tokens
--          (one usage_ttl_s per usage hash, in KEYS order)
-- Returns  the new spend_micro of each usage hash, in KEYS order.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local id = ARGV[1]
local admitted_second = math.floor(tonumber(ARGV[2]) / 1000)
local n_tokens = tonumber(ARGV[3])
local n_slots = tonumber(ARGV[4])
local delta = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local second = math.floor(now / 1000)
local n_usage = #KEYS - n_tokens - n_slots
local base = 6 + n_usage

for i = 1, n_tokens do
  local key = KEYS[i]
  if delta > 0 then
    -- Usage beyond the reservation counts from now: it was spent during the response.
    redis.call('HINCRBY', key, second, delta)
    redis.call('PEXPIRE', key, window + 1000)
  elseif delta < 0 and admitted_second > second - window / 1000 then
    -- Refund an over-reservation where it was charged, while it still counts.
    local charged = tonumber(redis.call('HGET', key, admitted_second) or '0')
    local refund = math.min(charged, -delta)
    if refund > 0 then redis.call('HINCRBY', key, admitted_second, -refund) end
  end
end

for i = n_tokens + 1, n_tokens + n_slots do
  redis.call('ZREM', KEYS[i], id)
end

local spend = {}
for i = 1, n_usage do
  local key = KEYS[n_tokens + n_slots + i]
  spend[i] = redis.call('HINCRBY', key, 'spend_micro', ARGV[base + 1])
  redis.call('HINCRBY', key, 'input_tokens', ARGV[base + 2])
  redis.call('HINCRBY', key, 'output_tokens', ARGV[base + 3])
  redis.call('HINCRBY', key, 'cached_input_tokens', ARGV[base + 4])
  redis.call('HINCRBY', key, 'requests', 1)
  redis.call('EXPIRE', key, ARGV[6 + i])
end
return spend
