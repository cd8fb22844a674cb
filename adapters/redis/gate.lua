-- SPEC G: the admission gate of one pool, run by Redis as one atomic step.
-- This is a transliteration of apply() in core/gate.cc; the differential test
-- (tests/redis_diff_test.cc) compares the two after every operation of
-- generated workloads, decisions and whole pool states alike.
--
-- KEYS[1]     the pool's hash, turnstile:{<pool>}
-- KEYS[2]     the pool's last_seen index, turnstile:{<pool>}:seen
--             (the hash tag {<pool>} keeps both in one cluster slot)
-- ARGV[1]     op: admit | heartbeat | release | state
-- ARGV[2]     clock: caller (ARGV[3] is now) | redis (now is Redis TIME)
-- ARGV[3]     now, in ms (ignored under the redis clock)
-- ARGV[4..6]  capacity, ttl (ms), grace (ms): the caller's config, not stored
-- ARGV[7]     client
-- admit:      ARGV[8] episode, ARGV[9] request, ARGV[10] issued_at (ms)
-- heartbeat, release: ARGV[8] token, canonical decimal ("1", never "01")
--
-- Reply: {outcome, token or "", victim or "", held}.
-- `state` changes nothing and takes no other argument; it answers the whole
-- pool for tests and debugging: {last_now, last_token, then eleven strings per
-- session in the core's order: client, episode, token, admitted_at,
-- last_seen, last_request, last_issued, and last_decision's outcome, token,
-- victim and held}. It fails if the index disagrees with the sessions.
--
-- The hash's fields:
--   now         G1's last_now
--   token       G9's last_token
--   seq         the last place handed to a session (see below)
--   held        slots held: the index's cardinality, kept here so that the
--               step's one HMGET reads it
--   low         a lower bound of every last_seen in the index, now and later
--               (see G2 below)
--   s:<client>  one session, ten fields joined by "|" (no id contains it):
--               token|seq|admitted_at|episode|last_request|last_issued|
--               outcome|decision token|victim|held
-- The index, a sorted set of client -> last_seen, is where last_seen lives
-- and which clients hold a session: G2 finds the gone sessions in it and G7
-- finds the oldest idle session without reading the whole pool, so one step
-- costs O(log n) plus what it removes. A heartbeat only moves a score there
-- and rewrites no session.
--
-- Cost: a redis.call costs about as much as the rest of a step, and Lua
-- work (closures, string.format, pattern matches) adds up, so the common
-- steps do little of either. A heartbeat or a resume is one HMGET, one ZADD
-- and one HSET (a heartbeat's only when `now` moved); G2 searches
-- the index only when `low` says a session may be gone; the helpers of
-- G3-G7 are made only by the steps that use them.
--
-- The core keeps its sessions in a vector: a new session is appended, one
-- rotated in (G7) takes its victim's place, removals keep the others' order.
-- A hash has no order, so each session carries `seq`, its place: a new one
-- takes the next seq, a rotated-in one its victim's. `state` sorts by seq and
-- so lists the sessions exactly as the core does. No decision reads seq.
--
-- Numbers are Lua doubles. Every time is at most 2^53 - 1 (SPEC, core/time.h)
-- and so exact, in Lua and as a sorted set's score. tostring() and `..` would
-- print a number with %.14g (9.007199254741e+15), so a number computed here
-- goes out through fmt(). Numbers that only pass through (a session's seq,
-- admitted_at and last_issued, `now` and issued_at from the arguments) stay
-- in the decimal text they came in, digits only, and are read with tonumber()
-- where a decision compares them.

local key = KEYS[1]
local seen_key = KEYS[2]
local op = ARGV[1]

local function fail(message)
  error({err = 'ERR turnstile gate.lua: ' .. message})
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- A decimal integer argument from 0 to 2^53 - 1, which a double holds exactly.
local function int_arg(i)
  local text = ARGV[i]
  if text == nil or #text > 16 or not string.find(text, '^%d+$') then
    fail('argument ' .. i .. ' must be a decimal integer')
  end
  local n = tonumber(text)
  if n > 9007199254740991 then fail('argument ' .. i .. ' must be at most 2^53 - 1') end
  return n
end

local function text_arg(i)
  local text = ARGV[i]
  if text == nil or text == '' or string.find(text, '|', 1, true) then
    fail('argument ' .. i .. ' must be a non-empty id')
  end
  return text
end

local SESSION = '^(%d+)|(%d+)|(%d+)|([^|]+)|([^|]+)|(%d+)|([%a_]+)|(%d*)|([^|]*)|(%d+)$'

-- A session from its hash field; last_seen is the index's score. The
-- numbers stay decimal text (see above).
local function decode(client, raw, last_seen)
  local token, seq, admitted_at, episode, last_request, last_issued,
        outcome, decision_token, victim, held = string.match(raw, SESSION)
  if token == nil then fail('malformed session of client ' .. client) end
  return {
    client = client,
    last_seen = last_seen,
    admitted_at = admitted_at,
    seq = seq,
    token = token,
    episode = episode,
    last_request = last_request,
    last_issued = last_issued,
    decision = {outcome, decision_token, victim, held},
  }
end

local function encode(s)
  local d = s.decision
  return s.token .. '|' .. s.seq .. '|' .. s.admitted_at .. '|' .. s.episode .. '|' ..
         s.last_request .. '|' .. s.last_issued .. '|' .. d[1] .. '|' .. d[2] .. '|' .. d[3] .. '|' .. d[4]
end

if op == 'state' then
  local fields = redis.call('HGETALL', key)
  local last_now, last_token = 0, 0
  local stored_held, low = nil, nil
  local ordered = {}
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    if name == 'now' then
      last_now = tonumber(value)
    elseif name == 'token' then
      last_token = tonumber(value)
    elseif name == 'held' then
      stored_held = tonumber(value)
    elseif name == 'low' then
      low = tonumber(value)
    elseif string.sub(name, 1, 2) == 's:' then
      local c = string.sub(name, 3)
      local last_seen = redis.call('ZSCORE', seen_key, c)
      if not last_seen then fail('the index misses the session of client ' .. c) end
      ordered[#ordered + 1] = decode(c, value, tonumber(last_seen))
    elseif name ~= 'seq' then
      fail('unknown field ' .. name)
    end
  end
  if redis.call('ZCARD', seen_key) ~= #ordered then fail('the index holds sessions the pool does not') end
  if stored_held ~= nil and stored_held ~= #ordered then fail('held is not the number of sessions') end
  for _, s in ipairs(ordered) do
    if low ~= nil and s.last_seen < low then fail('low is above the last_seen of client ' .. s.client) end
  end
  table.sort(ordered, function(a, b) return tonumber(a.seq) < tonumber(b.seq) end)
  local out = {fmt(last_now), fmt(last_token)}
  for _, s in ipairs(ordered) do
    local d = s.decision
    local row = {
      s.client, s.episode, s.token, fmt(tonumber(s.admitted_at)), fmt(s.last_seen),
      s.last_request, fmt(tonumber(s.last_issued)), d[1], d[2], d[3], fmt(tonumber(d[4])),
    }
    for _, v in ipairs(row) do out[#out + 1] = v end
  end
  return out
end

if op ~= 'admit' and op ~= 'heartbeat' and op ~= 'release' then
  fail('argument 1 must be admit, heartbeat, release or state')
end

-- The config (ARGV[4..6]) as int_arg() would read it, with one pattern
-- match for the three: a step is short enough for this to count.
if #ARGV < 8 or not string.find(ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6], '^%d+ %d+ %d+$') then
  fail('arguments 4 to 6 must be decimal integers')
end
local capacity, ttl, grace = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if capacity < 1 or ttl < 1 then fail('capacity and ttl must be at least 1') end
if capacity > 9007199254740991 or ttl > 9007199254740991 or grace > 9007199254740991 then
  fail('arguments 4 to 6 must be at most 2^53 - 1')
end
local client = text_arg(7)
-- Every argument is checked before anything is written: a script that
-- fails half way keeps what it wrote.
local episode, request, issued_at
if op == 'admit' then episode, request, issued_at = text_arg(8), text_arg(9), int_arg(10) end

-- Everything a common step reads from the hash, in one call. A missing
-- field reads as false. `token` and `seq` are read as numbers only by the
-- steps that hand out new ones.
local meta = redis.call('HMGET', key, 'now', 'token', 'seq', 'held', 'low', 's:' .. client)
local last_now = tonumber(meta[1]) or 0
local stored_held = tonumber(meta[4])
local low = tonumber(meta[5])
-- The client's own session, unless G2 prunes it below: its hash field.
local own_raw = meta[6]
-- Slots held, the index's cardinality. A pool written before `held` was
-- kept in the hash counts it once; finish() stores it from then on.
local held = stored_held
if held == nil then held = redis.call('ZCARD', seen_key) end

-- What the step writes to the hash, applied by finish(): fields removed
-- first (a client pruned by G2 may be admitted again in the same step), then
-- fields set. The index is written as the step goes.
local removed = {}
local writes = {}

local function set(name, value)
  writes[#writes + 1] = name
  writes[#writes + 1] = value
end

-- `held_after` is the pool's slots held after the step, as every decision reports it.
local function finish(outcome, token, victim, held_after)
  -- unpack() puts every argument on Lua's stack, so a large prune is
  -- deleted in bounded batches.
  for i = 1, #removed, 1000 do
    redis.call('HDEL', key, unpack(removed, i, math.min(i + 999, #removed)))
  end
  if held_after ~= stored_held then set('held', fmt(held_after)) end
  if #writes > 0 then redis.call('HSET', key, unpack(writes)) end
  return {outcome, token, victim, held_after}
end

-- G1: time never runs backwards inside a pool. now_text is `now` in decimal:
-- the caller's argument or the stored field as they are.
local now, now_text
if ARGV[2] == 'caller' then
  now, now_text = int_arg(3), ARGV[3]
elseif ARGV[2] == 'redis' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  now_text = fmt(now)
else
  fail('argument 2 must be caller or redis')
end
if now < last_now then now, now_text = last_now, meta[1] end
if now ~= last_now then set('now', now_text) end

-- G2: every gone session is removed and its token dies. Gone means
-- now - last_seen > ttl + grace, that is last_seen < now - ttl - grace. When
-- that bound is below -2^53 it may round, but then it is below every
-- last_seen either way.
--
-- Every score the index gets is the pool's `now` when it is written, and G1
-- never lets `now` go back, so the smallest last_seen never decreases. `low`,
-- the smallest last_seen when the index was last searched, therefore bounds
-- every last_seen from below until the next search: while low is not below
-- the gone bound, no session is gone and the index need not be searched.
local gone_before = now - ttl - grace
if low == nil or low < gone_before then
  local gone = redis.call('ZRANGEBYSCORE', seen_key, '-inf', '(' .. fmt(gone_before))
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', seen_key, '-inf', '(' .. fmt(gone_before))
    for _, c in ipairs(gone) do
      removed[#removed + 1] = 's:' .. c
      if c == client then own_raw = nil end
    end
    held = held - #gone
  end
  -- The smallest last_seen left; with none, every later one is at least now.
  local first = redis.call('ZRANGEBYSCORE', seen_key, '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  set('low', first[2] or now_text)
end

-- G11, G12: the token of the client's session (its first field).
local function own_token()
  return string.match(own_raw, '^(%d+)|')
end

if op == 'heartbeat' then
  -- G11: only the session's current token keeps it alive.
  if own_raw and own_token() == ARGV[8] then
    redis.call('ZADD', seen_key, now_text, client)
    return finish('alive', '', '', held)
  end
  return finish('gone', '', '', held)
end

if op == 'release' then
  -- G12: only the session's current token frees the slot.
  if own_raw and own_token() == ARGV[8] then
    removed[#removed + 1] = 's:' .. client
    redis.call('ZREM', seen_key, client)
    return finish('released', '', '', held - 1)
  end
  return finish('gone', '', '', held)
end

-- From here on: admit (G3-G10).
local issued_at_text = ARGV[10]

-- Strings compare bytewise, as std::string does. Lua's `<` on strings calls
-- strcoll(), and Redis takes LC_COLLATE from its environment, so under a
-- locale such as en_US.UTF-8 "B" < "a" would be false.
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- G10: what every session created or updated by G5-G7 records.
local function record_intent(s, decision)
  s.last_request = request
  s.last_issued = issued_at_text
  s.decision = decision
  s.last_seen = now
  set('s:' .. s.client, encode(s))
  redis.call('ZADD', seen_key, now_text, s.client)
end

-- Slots held in decimal, for a decision a session records; the stored text
-- while it is still right.
local function held_text()
  if held == stored_held then return meta[4] end
  return fmt(held)
end

-- A new token (G9): the pool's counter, incremented.
local function new_token()
  local last_token = (tonumber(meta[2]) or 0) + 1
  local text = fmt(last_token)
  set('token', text)
  return text
end

if own_raw then
  -- last_seen is not read by G3-G5; record_intent sets it.
  local own = decode(client, own_raw, nil)
  -- G3: a replay of the request that made the session's current state.
  if own.last_request == request then
    local d = own.decision
    return finish(d[1], d[2], d[3], held)
  end
  -- G4: an intent older than the one already applied changes nothing.
  local own_issued = tonumber(own.last_issued)
  if issued_at < own_issued or
     (issued_at == own_issued and bytes_less(request, own.last_request)) then
    return finish('superseded', '', '', held)
  end
  -- G5: the owner keeps its slot, live or idle, and is never blocked.
  local outcome = 'resumed'
  if own.episode ~= episode then
    own.token = new_token()
    own.episode = episode
    outcome = 'switched'
  end
  record_intent(own, {outcome, own.token, '', held_text()})
  return finish(outcome, own.token, '', held)
end

-- G7's order: smallest last_seen, then smallest admitted_at, then smallest client id.
local function older_than(a, b)
  if a.last_seen ~= b.last_seen then return a.last_seen < b.last_seen end
  if a.admitted_at ~= b.admitted_at then return a.admitted_at < b.admitted_at end
  return bytes_less(a.client, b.client)
end

-- G7's candidates: the sessions with the smallest last_seen, if it is idle.
-- Gone sessions were pruned above, so a last_seen older than ttl is idle.
local function oldest_idle()
  local first = redis.call('ZRANGE', seen_key, 0, 0, 'WITHSCORES')
  if #first == 0 then return nil end
  local oldest_seen = first[2]
  local last_seen = tonumber(oldest_seen)
  if now - last_seen <= ttl then return nil end
  local tied = redis.call('ZRANGEBYSCORE', seen_key, oldest_seen, oldest_seen)
  local victim = nil
  -- Read in bounded batches, as unpack() puts every name on Lua's stack.
  for first_tied = 1, #tied, 1000 do
    local last_tied = math.min(first_tied + 999, #tied)
    local names = {}
    for i = first_tied, last_tied do names[#names + 1] = 's:' .. tied[i] end
    local raws = redis.call('HMGET', key, unpack(names))
    for i = first_tied, last_tied do
      local raw = raws[i - first_tied + 1]
      if not raw then fail('the index names client ' .. tied[i] .. ', which has no session') end
      local s = decode(tied[i], raw, last_seen)
      -- older_than compares admitted_at as a number.
      s.admitted_at = tonumber(s.admitted_at)
      if victim == nil or older_than(s, victim) then victim = s end
    end
  end
  return victim
end

local outcome = 'admitted'
local victim_name = ''
local seq
if held >= capacity then
  -- G7: only an idle session may make room, the oldest first; G8 otherwise.
  local victim = oldest_idle()
  if victim == nil then return finish('blocked_capacity', '', '', held) end
  outcome = 'rotated'
  victim_name = victim.client
  removed[#removed + 1] = 's:' .. victim_name
  redis.call('ZREM', seen_key, victim_name)
  -- The newcomer takes the victim's place.
  seq = victim.seq
else
  -- G6 (or the slot G7 just freed). G13: a newcomer never raises slots held
  -- above max(C, held before), since it enters only when held < C or by rotation.
  seq = fmt((tonumber(meta[3]) or 0) + 1)
  set('seq', seq)
  held = held + 1
end
local session = {client = client, episode = episode, token = new_token(), admitted_at = now_text, seq = seq}
record_intent(session, {outcome, session.token, victim_name, held_text()})
return finish(outcome, session.token, victim_name, held)
