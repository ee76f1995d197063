/**
 * The Lua scripts of RedisStore: each multi-step change is one script, so it is atomic, and each
 * touches only keys of one player (one hash slot), so Redis Cluster runs it unchanged.
 *
 * Route publications are "pid epoch online home at" (server names have no spaces).
 */

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
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[1]) then return {'stale', r[1], r[2], r[3], r[4]} end
     local epoch = tostring(tonumber(r[3]) + 1)
     redis.call('HSET', KEYS[1], 'at', ARGV[2], 'epoch', epoch, 'online', ARGV[3])
     if ARGV[2] == '' then redis.call('HSET', KEYS[1], 'go', '', 'goEpoch', '0') end
     redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. r[1] .. ' ' .. ARGV[2])
     return {'ok', r[1], ARGV[2], epoch, ARGV[3]}`,
    1,
  ],
  [
    'kfClaimAndLoad',
    // KEYS: route, doc, calls. ARGV as kfClaimRoute. Also returns the document hash (data, epoch,
    // c:<id> call results) and the remembered call ids, newest first.
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[1]) then return {'stale', r[1], r[2], r[3], r[4]} end
     local epoch = tostring(tonumber(r[3]) + 1)
     redis.call('HSET', KEYS[1], 'at', ARGV[2], 'epoch', epoch, 'online', ARGV[3])
     if ARGV[2] == '' then redis.call('HSET', KEYS[1], 'go', '', 'goEpoch', '0') end
     redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. r[1] .. ' ' .. ARGV[2])
     local d = redis.call('HGETALL', KEYS[2])
     local reply = {'ok', r[1], ARGV[2], epoch, ARGV[3], tostring(#d)}
     for i = 1, #d do reply[#reply + 1] = d[i] end
     local ids = redis.call('LRANGE', KEYS[3], 0, -1)
     for i = 1, #ids do reply[#reply + 1] = ids[i] end
     return reply`,
    3,
  ],
  [
    'kfSetOnline',
    // KEYS: route. ARGV: epoch, online, pid, channel.
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[1]) then return {'stale', r[1], r[2], r[3], r[4]} end
     redis.call('HSET', KEYS[1], 'online', ARGV[2])
     redis.call('PUBLISH', ARGV[4], ARGV[3] .. ' ' .. r[3] .. ' ' .. ARGV[2] .. ' ' .. r[1] .. ' ' .. r[2])
     return {'ok', r[1], r[2], r[3], ARGV[2]}`,
    1,
  ],
  [
    'kfReleaseToHome',
    // KEYS: route. ARGV: epoch, pid, channel. The home takes the player back and clears its mark.
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[1]) then return {'stale', r[1], r[2], r[3], r[4]} end
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
    'kfSaveDocument',
    // KEYS: route, doc, calls. ARGV: epoch, data, how many call results to keep, then call id and
    // result pairs. Fenced: refused unless epoch is the route's current one. Call results live in
    // the doc hash as c:<id>; the calls list orders their ids, newest first, to forget the oldest.
    `local r = redis.call('HMGET', KEYS[1], 'home', 'at', 'epoch', 'online')
     if not r[1] then return {'missing'} end
     if tonumber(r[3]) ~= tonumber(ARGV[1]) then return {'stale', r[1], r[2], r[3], r[4]} end
     redis.call('HSET', KEYS[2], 'data', ARGV[2], 'epoch', ARGV[1])
     if #ARGV > 3 then
       for i = 4, #ARGV, 2 do
         redis.call('HSET', KEYS[2], 'c:' .. ARGV[i], ARGV[i + 1])
         redis.call('LPUSH', KEYS[3], ARGV[i])
       end
       local keep = tonumber(ARGV[3])
       while redis.call('LLEN', KEYS[3]) > keep do
         redis.call('HDEL', KEYS[2], 'c:' .. redis.call('RPOP', KEYS[3]))
       end
     end
     return {'ok'}`,
    3,
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
];
