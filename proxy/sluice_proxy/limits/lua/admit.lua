-- Admit one request against every limit that applies to it: all checks pass and are
-- charged together, or nothing is charged. Redis's own clock is the one clock, so
-- replicas with skewed clocks still share one window.
--
-- KEYS[i]  the key of check i
-- ARGV     id, reserved_tokens (-1: only report, charge nothing), then per check:
--          kind, limit, window_ms
--   r  sliding log: sorted set of admission ids scored by admission time (ms)
--   t  sliding window of charged tokens: hash unix-second -> tokens charged in it
--   c  concurrency: sorted set of admission ids scored by lease end (ms)
--   b  budget: field spend_micro of the period's usage hash; window_ms = ms to period end
-- Returns {rejected check index or 0, now_ms, used_1, reset_ms_1, used_2, reset_ms_2, ...}

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local second = math.floor(now / 1000)
local id = ARGV[1]
local reserved = tonumber(ARGV[2])
local result = {0, now}
local rejected = 0

for i, key in ipairs(KEYS) do
  local kind = ARGV[3 * i]
  local limit = tonumber(ARGV[3 * i + 1])
  local window = tonumber(ARGV[3 * i + 2])
  local used, reset = 0, 0
  if kind == 'r' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    used = redis.call('ZCARD', key)
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  elseif kind == 't' then
    local seconds = math.floor(window / 1000)
    local first = second - seconds + 1
    local fields = redis.call('HGETALL', key)
    local oldest = nil
    for j = 1, #fields, 2 do
      local bucket = tonumber(fields[j])
      if bucket < first then
        redis.call('HDEL', key, fields[j])
      else
        local tokens = tonumber(fields[j + 1])
        used = used + tokens
        if tokens > 0 and (oldest == nil or bucket < oldest) then oldest = bucket end
      end
    end
    if used < 0 then used = 0 end
    if oldest then reset = (oldest + seconds) * 1000 - now end
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    used = redis.call('ZCARD', key)
  elseif kind == 'b' then
    used = tonumber(redis.call('HGET', key, 'spend_micro') or '0')
    reset = window
  end
  if rejected == 0 and used >= limit then rejected = i end
  result[2 * i + 1] = used
  result[2 * i + 2] = reset
end

result[1] = rejected
if rejected > 0 or reserved < 0 then return result end

for i, key in ipairs(KEYS) do
  local kind = ARGV[3 * i]
  local window = tonumber(ARGV[3 * i + 2])
  if kind == 'r' then
    redis.call('ZADD', key, now, id)
    redis.call('PEXPIRE', key, window)
  elseif kind == 't' then
    if reserved > 0 then redis.call('HINCRBY', key, second, reserved) end
    redis.call('PEXPIRE', key, window + 1000)
  elseif kind == 'c' then
    redis.call('ZADD', key, now + window, id)
    redis.call('PEXPIRE', key, window)
  end
end
return result
