/**
 * The Lua scripts of RedisStore: each multi-step change is one script, so it is atomic, and each
 * touches only keys of one player (one hash slot), so Redis Cluster runs it unchanged.
 *
 * Route publications are "pid epoch online home at" (server names have no spaces).
 */
import { KEPT_CALL_PREFIX } from './store.js';

/**
 * The fence every route change starts with: read the route (KEYS[1]); no route: 'missing'; an epoch
 * other than ARGV[1]: 'stale' with the route as it is. Leaves the route in `r`.
 */
const FENCE = `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[1]) then return {'stale', r[1], r[2], r[3], r[4]} end`;

/**
 * A claim after the fence (ARGV: expectEpoch, at, online, pid, channel): epoch + 1, the new owner;
 * a claim back home (at '') clears the home's mark; the change is published. Leaves the new epoch in `epoch`.
 */
const CLAIM = `${FENCE}
     local epoch = tostring(tonumber(r[3]) + 1)
     redis.call('HSET', KEYS[1], 'at', ARGV[2], 'epoch', epoch, 'online', ARGV[3])
     if ARGV[2] == '' then redis.call('HSET', KEYS[1], 'go', '', 'goEpoch', '0') end
     redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. r[1] .. ' ' .. ARGV[2])`;

/**
 * Lua: whether the call id in `id` is one of the latest (listed in the document, forgotten in
 * time), not a kept one (KEPT_CALL_PREFIX: in the player's kept ledger, beside the document).
 */
const NOT_KEPT = (id: string) => `string.sub(${id}, 1, ${KEPT_CALL_PREFIX.length}) ~= '${KEPT_CALL_PREFIX}'`;

/**
 * Lua: appends to `reply` what loading a player's document reads (KEYS[2] doc hash, KEYS[3] call
 * ids, KEYS[4] kept results, KEYS[5] their times; `cutoff` the oldest time still remembered,
 * exclusive): the count of doc hash fields and the hash flat, the count of values of the kept pairs and
 * the kept results still remembered as id, text pairs, then the remembered call ids, newest first.
 */
const LOAD = (cutoff: string) => `local d = redis.call('HGETALL', KEYS[2])
     reply[#reply + 1] = tostring(#d)
     for i = 1, #d do reply[#reply + 1] = d[i] end
     local keptIds = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. ${cutoff}, '+inf')
     local keptTexts = {}
     if #keptIds > 0 then keptTexts = redis.call('HMGET', KEYS[4], unpack(keptIds)) end
     local keptAt = #reply + 1
     reply[keptAt] = '0'
     local keptValues = 0
     for i = 1, #keptIds do
       if keptTexts[i] then
         reply[#reply + 1] = keptIds[i]
         reply[#reply + 1] = keptTexts[i]
         keptValues = keptValues + 2
       end
     end
     reply[keptAt] = tostring(keptValues)
     local ids = redis.call('LRANGE', KEYS[3], 0, -1)
     for i = 1, #ids do reply[#reply + 1] = ids[i] end`;

/**
 * Creates the hash KEYS[1] with `create` unless it exists; answers 'created' or 'exists', then the
 * hash as it is (a replayed request sees what the first one made).
 */
const createOnce = (create: string) => `local created = 'exists'
     if redis.call('EXISTS', KEYS[1]) == 0 then
       ${create}
       created = 'created'
     end
     local reply = redis.call('HGETALL', KEYS[1])
     table.insert(reply, 1, created)
     return reply`;

