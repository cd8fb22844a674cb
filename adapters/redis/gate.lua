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
--   low         a lower bound of every score in the index, now and later
--               (see G2 below)
--   s:<client>  one session, ten fields joined by "|" (no id contains it):
--               token|seq|admitted_at|episode|last_request|last_issued|
--               outcome|decision token|victim|held
--   l:<client>  the session's last_seen. A pool written by an earlier
--               script has none; its index score is then exact and is used.
-- The index, a sorted set of client -> score, names the clients holding a
-- session, and each score is a lower bound of that client's last_seen: a
-- step that moves last_seen (a heartbeat, a resume) writes only the hash and
-- leaves the score behind. G2 and G7 read the index from its smallest score
-- up and compare each score with the real last_seen; a stale score is raised
-- to it (ZADD) and the walk goes on; an exact one is the smallest last_seen
-- of what is left, since every other score, and so every other last_seen, is
-- at least as large. So one step costs O(log n) plus what it removes or
-- raises, and each score is raised at most once per step that moved it.
--
-- Cost: a redis.call costs about as much as the rest of a step, and Lua
-- work (closures, string.format, pattern matches) adds up, so the common
-- steps do little of either. A heartbeat or a resume is one HMGET and one
-- HSET; G2 searches the index only when `low` says a session may be gone;
-- the helpers of G3-G7 are made only by the steps that use them.
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
-- admitted_at, last_seen and last_issued, `now` and issued_at from the
-- arguments) stay in the decimal text they came in, digits only, and are read
-- with tonumber() where a decision compares them.

local key = KEYS[1]
local seen_key = KEYS[2]
local op = ARGV[1]

local function fail(message)
  error({err = 'ERR turnstile gate.lua: ' .. message})
end

local function fmt(n)
  return string.format('%.0f', n)
end

local SESSION = '^(%d+)|(%d+)|(%d+)|([^|]+)|([^|]+)|(%d+)|([%a_]+)|(%d*)|([^|]*)|(%d+)$'

-- A session from its s: field and its last_seen (a number, or nil where the
-- step does not read it). The numbers stay decimal text (see above).
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
  local seen = {}
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    local prefix = string.sub(name, 1, 2)
    if name == 'now' then
      last_now = tonumber(value)
    elseif name == 'token' then
      last_token = tonumber(value)
    elseif name == 'held' then
      stored_held = tonumber(value)
    elseif name == 'low' then
      low = tonumber(value)
    elseif prefix == 's:' then
      ordered[#ordered + 1] = decode(string.sub(name, 3), value, nil)
    elseif prefix == 'l:' then
      seen[string.sub(name, 3)] = value
    elseif name ~= 'seq' then
      fail('unknown field ' .. name)
    end
  end
  for _, s in ipairs(ordered) do
    local score = redis.call('ZSCORE', seen_key, s.client)
    if not score then fail('the index misses the session of client ' .. s.client) end
    score = tonumber(score)
    s.last_seen = tonumber(seen[s.client]) or score
    seen[s.client] = nil
    if score > s.last_seen then fail('the index score is above the last_seen of client ' .. s.client) end
    if low ~= nil and score < low then fail('low is above the index score of client ' .. s.client) end
  end
  if next(seen) ~= nil then fail('a last_seen without a session, of client ' .. next(seen)) end
  if redis.call('ZCARD', seen_key) ~= #ordered then fail('the index holds sessions the pool does not') end
  if stored_held ~= nil and stored_held ~= #ordered then fail('held is not the number of sessions') end
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

-- The arguments a step reads, checked with as few pattern matches as a
-- step affords (it is short enough for them to count): the caller's clock,
-- capacity, ttl and grace must be decimal integers.
local clock, now_arg, client = ARGV[2], ARGV[3], ARGV[7]
if #ARGV < 8 then fail('a step takes at least 8 arguments') end
if clock == 'caller' then
  if not string.find(now_arg .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6], '^%d+ %d+ %d+ %d+$') then
    fail('arguments 3 to 6 must be decimal integers')
  end
  -- More digits could round below 2^53 in tonumber().
  if #now_arg > 16 then fail('argument 3 must be at most 2^53 - 1') end
elseif clock ~= 'redis' then
  fail('argument 2 must be caller or redis')
elseif not string.find(ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6], '^%d+ %d+ %d+$') then
  fail('arguments 4 to 6 must be decimal integers')
end
local capacity, ttl, grace = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if capacity < 1 or ttl < 1 then fail('capacity and ttl must be at least 1') end
if capacity > 9007199254740991 or ttl > 9007199254740991 or grace > 9007199254740991 then
  fail('arguments 4 to 6 must be at most 2^53 - 1')
