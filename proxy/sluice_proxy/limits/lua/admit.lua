-- Admit one request against every limit that applies to it: all checks pass and are
-- charged together, or nothing is charged. Redis's own clock is the one clock, so
-- replicas with skewed clocks still share one window.
--
-- KEYS[i]  the key of check i
-- ARGV     id, reserved_tokens (-1: only report, charge nothing), then per check:
--          kind, limit, window_ms
--   r  requests, t  tokens: a sliding window of one-second buckets, a hash of
--      unix-second -> amount charged in it, plus 'sum' (the amount in the window) and
--      'tail' (the oldest second still holding a charge); requests charge 1, tokens the
--      reservation
--   c  concurrency: sorted set of admission ids scored by lease end (ms)
--   b  budget: field spend_micro of the period's usage hash; window_ms = ms to period end
-- Returns {rejected check index or 0, now_ms, used_1, reset_ms_1, used_2, reset_ms_2, ...}
--
-- Each redis.call costs about as much as the command itself, so the common path of a
-- window is one HMGET and two HINCRBYs; buckets leave the window in a recount that runs
-- at most once a second per key.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local second = math.floor(now / 1000)
local id = ARGV[1]
local reserved = tonumber(ARGV[2])
local result = {0, now}
local rejected = 0

-- The amount charged in the window ending this second, and ms until it next drops.
local function window_used(key, seconds)
  local first = second - seconds + 1
  local state = redis.call('HMGET', key, 'sum', 'tail')
  local sum, tail = tonumber(state[1]), tonumber(state[2])
  if sum == nil or tail == nil or tail < first then
    -- Recount: drop the buckets that left the window, total the rest.
    local fields = redis.call('HGETALL', key)
    if #fields == 0 then return 0, 0 end  -- no key: writing state now would outlive it
    local stale = {}
    sum, tail = 0, nil
    for j = 1, #fields, 2 do
      local bucket = tonumber(fields[j])
      if bucket then
        if bucket < first then
          stale[#stale + 1] = fields[j]
        else
          local amount = tonumber(fields[j + 1])
          sum = sum + amount
          if amount > 0 and (tail == nil or bucket < tail) then tail = bucket end
        end
      end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if sum < 0 then sum = 0 end
    -- With nothing charged, 'tail' is this second: no recount until a charge ages out.
    redis.call('HSET', key, 'sum', sum, 'tail', tail or second)
    if tail == nil then return sum, 0 end
  end
  if sum <= 0 then return 0, 0 end
  return sum, (tail + seconds) * 1000 - now
end

for i, key in ipairs(KEYS) do
  local kind = ARGV[3 * i]
  local limit = tonumber(ARGV[3 * i + 1])
  local window = tonumber(ARGV[3 * i + 2])
  local used, reset = 0, 0
  if kind == 'r' or kind == 't' then
    used, reset = window_used(key, math.floor(window / 1000))
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
  local amount = 0
  if kind == 'r' then amount = 1 elseif kind == 't' then amount = reserved end
  if amount > 0 then
    -- A bucket's first charge keeps the key one window past it; later ones need not.
    if redis.call('HINCRBY', key, second, amount) == amount then
      redis.call('PEXPIRE', key, window + 1000)
    end
    redis.call('HINCRBY', key, 'sum', amount)
  elseif kind == 'c' then
    redis.call('ZADD', key, now + window, id)
    redis.call('PEXPIRE', key, window)
  end
end
return result
