"""The Lua scripts of the Redis transport and backend: every multi-key step is one of these.

Each script is one round trip and runs atomically on the server, so a claim that pops
messages also records them as unacknowledged before anyone else can look: there is no
window in which a message lives only in a client's memory. Times are the *server's*
clock (``TIME``), so the leases of workers on different machines agree whatever their
own clocks say. Keys are built inside the scripts from the key prefix and queue names
(ARGV), which is fine on a single Redis or a Sentinel-managed one (kombu's Redis
transport does not support Redis Cluster either).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from taskq_redis._connection import CONNECTION_ERRORS
from taskq_redis._resp import Client, NoScriptError


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1, run by :func:`run`."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324 - Redis names scripts by SHA1


def run(client: Client, script: Script, args: list[object]) -> object:
    """Run ``script`` with ``args`` as ARGV (no KEYS); load it first if the server lost it."""
    try:
        return client.execute("EVALSHA", script.sha, 0, *args)
    except NoScriptError:
        # a restarted or flushed server: EVAL runs it and caches it for the next EVALSHA
        return client.execute("EVAL", script.source, 0, *args)


def as_int(reply: object) -> int:
    """An integer reply, checked."""
    if not isinstance(reply, int):
        raise TypeError(f"expected an integer reply from Redis, got {reply!r}")
    return reply


def as_text(reply: object) -> str:
    """A bulk string reply as text."""
    if isinstance(reply, bytes):
        return reply.decode()
    return str(reply)


# ---- Shared pieces ---------------------------------------------------------------------
#
# Layout (P is the key prefix, '' unless global_keyprefix is set; SEP is kombu's "\x06\x16"):
#   P<queue>, P<queue>SEP3, SEP6, SEP9   the queue's lists, by priority step (kombu's)
#   Punacked                              hash tag -> [envelope, exchange, routing_key] (kombu's)
#   Punacked_index                        zset tag -> claim or last renewal time (kombu's)
#   P_taskq.leases.<queue>                zset tag -> lease expiry, for taskq's holders
#   P_taskq.claims                        hash tag -> "owner\n<envelope length>\n<step>"
#   P_taskq.deliveries                    hash tag -> times started and not settled (STARTED)
#   P_taskq.delayed.<queue>               zset "<step><envelope>" -> due time
#   P_taskq.dead.<queue>                  list of dead letters, newest first
#   P_taskq.dead_queues                   set of queues that have dead letters
# and the pub/sub channel P_taskq.wake/<db>.<queue>, told when a list goes from empty to not.

_PRELUDE = r"""
local P, WAKE = ARGV[1], ARGV[2]
local SEP = '\6\22'
local STEPS = {'0', '3', '6', '9'}
local UNACKED, INDEX = P .. 'unacked', P .. 'unacked_index'
local CLAIMS, COUNTS = P .. '_taskq.claims', P .. '_taskq.deliveries'
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function list_key(q, step)
  if step == '0' then return P .. q end
  return P .. q .. SEP .. step
end
local function push_front(q, step, envelope)
  -- the consuming end (kombu pops from the right): a message given back is next in line
  if redis.call('RPUSH', list_key(q, step), envelope) == 1 then redis.call('PUBLISH', WAKE .. q, '') end
end
-- A delivery tag as written in an envelope, if it is one a client can use as it is: 1 to 100
-- letters, digits and '-_.:' (kombu's and taskq's are UUIDs); else nil.
local function plain_tag(tag)
  if type(tag) == 'string' and #tag > 0 and #tag <= 100 and not string.find(tag, '[^%w%-_%.:]') then
    return tag
  end
  return nil