end
if client == '' or string.find(client, '|', 1, true) then fail('argument 7 must be a non-empty id') end
-- Every argument is checked before anything is written: a script that
-- fails half way keeps what it wrote.
local episode, request, issued_at
if op == 'admit' then
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
  episode, request, issued_at = text_arg(8), text_arg(9), int_arg(10)
end

-- Everything a step reads from the hash, in one call: a heartbeat or a
-- release reads the first four fields, an admit also the counters. A
-- missing field reads as false. `token` and `seq` are read as numbers only
-- by the steps that hand out new ones.
local meta
if op == 'admit' then
  meta = redis.call('HMGET', key, 'now', 'held', 'low', 's:' .. client, 'token', 'seq')
else
  meta = redis.call('HMGET', key, 'now', 'held', 'low', 's:' .. client)
end
local last_now = tonumber(meta[1]) or 0
local stored_held = tonumber(meta[2])
local low = tonumber(meta[3])
-- The client's own session, unless G2 prunes it below: its hash field.
local own_raw = meta[4]
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

-- `command target args...`, in batches of 1000 arguments (an even number,
-- so pairs stay together), as unpack() puts every argument on Lua's stack.
local function call_batched(command, target, args)
  for i = 1, #args, 1000 do
    redis.call(command, target, unpack(args, i, math.min(i + 999, #args)))
  end
end

-- `held_after` is the pool's slots held after the step, as every decision reports it.
local function finish(outcome, token, victim, held_after)
  call_batched('HDEL', key, removed)
  if held_after ~= stored_held then set('held', fmt(held_after)) end
  if #writes > 0 then redis.call('HSET', key, unpack(writes)) end
  return {outcome, token, victim, held_after}
end

local function remove_session(c)
  removed[#removed + 1] = 's:' .. c
  removed[#removed + 1] = 'l:' .. c
end

-- G1: time never runs backwards inside a pool. now_text is `now` in decimal:
-- the caller's argument or the stored field as they are.
local now, now_text
if clock == 'caller' then
  now, now_text = tonumber(now_arg), now_arg
  if now > 9007199254740991 then fail('argument 3 must be at most 2^53 - 1') end
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  now_text = fmt(now)
end
if now < last_now then now, now_text = last_now, meta[1] end
if now ~= last_now then set('now', now_text) end

-- G2: every gone session is removed and its token dies. Gone means
-- now - last_seen > ttl + grace, that is last_seen < now - ttl - grace. When
-- that bound is below -2^53 it may round, but then it is below every
-- last_seen either way.
--
-- Every score is at most its last_seen, so every gone session has a score
-- below the bound: the search reads the real last_seen of each such entry,
-- removes the gone ones and raises the others' scores to their last_seen,
-- which is not below the bound.
--
-- A score is written as the pool's `now` (a new session) or raised to a
-- last_seen that is at least the score, and G1 never lets `now` go back, so
-- the smallest score never decreases. `low`, the smallest score when the
-- index was last searched, therefore bounds every score, and so every
-- last_seen, from below until the next search: while low is not below the
-- gone bound, no session is gone and the index need not be searched.
local gone_before = now - ttl - grace
if low == nil or low < gone_before then
  local suspects = redis.call('ZRANGEBYSCORE', seen_key, '-inf', '(' .. fmt(gone_before), 'WITHSCORES')
  local gone, raised = {}, {}
  -- Read in batches of 500 clients, as unpack() puts every name on Lua's stack.
  for first = 1, #suspects, 1000 do
    local last = math.min(first + 999, #suspects)
    local names = {}
    for i = first, last, 2 do names[#names + 1] = 'l:' .. suspects[i] end
    local last_seen = redis.call('HMGET', key, unpack(names))
    for i = first, last, 2 do
      local c = suspects[i]
      local text = last_seen[(i - first) / 2 + 1]
      if text and tonumber(text) >= gone_before then
        raised[#raised + 1] = text
        raised[#raised + 1] = c
      else
        -- Without an l: field the score is the exact last_seen.
        gone[#gone + 1] = c
        remove_session(c)
        if c == client then own_raw = nil end
      end
    end
  end
  call_batched('ZREM', seen_key, gone)
  call_batched('ZADD', seen_key, raised)
  held = held - #gone
  -- The smallest score left; with none, every later one is at least now.
  local first = redis.call('ZRANGE', seen_key, 0, 0, 'WITHSCORES')
  set('low', first[2] or now_text)
end

if op == 'heartbeat' then
  -- G11: only the session's current token (the first field of its session)
  -- keeps it alive. The index score stays behind (see above).
  if own_raw and string.match(own_raw, '^(%d+)|') == ARGV[8] then
    set('l:' .. client, now_text)
    return finish('alive', '', '', held)
  end
  return finish('gone', '', '', held)
end

if op == 'release' then
  -- G12: only the session's current token frees the slot.
  if own_raw and string.match(own_raw, '^(%d+)|') == ARGV[8] then
    remove_session(client)
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

-- G10: what every session created or updated by G5-G7 records. The index
-- score of a session that stays is left behind; a new one gets its score
-- from the caller.
local function record_intent(s, decision)
  s.last_request = request
  s.last_issued = issued_at_text
  s.decision = decision
  s.last_seen = now
  set('s:' .. s.client, encode(s))
  set('l:' .. s.client, now_text)
end

-- Slots held in decimal, for a decision a session records; the stored text
-- while it is still right.
local function held_text()
  if held == stored_held then return meta[2] end
  return fmt(held)
end

-- A new token (G9): the pool's counter, incremented.
local function new_token()
  local last_token = (tonumber(meta[5]) or 0) + 1
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

-- The index entries `entries` (client, score, client, score, ...) with their
-- sessions and real last_seen, read in batches of 500 clients; a stale
-- score is raised to its last_seen. Returns a list of {client, raw,
-- last_seen}.
local function load(entries)
  local out, raised = {}, {}
  for first = 1, #entries, 1000 do
    local last = math.min(first + 999, #entries)
    local names = {}
    for i = first, last, 2 do
      names[#names + 1] = 's:' .. entries[i]
      names[#names + 1] = 'l:' .. entries[i]
    end
    local got = redis.call('HMGET', key, unpack(names))
    for i = first, last, 2 do
      local c, score = entries[i], entries[i + 1]
      local raw, text = got[i - first + 1], got[i - first + 2]
      if not raw then fail('the index names client ' .. c .. ', which has no session') end
      -- Without an l: field the score is the exact last_seen.
      local last_seen = tonumber(text or score)
      if last_seen ~= tonumber(score) then
        raised[#raised + 1] = text
        raised[#raised + 1] = c
      end
      out[#out + 1] = {client = c, raw = raw, last_seen = last_seen}
    end
  end
  call_batched('ZADD', seen_key, raised)
  return out
end

-- How many index entries G7 reads at a time.
local G7_BATCH = 16

-- G7's candidates: the sessions with the smallest last_seen, if it is idle.
-- Gone sessions were pruned above, so a last_seen older than ttl is idle.
-- The index is read from its smallest score up, G7_BATCH entries at a time;
-- reading a batch raises its stale scores. Entries after a batch have scores,
-- and so last_seens, at least the batch's last score `edge`; so when the
-- batch's smallest last_seen m is below edge (or the batch is the whole
-- index) m is the pool's smallest and every session holding it is in the
-- batch; when m equals edge, the sessions holding it are exactly those whose
-- score is now edge and whose last_seen is edge; when m is above edge, every
-- score in the batch was stale and has been raised, and the next batch is
-- read. Each such round raises G7_BATCH scores, so the pool's size bounds
-- the rounds.
local function oldest_idle()
  for _ = 0, held do
    local batch = redis.call('ZRANGE', seen_key, 0, G7_BATCH - 1, 'WITHSCORES')
    if #batch == 0 then return nil end
    -- The smallest score bounds every last_seen from below: if even it is
    -- live, every session is.
    if now - tonumber(batch[2]) <= ttl then return nil end
    local edge_text = batch[#batch]
    local edge = tonumber(edge_text)
    local loaded = load(batch)
    local m = loaded[1].last_seen
    for _, s in ipairs(loaded) do
      if s.last_seen < m then m = s.last_seen end
    end
    if m == edge and #batch == 2 * G7_BATCH then
      loaded = load(redis.call('ZRANGEBYSCORE', seen_key, edge_text, edge_text, 'WITHSCORES'))
    end
    if m <= edge or #batch < 2 * G7_BATCH then
      if now - m <= ttl then return nil end
      local victim = nil
      for _, entry in ipairs(loaded) do
        if entry.last_seen == m then
          local s = decode(entry.client, entry.raw, m)
          -- older_than compares admitted_at as a number.
          s.admitted_at = tonumber(s.admitted_at)
          if victim == nil or older_than(s, victim) then victim = s end
        end
      end
      return victim
    end
  end
  fail('the index kept stale scores after every session was read')
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
  remove_session(victim_name)
  redis.call('ZREM', seen_key, victim_name)
  -- The newcomer takes the victim's place.
  seq = victim.seq
else
  -- G6 (or the slot G7 just freed). G13: a newcomer never raises slots held
  -- above max(C, held before), since it enters only when held < C or by rotation.
  seq = fmt((tonumber(meta[6]) or 0) + 1)
  set('seq', seq)
  held = held + 1
end
local session = {client = client, episode = episode, token = new_token(), admitted_at = now_text, seq = seq}
record_intent(session, {outcome, session.token, victim_name, held_text()})
-- A new session's score is its last_seen, now.
redis.call('ZADD', seen_key, now_text, client)
return finish(outcome, session.token, victim_name, held)
