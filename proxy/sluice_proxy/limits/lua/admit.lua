-- Admit the requests of one tenant and route that arrived in the same event-loop tick, in
-- order, as if each had run alone: a request passes every check and is charged on all of
-- them, or is charged nothing. Redis's own clock is the one clock, so replicas with skewed
-- clocks still share one window. One call for the tick's requests reads each limit once.
--
-- KEYS[i]  the key of check i
-- ARGV     per check: kind, limit, window_ms; then per request: id, reserved_tokens
--          (-1: only report, charge nothing)
--   r  requests, t  tokens: a sliding window of one-second buckets, a hash of
--      unix-second -> amount charged in it, plus 'sum' (the amount in the window) and
--      'tail' (the oldest second still holding a charge); requests charge 1, tokens the
--      reservation
--   c  concurrency: sorted set of admission ids scored by lease end (ms)
--   b  budget: field spend_micro of the period's usage hash; window_ms = ms to period end
-- Returns {now_ms, then per request: verdict, used_1, ..., used_n, reset_ms_1, ..., reset_ms_n}:
-- a verdict is 0 for an admitted request, else the index of the first check that refused it;
-- used and reset are what the request found, after the charges of the requests before it.
--
-- Each redis.call costs about as much as the command itself, so the common path of a
-- window is one HMGET and two HINCRBYs per call, however many requests it admits; buckets
-- leave the window in a recount that runs at most once a second per key.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local second = math.floor(now / 1000)
local n = #KEYS
local k = (#ARGV - 3 * n) / 2
local result = {now}

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

local kinds, limits, windows, used, resets = {}, {}, {}, {}, {}
for i, key in ipairs(KEYS) do
  local kind = ARGV[3 * i - 2]
  local limit = tonumber(ARGV[3 * i - 1])
  local window = tonumber(ARGV[3 * i])
  local reset = 0
  if kind == 'r' or kind == 't' then
    used[i], reset = window_used(key, math.floor(window / 1000))
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    used[i] = redis.call('ZCARD', key)
  else
    used[i] = tonumber(redis.call('HGET', key, 'spend_micro') or '0')
    reset = window
  end
  kinds[i], limits[i], windows[i], resets[i] = kind, limit, window, reset
end

local charged, admitted = {}, {}
for i = 1, n do charged[i] = 0 end
for j = 1, k do
  local reserved = tonumber(ARGV[3 * n + 2 * j])
  local verdict = 0
  for i = 1, n do
    if used[i] + charged[i] >= limits[i] then verdict = i break end
  end
  local at = 1 + (j - 1) * (2 * n + 1)
  result[at + 1] = verdict
  for i = 1, n do
    result[at + 1 + i] = used[i] + charged[i]
    result[at + 1 + n + i] = resets[i]
  end
  if verdict == 0 and reserved >= 0 then
    admitted[#admitted + 1] = ARGV[3 * n + 2 * j - 1]
    for i = 1, n do
      local kind, amount = kinds[i], 0
      if kind == 'r' or kind == 'c' then amount = 1
      elseif kind == 't' then amount = reserved end
      if amount > 0 then
        if used[i] + charged[i] <= 0 and kind ~= 'c' then
          -- The window was empty: this charge is its oldest now, from this second.
          resets[i] = second * 1000 + windows[i] - now
        end
        charged[i] = charged[i] + amount
      end
    end
  end
end

for i, key in ipairs(KEYS) do
  local kind, window, amount = kinds[i], windows[i], charged[i]
  if amount > 0 and (kind == 'r' or kind == 't') then
    -- A bucket's first charge keeps the key one window past it; later ones need not.
    if redis.call('HINCRBY', key, second, amount) == amount then
      redis.call('PEXPIRE', key, window + 1000)
    end
    redis.call('HINCRBY', key, 'sum', amount)
  elseif amount > 0 and kind == 'c' then
    local members = {}
    for j, id in ipairs(admitted) do
      members[2 * j - 1] = now + window
      members[2 * j] = id
    end
    redis.call('ZADD', key, unpack(members))
    redis.call('PEXPIRE', key, window)
  end
end
return result
