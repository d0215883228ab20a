"""A token bucket per tenant in Redis, for the POST /jobs rate limit.

One Lua script reads the bucket, refills it for the time passed (Redis's own clock, so API replicas
agree), takes a token if there is one, and answers (allowed, seconds until the next token). Atomic,
so concurrent requests on any number of API processes share one bucket.
"""

from __future__ import annotations

import math

import redis

from modelpress_core.storage import keys

TAKE = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 7: writes after TIME need effects replication
local rate = tonumber(ARGV[1])      -- tokens per second
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) / 1000000 * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {allowed, tostring(wait)}
"""


class SubmitRateLimiter:
    def __init__(self, client: redis.Redis, per_minute: float, burst: int):
        self.client = client
        self.rate = per_minute / 60.0
        self.burst = burst
        self._take = client.register_script(TAKE)

    def take(self, tenant: str) -> tuple[bool, int]:
        """(allowed, Retry-After seconds); always allowed when the rate is 0 (no limit)."""
        if self.rate <= 0:
            return True, 0
        allowed, wait = self._take(keys=[keys.submit_bucket(tenant)], args=[self.rate, self.burst])
        return bool(int(allowed)), max(1, math.ceil(float(wait))) if not int(allowed) else 0