/** [command name, Lua source, number of keys]. */
export const LUA: [string, string, number][] = [
  [
    'kfEnsureRoute',
    // KEYS: route. ARGV: home, pid, channel.
    `if redis.call('EXISTS', KEYS[1]) == 0 then
       redis.call('HSET', KEYS[1], 'home', ARGV[1], 'at', '', 'epoch', '0', 'online', '0')
       redis.call('PUBLISH', ARGV[3], ARGV[2] .. ' 0 0 ' .. ARGV[1] .. ' ')
     end
     return redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')`,
    1,
  ],
  [
    'kfClaimRoute',
    // KEYS: route. ARGV: expectEpoch, at, online, pid, channel. A claim back home clears the mark.
    `${CLAIM}
     return {'ok', r[1], ARGV[2], epoch, ARGV[3]}`,
    1,
  ],
  [
    'kfClaimAndLoad',
    // KEYS: route, doc, calls, kept, kept-at. ARGV as kfClaimRoute, then the kept results' cutoff.
    // Also returns the document as kfLoadDocument does.
    `${CLAIM}
     local reply = {'ok', r[1], ARGV[2], epoch, ARGV[3]}
     ${LOAD('ARGV[6]')}
     return reply`,
    5,
  ],
  [
    'kfLoadDocument',
    // KEYS: route (unused), doc, calls, kept, kept-at. ARGV: the kept results' cutoff. One atomic read.
    `local reply = {}
     ${LOAD('ARGV[1]')}
     return reply`,
    5,
  ],
  [
    'kfKeptCall',
    // KEYS: doc, kept, kept-at. ARGV: call id, cutoff. The kept result while remembered (or, from a
    // document stored before kept results had a ledger, its c:<id> field), else nil.
    `local at = redis.call('ZSCORE', KEYS[3], ARGV[1])
     if at and tonumber(at) > tonumber(ARGV[2]) then return redis.call('HGET', KEYS[2], ARGV[1]) end
     return redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])`,
    3,
  ],
  [
    'kfSetOnline',
    // KEYS: route. ARGV: epoch, online, pid, channel.
    `${FENCE}
     redis.call('HSET', KEYS[1], 'online', ARGV[2])
     redis.call('PUBLISH', ARGV[4], ARGV[3] .. ' ' .. r[3] .. ' ' .. ARGV[2] .. ' ' .. r[1] .. ' ' .. r[2])
     return {'ok', r[1], r[2], r[3], ARGV[2]}`,
    1,
  ],
  [
    'kfReleaseToHome',
    // KEYS: route. ARGV: epoch, pid, channel. The home takes the player back and clears its mark.
    `${FENCE}
     local epoch = tostring(tonumber(r[3]) + 1)
     redis.call('HSET', KEYS[1], 'at', '', 'epoch', epoch, 'online', '0', 'go', '', 'goEpoch', '0')
     redis.call('PUBLISH', ARGV[3], ARGV[2] .. ' ' .. epoch .. ' 0 ' .. r[1] .. ' ')
     return {'ok', r[1], '', epoch, '0'}`,
    1,
  ],
  [
    'kfSetMark',
    // KEYS: route. ARGV: go ('' clears), epoch. Compare-and-set on the route's epoch.
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[2]) then return {'stale', r[1], r[2], r[3], r[4]} end
     redis.call('HSET', KEYS[1], 'go', ARGV[1], 'goEpoch', ARGV[2])
     return {'ok', r[1], r[2], r[3], r[4]}`,
    1,
  ],
  [
    'kfUnlistMarked',
    // KEYS: the home's marked set. ARGV: pid, below. Unlists him only if listed for an older epoch.
    `local epoch = redis.call('ZSCORE', KEYS[1], ARGV[1])
     if epoch and tonumber(epoch) < tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
     return 0`,
    1,
  ],
  [
    'kfSaveDocument',
    // KEYS: route, doc, calls, kept, kept-at. ARGV: epoch, data, how many call results to keep,
    // now (ms), how long kept results last (ms), how many kept results at most, then call id and
    // result pairs. Fenced: refused unless epoch is the route's current one. Call results live in
    // the doc hash as c:<id>; the calls list orders their ids, newest first, to forget the oldest
    // (a document may briefly remember up to 64 more than asked). Kept results (KEPT_CALL_PREFIX)
    // go to their own ledger instead: a hash of results and a sorted set of their times; those
    // past their time or beyond the most are dropped, and the ledger expires when its newest does.
    // Few redis.calls (each costs more than its work): the epoch alone to fence, one HSET and one
    // LPUSH per 1000 results.
    `local e = redis.call('HGET', KEYS[1], 'epoch')
     if not e or tonumber(e) ~= tonumber(ARGV[1]) then
       local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
       if not r[1] then return {'missing'} end
       return {'stale', r[1], r[2], r[3], r[4]}
     end
     if #ARGV == 6 then
       redis.call('HSET', KEYS[2], 'data', ARGV[2], 'epoch', ARGV[1])
       return {'ok'}
     end
     local length = 0
     local anyKept = false
     if #ARGV == 8 and ${NOT_KEPT('ARGV[7]')} then
       -- One call result (the usual save): no tables to build.
       redis.call('HSET', KEYS[2], 'data', ARGV[2], 'epoch', ARGV[1], 'c:' .. ARGV[7], ARGV[8])
       length = redis.call('LPUSH', KEYS[3], ARGV[7])
     else
       local fields = {'data', ARGV[2], 'epoch', ARGV[1]}
       local i = 7
       while i <= #ARGV do
         local last = math.min(#ARGV, i + 1999)
         local ids = {}
         local kept = {}
         local stamps = {}
         for j = i, last, 2 do
           if ${NOT_KEPT('ARGV[j]')} then
             fields[#fields + 1] = 'c:' .. ARGV[j]
             fields[#fields + 1] = ARGV[j + 1]
             ids[#ids + 1] = ARGV[j]
           else
             kept[#kept + 1] = ARGV[j]
             kept[#kept + 1] = ARGV[j + 1]
             stamps[#stamps + 1] = ARGV[4]
             stamps[#stamps + 1] = ARGV[j]
           end
         end
         if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
         if #ids > 0 then length = redis.call('LPUSH', KEYS[3], unpack(ids)) end
         if #kept > 0 then
           redis.call('HSET', KEYS[4], unpack(kept))
           redis.call('ZADD', KEYS[5], unpack(stamps))
           anyKept = true
         end
         fields = {}
         i = last + 1
       end
     end
     if anyKept then
       local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[5])
       local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', cutoff)
       local count = redis.call('ZCARD', KEYS[5]) - #old
       local most = tonumber(ARGV[6])
       if count > most then old = redis.call('ZRANGE', KEYS[5], 0, #old + count - most - 1) end
       for j = 1, #old, 1000 do
         local part = {}
         for k = j, math.min(#old, j + 999) do part[#part + 1] = old[k] end
         redis.call('HDEL', KEYS[4], unpack(part))
         redis.call('ZREM', KEYS[5], unpack(part))
       end
       redis.call('PEXPIRE', KEYS[4], ARGV[5])
       redis.call('PEXPIRE', KEYS[5], ARGV[5])
     end
     -- Forget the oldest results in batches of 64, so most saves do not trim at all.
     local keep = tonumber(ARGV[3])
     if length > keep + 64 then
       local old = redis.call('LRANGE', KEYS[3], keep, -1)
       for j = 1, #old do old[j] = 'c:' .. old[j] end
       redis.call('HDEL', KEYS[2], unpack(old))
       redis.call('LTRIM', KEYS[3], 0, keep - 1)
     end
     return {'ok'}`,
    5,
  ],
  [
    'kfUpdateProfile',
    // KEYS: profile. ARGV: pid, channel, changed (JSON), then name, value (JSON) pairs.
    `local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
     for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], 'f:' .. ARGV[i], ARGV[i + 1]) end
     redis.call('PUBLISH', ARGV[2], ARGV[1] .. ' ' .. version .. ' ' .. ARGV[3])
     return redis.call('HGETALL', KEYS[1])`,
    1,
  ],
  [
    'kfSyncProfileRoute',
    // KEYS: route, profile. ARGV: pid, channel. Copies the route into the profile's route fields
    // (values as JSON text, like every profile field); writes and publishes only what changed.
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'online')
     if not r[1] then return {'noroute'} end
     local server = r[2]
     if not server or server == '' then server = r[1] end
     local online = 'false'
     if r[3] == '1' then online = 'true' end
     local names = {'home', 'server', 'online'}
     local want = {cjson.encode(r[1]), cjson.encode(server), online}
     local have = redis.call('HMGET', KEYS[2], 'f:home', 'f:server', 'f:online')
     local parts = {}
     for i = 1, 3 do
       if have[i] ~= want[i] then
         redis.call('HSET', KEYS[2], 'f:' .. names[i], want[i])
         parts[#parts + 1] = '"' .. names[i] .. '":' .. want[i]
       end
     end
     if #parts > 0 then
       local version = redis.call('HINCRBY', KEYS[2], 'version', 1)
       redis.call('PUBLISH', ARGV[2], ARGV[1] .. ' ' .. version .. ' {' .. table.concat(parts, ',') .. '}')
     end
     local reply = redis.call('HGETALL', KEYS[2])
     table.insert(reply, 1, 'ok')
     return reply`,
    2,
  ],
  [
    'kfFillProfile',
    // KEYS: profile. ARGV: pid, channel, then name, value (JSON) pairs. Sets only missing fields.
    `local parts = {}
     for i = 3, #ARGV, 2 do
       if redis.call('HSETNX', KEYS[1], 'f:' .. ARGV[i], ARGV[i + 1]) == 1 then
         parts[#parts + 1] = cjson.encode(ARGV[i]) .. ':' .. ARGV[i + 1]
       end
     end
     if #parts > 0 then
       local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
       redis.call('PUBLISH', ARGV[2], ARGV[1] .. ' ' .. version .. ' {' .. table.concat(parts, ',') .. '}')
     end
     return redis.call('HGETALL', KEYS[1])`,
    1,
  ],
  [
    'kfCreateGuild',
    // KEYS: guild. ARGV: name, now. Creates it unless it exists; 1 when created.
    `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
     redis.call('HSET', KEYS[1], 'name', ARGV[1], 'createdAt', ARGV[2])
     return 1`,
    1,
  ],
  [
    'kfGetGuild',
    // KEYS: guild, members, treasury. Reply: name, createdAt, member count, members…, treasury pairs….
    `local g = redis.call('HMGET', KEYS[1], 'name', 'createdAt')
     if not g[1] then return {} end
     local members = redis.call('SMEMBERS', KEYS[2])
     local reply = {g[1], g[2], tostring(#members)}
     for i = 1, #members do reply[#reply + 1] = members[i] end
     local treasury = redis.call('HGETALL', KEYS[3])
     for i = 1, #treasury do reply[#reply + 1] = treasury[i] end
     return reply`,
    3,
  ],
  [
    'kfSetGuildMember',
    // KEYS: guild, members. ARGV: pid, '1' to add or '0' to remove. -1: no such guild; else 1 when it changed.
    `if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
     if ARGV[2] == '1' then return redis.call('SADD', KEYS[2], ARGV[1]) end
     return redis.call('SREM', KEYS[2], ARGV[1])`,
    2,
  ],
  [
    'kfTreasuryChange',
    // KEYS: guild, treasury, requests, request order, ledger.
    // ARGV: request id, kind (deposit|deduct), resource, amount, reason, requests to keep, ledger
    // length, now, largest balance. One request id is decided once: its outcome is stored with the
    // balance in this same step ("status kind amount balance resource"), so a retry returns it.
    `local done = redis.call('HGET', KEYS[3], ARGV[1])
     if done then return {'replayed', done} end
     if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
     local amount = tonumber(ARGV[4])
     local balance = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
     local status = 'applied'
     if ARGV[2] == 'deduct' then
       if balance < amount then status = 'insufficient' end
     elseif balance + amount > tonumber(ARGV[9]) then
       status = 'overflow'
     end
     if status == 'applied' then
       local delta = amount
       if ARGV[2] == 'deduct' then delta = -amount end
       balance = redis.call('HINCRBY', KEYS[2], ARGV[3], string.format('%d', delta))
       redis.call('LPUSH', KEYS[5], '{"requestId":' .. cjson.encode(ARGV[1]) .. ',"kind":"' .. ARGV[2] ..
         '","resource":' .. cjson.encode(ARGV[3]) .. ',"amount":' .. ARGV[4] .. ',"balance":' ..
         string.format('%d', balance) .. ',"reason":' .. cjson.encode(ARGV[5]) .. ',"at":' .. ARGV[8] .. '}')
       redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[7]) - 1)
     end
     local outcome = status .. ' ' .. ARGV[2] .. ' ' .. ARGV[4] .. ' ' .. string.format('%d', balance) .. ' ' .. ARGV[3]
     redis.call('HSET', KEYS[3], ARGV[1], outcome)
     redis.call('LPUSH', KEYS[4], ARGV[1])
     local keep = tonumber(ARGV[6])
     while redis.call('LLEN', KEYS[4]) > keep do
       redis.call('HDEL', KEYS[3], redis.call('RPOP', KEYS[4]))
     end
     return {'decided', outcome}`,
    5,
  ],
  [
    'kfRankTop',
    // KEYS: board. ARGV: count. Flat member, score pairs, best first (scores as Redis prints them).
    `return redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')`,
    1,
  ],
  [
    'kfRankOf',
    // KEYS: board. ARGV: pid. {0-based position, score} or nothing.
    `local position = redis.call('ZREVRANK', KEYS[1], ARGV[1])
     if not position then return {} end
     return {tostring(position), redis.call('ZSCORE', KEYS[1], ARGV[1])}`,
    1,
  ],
  [
    'kfCreateAccount',
    // KEYS: account, next pid. ARGV: password hash, home, now, the pid before the first one.
    createOnce(`if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[4]) end
       local pid = redis.call('INCR', KEYS[2])
       redis.call('HSET', KEYS[1], 'pid', tostring(pid), 'home', ARGV[2], 'passwordHash', ARGV[1], 'createdAt', ARGV[3])`),
    2,
  ],
  [
    'kfCreateOrder',
    // KEYS: order, the player's pending orders, players with pending orders, order sequence.
    // ARGV: order id, pid, amount, now. Records a pending order unless the id exists.
    createOnce(`local seq = redis.call('INCR', KEYS[4])
       redis.call('HSET', KEYS[1], 'pid', ARGV[2], 'amount', ARGV[3], 'state', 'pending', 'createdAt', ARGV[4], 'deliveredAt', '0')
       redis.call('ZADD', KEYS[2], seq, ARGV[1])
       redis.call('SADD', KEYS[3], ARGV[2])`),
    4,
  ],
  [
    'kfDeliverOrder',
    // KEYS: order, the player's pending orders, players with pending orders. ARGV: order id, pid, now.
    `local h = redis.call('HMGET', KEYS[1], 'pid', 'state')
     if not h[1] then return {'missing'} end
     if h[2] ~= 'delivered' then redis.call('HSET', KEYS[1], 'state', 'delivered', 'deliveredAt', ARGV[3]) end
     redis.call('ZREM', KEYS[2], ARGV[1])
     if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
     local reply = redis.call('HGETALL', KEYS[1])
     table.insert(reply, 1, 'ok')
     return reply`,
    3,
  ],
];
