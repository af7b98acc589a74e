//! The barrier's three steps as Lua scripts: each runs atomically in Redis, so two agents never
//! both take one slot or both set the start. Keys: agents (hash), ready (set), start (string).

/// Takes slot K (ARGV[1]; 0 = the first free of 1..=N). Returns K, 0 when taken or full, -1
/// when the run already started, -2 when the agents disagree on N.
pub(super) const JOIN: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local n = tonumber(ARGV[2])
redis.call('HSETNX', KEYS[1], 'n', ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 'n')) ~= n then return -2 end
local got = 0
local want = tonumber(ARGV[1])
if want > 0 then
  if redis.call('HSETNX', KEYS[1], want, ARGV[3]) == 1 then got = want end
else
  for k = 1, n do
    if redis.call('HSETNX', KEYS[1], k, ARGV[3]) == 1 then got = k break end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return got
";

/// Marks slot K ready; the agent completing the set fixes the start. Returns {1, start ms},
/// {0, agents ready} or {-1} when the slot is no longer this agent's.
pub(super) const READY: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return {-1} end
local s = redis.call('GET', KEYS[3])
if s then return {1, tonumber(s)} end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local ready = redis.call('SCARD', KEYS[2])
if ready >= tonumber(ARGV[3]) then
  local t = redis.call('TIME')
  local start = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[4])
  redis.call('SET', KEYS[3], string.format('%d', start), 'PX', ARGV[5])
  return {1, start}
end
return {0, ready}
";

/// Gives slot K up unless the run started (the last one out removes the run's keys); returns the
/// start (ms) when it did, else nil.
pub(super) const LEAVE: &str = r"
local s = redis.call('GET', KEYS[3])
if s then return tonumber(s) end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
end
return false
";
