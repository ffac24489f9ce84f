"""The Lua scripts that keep every node's limits in Redis (docs/ARCHITECTURE.md "Several edge
nodes"). Redis runs a script whole, with nothing in between, so each check-and-charge is atomic
across every node: N nodes allow exactly the limit, not N times it.

The keys of one API key (its buckets, its budget account and its reservations) share a hash tag,
so each script touches one Redis Cluster slot. Times are the calling node's Unix seconds; a
bucket's clock only moves forward, so a node whose clock lags refills nothing until it catches up
(nodes keep NTP time; a lag of a second shifts a minute's bucket by a second).

**Buckets** (``…:rpm``, ``…:tpm``): a hash ``level``/``ts``/``cap``, refilled continuously at
``cap`` a minute; a change of ``cap`` (the admin changed the key) starts a full bucket, as
``edge.limits.TokenBucket`` does. A bucket idle for two minutes is full again, so it expires then.

**Budget account** (``…:budget:PERIOD_START``): ``spent`` (settled tokens of the period) and
``reserved`` (tokens held by requests in flight), expiring a day after the period ends. It is
*seeded* once, from what PostgreSQL recorded for the period, by the admit that finds it missing:
the script sets it only if it still does not exist, so two nodes seeding at once, or a node
seeding again, never add the stored usage twice (LiteLLM #28247).

**Reservations** (``…:held:PERIOD_START``, a sorted set of reservation ids scored by when each
expires, and ``…:held-amounts:PERIOD_START``, id → tokens): a node renews the reservations of its
requests in flight; one that dies stops renewing, and each admit first frees what has expired,
so a dead node's reservations give their tokens back within the TTL instead of holding them
forever (LiteLLM #30460).
"""

from __future__ import annotations

# KEYS: rpm bucket, tpm bucket, budget account, reservations, reservation amounts, the
#       admission's marker.
# ARGV: now, rpm cap (0: none), tpm cap (0: none), tpm charge, budget (-1: none), budget charge,
#       reservation id, reservation expiry, account TTL (s), seed ('' : none given), marker TTL.
# Returns {code, wait s, rpm level, tpm level, budget left} (numbers as strings: Redis would
# truncate a Lua float). Codes: 0 admitted and charged, 1 requests short, 2 tokens short,
# 3 budget short, 4 the account must be seeded first (call again with the stored usage).
# An admission is charged once: the client sends the script again when a connection breaks
# after sending it, and the script may have run; its marker (kept ADMITTED_MARKER_TTL seconds)
# makes the second run answer "admitted" without charging again.
ADMIT = """
local now = tonumber(ARGV[1])
local rpm_cap, tpm_cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local tpm_charge, budget, charge = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local function bucket(name, cap)
  local v = redis.call('HMGET', name, 'level', 'ts', 'cap')
  local level, ts = tonumber(v[1]), tonumber(v[2])
  if level == nil or ts == nil or tonumber(v[3]) ~= cap then
    return cap, now
  end
  if now > ts then
    level = math.min(cap, level + (now - ts) * cap / 60)
    ts = now
  end
  return level, ts
end

local rpm_level, rpm_ts, tpm_level, tpm_ts
if rpm_cap > 0 then rpm_level, rpm_ts = bucket(KEYS[1], rpm_cap) end
if tpm_cap > 0 then tpm_level, tpm_ts = bucket(KEYS[2], tpm_cap) end

local function answer(code, wait, left)
  return {code, tostring(wait), tostring(rpm_level or ''), tostring(tpm_level or ''),
          tostring(left or '')}
end

if redis.call('EXISTS', KEYS[6]) == 1 then
  local left = nil
  if budget >= 0 then
    local v = redis.call('HMGET', KEYS[3], 'spent', 'reserved')
    left = budget - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0)
  end
  return answer(0, 0, left)
end

if rpm_cap > 0 and rpm_level < 1 then
  return answer(1, (1 - rpm_level) * 60 / rpm_cap)
end
if tpm_cap > 0 and tpm_level < tpm_charge then
  return answer(2, (tpm_charge - tpm_level) * 60 / tpm_cap)
end

local left = nil
if budget >= 0 then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    if ARGV[10] == '' then return answer(4, 0) end
    redis.call('HSET', KEYS[3], 'spent', ARGV[10], 'reserved', 0)
    redis.call('EXPIRE', KEYS[3], ARGV[9])
  end
  -- Reservations nobody renewed (their node died) give their tokens back, a bounded batch
  -- at a time.
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 500)
  if #expired > 0 then
    local amounts = redis.call('HMGET', KEYS[5], unpack(expired))
    local freed = 0
    for i = 1, #expired do freed = freed + (tonumber(amounts[i]) or 0) end
    redis.call('ZREM', KEYS[4], unpack(expired))
    redis.call('HDEL', KEYS[5], unpack(expired))
    redis.call('HINCRBY', KEYS[3], 'reserved', -freed)
  end
  local v = redis.call('HMGET', KEYS[3], 'spent', 'reserved')
  left = budget - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0)
  if charge > left then return answer(3, 0, left) end
end

if rpm_cap > 0 then
  rpm_level = rpm_level - 1
  redis.call('HSET', KEYS[1], 'level', rpm_level, 'ts', rpm_ts, 'cap', rpm_cap)
  redis.call('EXPIRE', KEYS[1], 120)
end
if tpm_cap > 0 then
  tpm_level = tpm_level - tpm_charge
  redis.call('HSET', KEYS[2], 'level', tpm_level, 'ts', tpm_ts, 'cap', tpm_cap)
  redis.call('EXPIRE', KEYS[2], 120)
end
if budget >= 0 then
  redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
  redis.call('HSET', KEYS[5], ARGV[7], charge)
  redis.call('HINCRBY', KEYS[3], 'reserved', charge)
  redis.call('EXPIRE', KEYS[4], ARGV[9])
  redis.call('EXPIRE', KEYS[5], ARGV[9])
  left = left - charge
end
redis.call('SET', KEYS[6], 1, 'EX', ARGV[11])
return answer(0, 0, left)
"""
ADMITTED_MARKER_TTL = 10  # seconds: a resend comes within the command timeout, not later