end
-- Give a held message back: to its list now, or to the delayed set at time `due`.
-- With `owner`, only if that owner holds it. Returns 1 if it moved.
local function restore(q, tag, due, owner)
  local claim = redis.call('HGET', CLAIMS, tag)
  if not claim then
    redis.call('ZREM', P .. '_taskq.leases.' .. q, tag)
    return 0
  end
  if owner and string.sub(claim, 1, #owner + 1) ~= owner .. '\n' then return 0 end
  redis.call('ZREM', P .. '_taskq.leases.' .. q, tag)
  redis.call('HDEL', CLAIMS, tag)
  local entry = redis.call('HGET', UNACKED, tag)
  if not entry then return 0 end  -- acknowledged, or restored by a Celery worker already
  redis.call('HDEL', UNACKED, tag)
  redis.call('ZREM', INDEX, tag)
  local length, step = string.match(claim, '\n(%d+)\n(%d)$')
  local envelope = string.sub(entry, 2, 1 + tonumber(length))
  if due then
    redis.call('ZADD', P .. '_taskq.delayed.' .. q, due, step .. envelope)
  else
    push_front(q, step, envelope)
  end
  return 1
end
"""

# ARGV: P, WAKE, then (queue, step, delay seconds, envelope) per message.
PUBLISH = Script(
    _PRELUDE
    + r"""
local now = nil
for i = 3, #ARGV, 4 do
  local q, step, delay, envelope = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if delay > 0 then
    now = now or server_now()
    redis.call('ZADD', P .. '_taskq.delayed.' .. q, now + delay, step .. envelope)
  elseif redis.call('LPUSH', list_key(q, step), envelope) == 1 then
    redis.call('PUBLISH', WAKE .. q, '')
  end
end
return 0
"""
)

# ARGV: P, WAKE, lease seconds, limit, owner, n, queue x n, JSON routing key x n.
# Returns (queue number, tag, deliveries, envelope) per message claimed.
CLAIM = Script(
    _PRELUDE
    + r"""
local lease, limit, owner, n = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local now = server_now()
for i = 1, n do
  local q = ARGV[6 + i]
  local lapsed = redis.call('ZRANGEBYSCORE', P .. '_taskq.leases.' .. q, '-inf', now, 'LIMIT', 0, 100)
  for _, tag in ipairs(lapsed) do restore(q, tag, nil, nil) end
  local delayed = P .. '_taskq.delayed.' .. q
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  if #due > 0 then
    for _, member in ipairs(due) do
      redis.call('LPUSH', list_key(q, string.sub(member, 1, 1)), string.sub(member, 2))
    end
    redis.call('ZREM', delayed, unpack(due))
  end
end
local out, unacked, index, claims, seen = {}, {}, {}, {}, {}
local taken, expiry = 0, now + lease
for s = 1, 4 do
  local step = STEPS[s]
  for i = 1, n do
    if taken >= limit then break end
    local q = ARGV[6 + i]
    local got = redis.call('RPOP', list_key(q, step), limit - taken)
    if got then
      local leases, routing = {}, ARGV[6 + n + i]
      for _, envelope in ipairs(got) do
        -- kombu and taskq both write delivery_tag last: read it off the tail, else parse;
        -- a tag that is not plain ASCII (anyone can write the envelope) is replaced
        local tag = plain_tag(string.match(string.sub(envelope, -100), '"delivery_tag": ?"([^"\\]+)"}}$'))
        if not tag then
          local ok, decoded = pcall(cjson.decode, envelope)
          if ok and type(decoded) == 'table' and type(decoded.properties) == 'table' then
            tag = plain_tag(decoded.properties.delivery_tag)
          end
          tag = tag or ('taskq-' .. redis.sha1hex(envelope))
        end
        if seen[tag] or redis.call('HEXISTS', UNACKED, tag) == 1 then
          -- another message held under that tag (anyone can copy a tag): one of its own
          tag = 'taskq-' .. redis.sha1hex(envelope .. '\n' .. now .. '\n' .. #out)
        end
        seen[tag] = true
        unacked[#unacked + 1] = tag
        unacked[#unacked + 1] = '[' .. envelope .. ', "", ' .. routing .. ']'
        index[#index + 1] = now
        index[#index + 1] = tag
        leases[#leases + 1] = expiry
        leases[#leases + 1] = tag
        claims[#claims + 1] = tag
        claims[#claims + 1] = owner .. '\n' .. #envelope .. '\n' .. step
        local count = tonumber(redis.call('HGET', COUNTS, tag) or '0') + 1
        out[#out + 1] = i
        out[#out + 1] = tag
        out[#out + 1] = count
        out[#out + 1] = envelope
        taken = taken + 1
      end
      redis.call('ZADD', P .. '_taskq.leases.' .. q, unpack(leases))
    end
  end
end
if #unacked > 0 then
  redis.call('HSET', UNACKED, unpack(unacked))
  redis.call('ZADD', INDEX, unpack(index))
  redis.call('HSET', CLAIMS, unpack(claims))
end
return out
"""
)

# ARGV: P, WAKE, owner, lease seconds, then (queue, tag) pairs. Returns how many renewed.
RENEW = Script(
    _PRELUDE
    + r"""
local owner, lease = ARGV[3] .. '\n', tonumber(ARGV[4])
local now = server_now()
local renewed = 0
for i = 5, #ARGV, 2 do
  local q, tag = ARGV[i], ARGV[i + 1]
  local claim = redis.call('HGET', CLAIMS, tag)
  if claim and string.sub(claim, 1, #owner) == owner and redis.call('HEXISTS', UNACKED, tag) == 1 then
    redis.call('ZADD', P .. '_taskq.leases.' .. q, 'XX', now + lease, tag)
    redis.call('ZADD', INDEX, 'XX', now, tag)
    renewed = renewed + 1
  end
end
return renewed
"""
)

# ARGV: P, WAKE, owner, then (queue, tag) pairs. Counts a start of each message this owner holds.
STARTED = Script(
    _PRELUDE
    + r"""
local owner = ARGV[3] .. '\n'
for i = 4, #ARGV, 2 do
  local tag = ARGV[i + 1]
  local claim = redis.call('HGET', CLAIMS, tag)
  if claim and string.sub(claim, 1, #owner) == owner then redis.call('HINCRBY', COUNTS, tag, 1) end
end
return 0
"""
)

# ARGV: P, WAKE, owner, then (queue, tag) pairs. Forgets what this owner holds.
ACK = Script(
    _PRELUDE
    + r"""
local owner = ARGV[3] .. '\n'
local tags = {}
for i = 4, #ARGV, 2 do
  local q, tag = ARGV[i], ARGV[i + 1]
  local claim = redis.call('HGET', CLAIMS, tag)
  if claim and string.sub(claim, 1, #owner) == owner then
    redis.call('ZREM', P .. '_taskq.leases.' .. q, tag)
    tags[#tags + 1] = tag
  end
end
if #tags > 0 then
  redis.call('HDEL', UNACKED, unpack(tags))
  redis.call('ZREM', INDEX, unpack(tags))
  redis.call('HDEL', CLAIMS, unpack(tags))
  redis.call('HDEL', COUNTS, unpack(tags))
end
return #tags
"""
)

# ARGV: P, WAKE, owner, delay seconds, then (queue, tag) pairs.
REQUEUE = Script(
    _PRELUDE
    + r"""
local owner, delay = ARGV[3], tonumber(ARGV[4])
local due = nil
if delay > 0 then due = server_now() + delay end
local moved = 0
for i = 5, #ARGV, 2 do moved = moved + restore(ARGV[i], ARGV[i + 1], due, owner) end
return moved
"""
)

# ARGV: P, WAKE, owner, queue, tag, dead-letter entry. Takes the message out, keeps the entry.
DEAD_LETTER = Script(
    _PRELUDE
    + r"""
local owner, q, tag = ARGV[3] .. '\n', ARGV[4], ARGV[5]
local claim = redis.call('HGET', CLAIMS, tag)
if claim and string.sub(claim, 1, #owner) == owner then
  redis.call('ZREM', P .. '_taskq.leases.' .. q, tag)
  redis.call('HDEL', UNACKED, tag)
  redis.call('ZREM', INDEX, tag)
  redis.call('HDEL', CLAIMS, tag)
end
redis.call('HDEL', COUNTS, tag)
redis.call('LPUSH', P .. '_taskq.dead.' .. q, ARGV[6])
redis.call('SADD', P .. '_taskq.dead_queues', q)
return 1
"""
)

# ARGV: P, WAKE, queue... Returns "0" when a message is claimable now, the seconds until
# the next delayed message or lease comes due, or "-1" when there is nothing to wait for.
PROBE = Script(
    _PRELUDE
    + r"""
local now = server_now()
local soonest = nil
for i = 3, #ARGV do
  local q = ARGV[i]
  for s = 1, 4 do
    if redis.call('LLEN', list_key(q, STEPS[s])) > 0 then return '0' end
  end
  for _, zset in ipairs({P .. '_taskq.delayed.' .. q, P .. '_taskq.leases.' .. q}) do
    local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
    if head[2] then
      local wait = tonumber(head[2]) - now
      if wait <= 0 then return '0' end
      if soonest == nil or wait < soonest then soonest = wait end
    end
  end
end
if soonest == nil then return '-1' end
return tostring(soonest)
"""
)

# ARGV: P, WAKE, queue. Deletes waiting and delayed messages; returns how many.
PURGE = Script(
    _PRELUDE
    + r"""
local q = ARGV[3]
local count = 0
for s = 1, 4 do
  local key = list_key(q, STEPS[s])
  count = count + redis.call('LLEN', key)
  redis.call('DEL', key)
end
local delayed = P .. '_taskq.delayed.' .. q
count = count + redis.call('ZCARD', delayed)
redis.call('DEL', delayed)
return count
"""
)

# ARGV: P, WAKE, queue. Waiting + delayed + held.
DEPTH = Script(
    _PRELUDE
    + r"""
local q = ARGV[3]
local count = redis.call('ZCARD', P .. '_taskq.delayed.' .. q) + redis.call('ZCARD', P .. '_taskq.leases.' .. q)
for s = 1, 4 do count = count + redis.call('LLEN', list_key(q, STEPS[s])) end
return count
"""
)

# KEYS: none. ARGV: key, value, expiry in ms (0: none). SET and tell subscribers, as Celery does.
STORE_AND_ANNOUNCE = Script(
    r"""
local key, value, ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
if ms > 0 then
  redis.call('SET', key, value, 'PX', ms)
else
  redis.call('SET', key, value)
end
redis.call('PUBLISH', key, value)
return 0
"""
)

# ARGV: key, expiry in ms (0: none). INCR, and set the expiry the first time.
INCR_WITH_EXPIRY = Script(
    r"""
local value = redis.call('INCR', ARGV[1])
local ms = tonumber(ARGV[2])
if ms > 0 then redis.call('PEXPIRE', ARGV[1], ms) end
return value
"""
)

# ---- Chords, in the layout of Celery's Redis result backend ------------------------------
#
# For the chord counting in group G (the key P + "celery-taskset-meta-" + G):
#   G.s   the header's size, set when the chord is sent (a Celery client: just before its last
#         header task; taskq's: before the first)
#   G.t   a number added to the size (Celery's add_to_chord, when a header task is replaced)
#   G.j   zset: score = the task's place in the header, member = encoded [1, id, state, result]
#   G.d   set of "id:place" already counted: a task run twice counts once
#   G.c   the claim on sending the body: a token while a Celery worker sends it, "taskq <id>:<place>"
#         while a taskq worker does (the part that took it), then "done"; a claim lapses unless
#         confirmed, and G.j, G.t, G.s and G.d stay until then, as with Celery's claims

# ARGV: G, size, expiry in s (0: none). A new run of the chord: no claim, this size.
CHORD_SIZE = Script(
    r"""
local G, size, expires = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('DEL', G .. '.c')
if expires > 0 then
  redis.call('SET', G .. '.s', size, 'EX', expires)
else
  redis.call('SET', G .. '.s', size)
end
return 1
"""
)

# ARGV: G, entry, task id, place (score), expiry in s (0: none), size to use when G.s is
# missing (0: none), seconds a claim lasts unconfirmed. Counts the entry once; returns {-1}
# when the chord's body was sent already, {-2} when another part or a Celery worker holds
# the claim, {counted, -1} while its size is unknown, {counted, size} while parts are
# missing, and to a caller that takes the claim {counted, size, entries in header order,
# 1 if this part held it already}. The part that holds the claim takes it again (its task
# ran again: its worker died before confirming, CHORD_SENT); anyone takes a lapsed one.
CHORD_PART = Script(
    r"""
local G, entry, tid, place = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, fallback, claim_for = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local J, T, S, D, C = G .. '.j', G .. '.t', G .. '.s', G .. '.d', G .. '.c'
local claim = redis.call('GET', C)
if claim == 'done' then return {-1} end
if redis.call('SADD', D, tid .. ':' .. place) == 1 then redis.call('ZADD', J, place, entry) end
if fallback > 0 and redis.call('EXISTS', S) == 0 then redis.call('SET', S, fallback) end
if expires > 0 then
  for _, key in ipairs({J, T, S, D}) do redis.call('EXPIRE', key, expires) end
end
local counted = redis.call('ZCARD', J)
local size = redis.call('GET', S)
if not size then return {counted, -1} end
local total = tonumber(size) + tonumber(redis.call('GET', T) or '0')
if counted ~= total then return {counted, total} end
local mine = 'taskq ' .. tid .. ':' .. place
if claim and claim ~= mine then return {-2} end
redis.call('SET', C, mine, 'EX', claim_for)
return {counted, total, redis.call('ZRANGE', J, 0, -1), claim and 1 or 0}
"""
)

# ARGV: G, seconds the "done" mark is kept. The body was sent: the claim becomes "done"
# (whoever held it: a Celery worker that took a lapsed claim then finds it gone and does
# not send), and the chord's state is deleted.
CHORD_SENT = Script(
    r"""
local G, done_for = ARGV[1], tonumber(ARGV[2])
redis.call('DEL', G .. '.j', G .. '.t', G .. '.s', G .. '.d')
redis.call('SET', G .. '.c', 'done', 'EX', done_for)
return 1
"""
)

_BY_SHA = {
    script.sha: script
    for script in (
        PUBLISH,
        CLAIM,
        RENEW,
        STARTED,
        ACK,
        REQUEUE,
        DEAD_LETTER,
        PROBE,
        PURGE,
        DEPTH,
        STORE_AND_ANNOUNCE,
        INCR_WITH_EXPIRY,
        CHORD_SIZE,
        CHORD_PART,
        CHORD_SENT,
    )
}


def by_sha(sha: str) -> Script | None:
    """The script of this module with that SHA1 (to send it again after a NOSCRIPT)."""
    return _BY_SHA.get(sha)


__all__ = [
    "ACK",
    "CHORD_PART",
    "CHORD_SENT",
    "CHORD_SIZE",
    "CLAIM",
    "CONNECTION_ERRORS",
    "DEAD_LETTER",
    "DEPTH",
    "INCR_WITH_EXPIRY",
    "PROBE",
    "PUBLISH",
    "PURGE",
    "RENEW",
    "REQUEUE",
    "STARTED",
    "STORE_AND_ANNOUNCE",
    "Script",
    "as_int",
    "as_text",
    "by_sha",
    "run",
]
