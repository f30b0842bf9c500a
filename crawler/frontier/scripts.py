"""Every Lua script the frontier runs on Redis, in one place.

Each script is one round trip and atomic. Times are on Redis's clock (the workers' clocks need
not agree). The frontier is one Redis server, not a cluster: some scripts build key names from
their arguments.
"""

# Queue a serialized request unless its fingerprint is in the seen-set.
# KEYS: queue (sorted set), seen-set, host turns (hash). ARGV: -priority, data, fingerprint
# ("" for none), host.
# The score: the priority's rank, then the request's turn among its host's (exact in a double
# up to 2^53: 9e6 requests per host at 1e9 priority steps).
PUSH = """
if ARGV[3] ~= '' and redis.call('SADD', KEYS[2], ARGV[3]) == 0 then return 0 end
local turn = redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) * 1e9 + turn, ARGV[2])
return 1
"""

# Take the first request, taken-back ones before the queue's, into this worker's in-flight hash,
# and mark the worker busy. In-flight hashes hold "<score> <serialized request>" so a taken-back
# request keeps its priority.
# KEYS: recovered, queue, this worker's in-flight hash, busy. ARGV: lease, worker, busy TTL.
POP = """
local from, recovered = KEYS[1], 1
local top = redis.call('ZRANGE', from, 0, 0, 'WITHSCORES')
if #top == 0 then
  from, recovered = KEYS[2], 0
  top = redis.call('ZRANGE', from, 0, 0, 'WITHSCORES')
  if #top == 0 then return false end
end
redis.call('ZREM', from, top[1])
redis.call('HSET', KEYS[3], ARGV[1], top[2] .. ' ' .. top[1])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], tonumber(t[1]) + tonumber(ARGV[3]), ARGV[2])
return {top[1], recovered}
"""

# Member ARGV[1] of sorted set KEYS[1] counts until ARGV[2] seconds from now.
UNTIL = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# Put the in-flight requests of workers whose heartbeat ran out into `recovered`, and count the
# work left: {queued, busy others, in flight at live others, recovered now}.
# KEYS: workers, busy, queue, recovered. ARGV: this worker, in-flight key prefix, idle ("1"/"0").
SWEEP = """
local t = redis.call('TIME')
local now = tonumber(t[1])
local recovered = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if worker ~= ARGV[1] then
    local held = ARGV[2] .. worker
    for _, entry in ipairs(redis.call('HVALS', held)) do
      local space = string.find(entry, ' ', 1, true)
      redis.call('ZADD', KEYS[4], string.sub(entry, 1, space - 1), string.sub(entry, space + 1))
      recovered = recovered + 1
    end
    redis.call('DEL', held)
    redis.call('ZREM', KEYS[1], worker)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if ARGV[3] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
local in_flight = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if worker ~= ARGV[1] then in_flight = in_flight + redis.call('HLEN', ARGV[2] .. worker) end
end
local busy = redis.call('ZCARD', KEYS[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then busy = busy - 1 end
return {redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]), busy, in_flight, recovered}
"""

# Not busy any more; off the heartbeat list unless requests are still held.
# KEYS: busy, workers, this worker's in-flight hash. ARGV: worker.
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[3]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"""

# The "requested once" claims of a page's URLs: membership, limit and insert decided together
# for each, so two workers racing for the same URL (or the last page under the limit) cannot
# both win. Per URL: 1 new, 0 seen, -1 over the limit.
# KEYS: the claimed set. ARGV: limit (-1 for none), URL...
CLAIM = """
local limit = tonumber(ARGV[1])
local results = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then results[i - 1] = 0
  elseif limit >= 0 and redis.call('SCARD', KEYS[1]) >= limit then results[i - 1] = -1
  else redis.call('SADD', KEYS[1], ARGV[i]); results[i - 1] = 1 end
end
return results
"""

# Reserve a host's next free start time; returns how long this request waits, as a string
# (Redis turns Lua numbers into integers).
# KEYS: the host's next-start key. ARGV: delay in seconds.
RESERVE_HOST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local delay = tonumber(ARGV[1])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], string.format('%.6f', start + delay), 'PX', math.ceil((start - now + delay) * 1000) + 1000)
return string.format('%.6f', start - now)
"""