# KEYS: tpm bucket, budget account, reservations, reservation amounts, settled marker.
# ARGV: now, tpm cap (0: none), tpm charged, tokens used, reservation id ('' : no budget).
# The reservation's tokens go back (unless it expired already, which gave them back) and the
# tokens used are spent. An account that is gone (Redis lost it) is not recreated: the next
# admit seeds it from PostgreSQL, which has this request's usage by then or a second later.
# A budget's settlement is applied once: a node writes again what a pipeline cut by a failure
# may have applied in part, and the marker (kept an hour) makes the second write a no-op.
SETTLE = """
if ARGV[5] ~= '' and not redis.call('SET', KEYS[5], 1, 'NX', 'EX', 3600) then
  return 0
end
local now, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local taken, used = tonumber(ARGV[3]), tonumber(ARGV[4])
if cap > 0 then
  local v = redis.call('HMGET', KEYS[1], 'level', 'ts', 'cap')
  local level, ts = tonumber(v[1]), tonumber(v[2])
  if level ~= nil and ts ~= nil and tonumber(v[3]) == cap then
    if now > ts then
      level = math.min(cap, level + (now - ts) * cap / 60)
      ts = now
    end
    redis.call('HSET', KEYS[1], 'level', math.min(cap, level + taken - used), 'ts', ts)
  end
end
if ARGV[5] ~= '' then
  local exists = redis.call('EXISTS', KEYS[2]) == 1
  local amount = redis.call('HGET', KEYS[4], ARGV[5])
  if amount then
    redis.call('HDEL', KEYS[4], ARGV[5])
    redis.call('ZREM', KEYS[3], ARGV[5])
    if exists then redis.call('HINCRBY', KEYS[2], 'reserved', -tonumber(amount)) end
  end
  if exists then redis.call('HINCRBY', KEYS[2], 'spent', used) end
end
return 1
"""

# KEYS: reservations. ARGV: new expiry, reservation ids. Only reservations still held are
# renewed (XX): one that expired has given its tokens back and stays gone.
RENEW = """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
end
return 1
"""
