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
--   layout      written with the pool's first session: a value longer than
--               Redis's hash-max-listpack-value (64 bytes by default), so
--               that Redis keeps the hash as a hash table, where a step finds
--               a field in constant time, rather than as a listpack, which
--               it scans field by field (up to hash-max-listpack-entries
--               fields, 512 by default: about 250 sessions). Redis never
--               turns a hash table back into a listpack.
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
-- Cost (bench/RESULTS.md): each redis.call, and each field it reads, costs
-- about as much as a pattern match, so a heartbeat or a resume is one HMGET
-- and one HSET, and G2 searches the index only when `low` says a session may
-- be gone. The rest is Lua, where small things add up: a closure costs an
-- allocation, and one more per local it captures; so does a table, and each
-- time it grows; tonumber() and string.format() go through strtod() and
-- printf(); a pattern costs for each character it reads and each capture
-- makes a string. So a heartbeat makes one closure and two tables (the
-- HMGET's answer and its own), each step ends with its own HSET and answer
-- rather than gathering them in a list, numbers are read by arithmetic
-- (below), a session is split only as far as a step needs, and G6-G8 define
-- their helpers only when they run.
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
-- goes out through format('%.0f', n). Numbers that only pass through (a
-- session's seq, admitted_at, last_seen and last_issued, `now` and issued_at
-- from the arguments) stay in the decimal text they came in, digits only.
-- The steps read such text as a number by arithmetic (`text + 0`), which
-- converts it once where tonumber() converts it twice; only text checked or
-- written by the script is read so, as arithmetic on anything else is an
-- error.

local key = KEYS[1]
local seen_key = KEYS[2]
-- ARGV is a global; a local is read without a table lookup.
local argv = ARGV
local op = argv[1]

local function fail(message)
  error({err = 'ERR turnstile gate.lua: ' .. message})
end

-- Numbers go out as format('%.0f', n) (see Numbers above).
local format = string.format

if op == 'state' then
  local SESSION = '^(%d+)|(%d+)|(%d+)|([^|]+)|([^|]+)|(%d+)|([%a_]+)|(%d*)|([^|]*)|(%d+)$'

  -- A session from its s: field: ten fields joined by "|" (see the hash's
  -- fields above). The numbers stay decimal text (see above).
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
    elseif name ~= 'seq' and name ~= 'layout' then
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
  local out = {format('%.0f', last_now), format('%.0f', last_token)}
  for _, s in ipairs(ordered) do
    local d = s.decision
    local row = {
      s.client, s.episode, s.token, format('%.0f', tonumber(s.admitted_at)), format('%.0f', s.last_seen),
      s.last_request, format('%.0f', tonumber(s.last_issued)), d[1], d[2], d[3], format('%.0f', tonumber(d[4])),
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
-- capacity, ttl and grace must be decimal integers, that is non-empty and
-- digits only, which one match over them joined checks.
local clock, now_arg, client = argv[2], argv[3], argv[7]
if #argv < 8 then fail('a step takes at least 8 arguments') end
if clock == 'caller' then
  if now_arg == '' or argv[4] == '' or argv[5] == '' or argv[6] == '' or
     not string.find(now_arg .. argv[4] .. argv[5] .. argv[6], '^%d+$') then
    fail('arguments 3 to 6 must be decimal integers')
  end
  -- More digits could round below 2^53 in tonumber().
  if #now_arg > 16 then fail('argument 3 must be at most 2^53 - 1') end
elseif clock ~= 'redis' then
  fail('argument 2 must be caller or redis')
elseif argv[4] == '' or argv[5] == '' or argv[6] == '' or not string.find(argv[4] .. argv[5] .. argv[6], '^%d+$') then
  fail('arguments 4 to 6 must be decimal integers')
end
local capacity, ttl, grace = argv[4] + 0, argv[5] + 0, argv[6] + 0
if capacity < 1 or ttl < 1 then fail('capacity and ttl must be at least 1') end
if capacity > 9007199254740991 or ttl > 9007199254740991 or grace > 9007199254740991 then
  fail('arguments 4 to 6 must be at most 2^53 - 1')
end
if client == '' or string.find(client, '|', 1, true) then fail('argument 7 must be a non-empty id') end
-- Every argument is checked before anything is written: a script that
-- fails half way keeps what it wrote.
local episode, request, issued_at_text = argv[8], argv[9], argv[10]
local issued_at
if op == 'admit' then
  if episode == '' or string.find(episode, '|', 1, true) then fail('argument 8 must be a non-empty id') end
  if request == nil or request == '' or string.find(request, '|', 1, true) then
    fail('argument 9 must be a non-empty id')
  end
  -- A decimal integer from 0 to 2^53 - 1, which a double holds exactly.
  if issued_at_text == nil or #issued_at_text > 16 or not string.find(issued_at_text, '^%d+$') then
    fail('argument 10 must be a decimal integer')
  end
  issued_at = issued_at_text + 0
  if issued_at > 9007199254740991 then fail('argument 10 must be at most 2^53 - 1') end
end

-- Everything a step reads from the hash, in one call: a heartbeat or a
-- release reads the first four fields, an admit also the token counter. A
-- missing field reads as false. `token` is read as a number only by the
-- steps that hand out new ones; `seq`, by the one that adds a session.
local meta
if op == 'admit' then
  meta = redis.call('HMGET', key, 'now', 'held', 'low', 's:' .. client, 'token')
else
  meta = redis.call('HMGET', key, 'now', 'held', 'low', 's:' .. client)
end
local last_now = (meta[1] or 0) + 0
-- Slots held, the index's cardinality, as a number and as the text stored.
-- A pool written before `held` and `low` were kept has neither: G2 below
-- then searches the index, counts it and stores both.
local held, held_text = meta[2] and meta[2] + 0, meta[2]
local low = meta[3] and meta[3] + 0
-- The client's own session, unless G2 prunes it below: its hash field.
local own_raw = meta[4]

-- G1: time never runs backwards inside a pool. now_text is `now` in decimal:
-- the caller's argument or the stored field as they are.
local now, now_text
if clock == 'caller' then
  now, now_text = now_arg + 0, now_arg
  if now > 9007199254740991 then fail('argument 3 must be at most 2^53 - 1') end
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  now_text = format('%.0f', now)
end
if now < last_now then now, now_text = last_now, meta[1] end

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
-- gone bound, no session is gone and the index need not be searched. So the
-- common step, with nothing gone, reads one field for G2 and writes none.
--
-- A search writes what it changes at once, `now` included: G1 and G2 are a
-- whole step by themselves (one that answers gone or blocked), so a step that
-- fails after them, on a malformed session say, leaves a consistent pool.
local gone_before = now - ttl - grace
if not low or low < gone_before then
  if not held then held = redis.call('ZCARD', seen_key) end
  local suspects = redis.call('ZRANGEBYSCORE', seen_key, '-inf', '(' .. format('%.0f', gone_before), 'WITHSCORES')
  -- Read and written in batches of 500 clients, as unpack() puts every
  -- argument on Lua's stack.
  for first = 1, #suspects, 1000 do
    local last = math.min(first + 999, #suspects)
    local names = {}
    for i = first, last, 2 do names[#names + 1] = 'l:' .. suspects[i] end
    local last_seen = redis.call('HMGET', key, unpack(names))
    local gone, gone_fields, raised = {}, {}, {}
    for i = first, last, 2 do
      local c = suspects[i]
      local text = last_seen[(i - first) / 2 + 1]
      if text and tonumber(text) >= gone_before then
        raised[#raised + 1] = text
        raised[#raised + 1] = c
      else
        -- Without an l: field the score is the exact last_seen.
        gone[#gone + 1] = c
        gone_fields[#gone_fields + 1] = 's:' .. c
        gone_fields[#gone_fields + 1] = 'l:' .. c
        if c == client then own_raw = nil end
      end
    end
    if #gone > 0 then
      redis.call('ZREM', seen_key, unpack(gone))
      redis.call('HDEL', key, unpack(gone_fields))
      held = held - #gone
    end
    if #raised > 0 then redis.call('ZADD', seen_key, unpack(raised)) end
  end
  held_text = format('%.0f', held)
  -- The smallest score left; with none, every later one is at least now.
  local first = redis.call('ZRANGE', seen_key, 0, 0, 'WITHSCORES')
  redis.call('HSET', key, 'now', now_text, 'held', held_text, 'low', first[2] or now_text)
  last_now = now
end
-- Whether G1's `now` is still to be written. Each step below writes it with
-- its own fields, in the one HSET it makes.
local write_now = now ~= last_now

if op ~= 'admit' then
  -- G11, G12: only the session's current token (the first field of its
  -- session) keeps it alive or frees its slot.
  if not (own_raw and string.match(own_raw, '^(%d+)|') == argv[8]) then
    if write_now then redis.call('HSET', key, 'now', now_text) end
    return {'gone', '', '', held}
  end
  if op == 'heartbeat' then
    -- The index score stays behind (see G2).
    if write_now then
      redis.call('HSET', key, 'l:' .. client, now_text, 'now', now_text)
    else
      redis.call('HSET', key, 'l:' .. client, now_text)
    end
    return {'alive', '', '', held}
  end
  redis.call('HDEL', key, 's:' .. client, 'l:' .. client)
  redis.call('ZREM', seen_key, client)
  held = held - 1
  redis.call('HSET', key, 'held', format('%.0f', held), 'now', now_text)
  return {'released', '', '', held}
end

-- An admit (G3-G10). Like the steps above, each way it ends writes the
-- hash's fields it sets in one HSET as it answers; what else it writes, it
-- writes as it goes.

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

if own_raw then
  -- The client's session, split only as far as G3-G5 need: its token, its
  -- place (`seq|admitted_at`, kept as it is), episode, last_request,
  -- last_issued, and where its last decision begins. Each character a
  -- pattern reads and each capture costs, and this is the common admit.
  local own_token, place, own_episode, last_request, last_issued, decision_at =
      string.match(own_raw, '^(%d+)|(%d+|%d+)|([^|]+)|([^|]+)|(%d+)|()')
  if own_token == nil then fail('malformed session of client ' .. client) end
  if last_request == request then
    -- G3: a replay of the request that made the session's current state.
    local outcome, token, victim = string.match(own_raw, '^([%a_]+)|(%d*)|([^|]*)|%d+$', decision_at)
    if outcome == nil then fail('malformed session of client ' .. client) end
    if write_now then redis.call('HSET', key, 'now', now_text) end
    return {outcome, token, victim, held}
  end
  local own_issued = last_issued + 0
  if issued_at < own_issued or (issued_at == own_issued and bytes_less(request, last_request)) then
    -- G4: an intent older than the one already applied changes nothing.
    if write_now then redis.call('HSET', key, 'now', now_text) end
    return {'superseded', '', '', held}
  end
  -- G5: the owner keeps its slot, live or idle, and is never blocked; a new
  -- episode takes a new token (G9), the pool's counter incremented.
  local outcome, token = 'resumed', own_token
  if own_episode ~= episode then outcome, token = 'switched', format('%.0f', (meta[5] or 0) + 1) end
  -- G10. The index score stays behind (see G2).
  local session = token .. '|' .. place .. '|' .. episode .. '|' .. request .. '|' .. issued_at_text .. '|' ..
                  outcome .. '|' .. token .. '||' .. held_text
  if outcome == 'switched' then
    redis.call('HSET', key, 's:' .. client, session, 'l:' .. client, now_text, 'token', token, 'now', now_text)
  elseif write_now then
    redis.call('HSET', key, 's:' .. client, session, 'l:' .. client, now_text, 'now', now_text)
  else
    redis.call('HSET', key, 's:' .. client, session, 'l:' .. client, now_text)
  end
  return {outcome, token, '', held}
end

-- A client without a session (G6-G8, G10).

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
  local out = {}
  for first = 1, #entries, 1000 do
    local last = math.min(first + 999, #entries)
    local names = {}
    for i = first, last, 2 do
      names[#names + 1] = 's:' .. entries[i]
      names[#names + 1] = 'l:' .. entries[i]
    end
    local got = redis.call('HMGET', key, unpack(names))
    local raised = {}
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
    if #raised > 0 then redis.call('ZADD', seen_key, unpack(raised)) end
  end
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
          -- The session's seq and admitted_at (see the hash's fields above);
          -- older_than compares admitted_at as a number.
          local seq, admitted_at = string.match(entry.raw, '^%d+|(%d+)|(%d+)|')
          if seq == nil then fail('malformed session of client ' .. entry.client) end
          local s = {client = entry.client, last_seen = m, admitted_at = tonumber(admitted_at), seq = seq}
          if victim == nil or older_than(s, victim) then victim = s end
        end
      end
      return victim
    end
  end
  fail('the index kept stale scores after every session was read')
end

-- The `layout` field's value (see the hash's fields above).
local LAYOUT = 'hash table: this value is longer than hash-max-listpack-value, so Redis keeps the pool hash a hash table'
-- The new session's outcome, victim and place (see seq above), and the
-- fields G6 sets besides the session's own.
local outcome, victim, seq, fields
if held >= capacity then
  -- G7: only an idle session may make room, the oldest first; G8 otherwise.
  local oldest = oldest_idle()
  if oldest == nil then
    if write_now then redis.call('HSET', key, 'now', now_text) end
    return {'blocked_capacity', '', '', held}
  end
  outcome, victim = 'rotated', oldest.client
  redis.call('HDEL', key, 's:' .. victim, 'l:' .. victim)
  redis.call('ZREM', seen_key, victim)
  -- The newcomer takes the victim's place.
  seq, fields = oldest.seq, {}
else
  -- G6 (or the slot G7 just freed). G13: a newcomer never raises slots held
  -- above max(C, held before), since it enters only when held < C or by rotation.
  outcome, victim = 'admitted', ''
  local last_seq = redis.call('HGET', key, 'seq')
  seq = format('%.0f', (last_seq or 0) + 1)
  held = held + 1
  held_text = format('%.0f', held)
  fields = {'seq', seq, 'held', held_text}
  if not last_seq then fields[5], fields[6] = 'layout', LAYOUT end
end
-- G10: the new session records this intent, with a new token (G9); its index
-- score is its last_seen, now.
local token = format('%.0f', (meta[5] or 0) + 1)
local session = token .. '|' .. seq .. '|' .. now_text .. '|' .. episode .. '|' .. request .. '|' ..
                issued_at_text .. '|' .. outcome .. '|' .. token .. '|' .. victim .. '|' .. held_text
redis.call('ZADD', seen_key, now_text, client)
redis.call('HSET', key, 's:' .. client, session, 'l:' .. client, now_text, 'token', token, 'now', now_text, unpack(fields))
return {outcome, token, victim, held}
