"""AuditStore in Redis: several gateways share counters, holds and one chain.

Keys (all under the configured prefix, default "leakguard:"):
    events        list of stored events (JSON), in seq order
    head          the signed checkpoint of the last append (audit.chain.checkpoint)
    key_id        the chain key's fingerprint: a gateway with another key is refused
    c:<key>       sorted set: one member per `add` ("<nonce>|<amount>"), scored by time
    d:<key>       sorted set: distinct members, scored by when last seen
    s:<key>       set: what `first_seen` remembers
    holds         hash: JSON [kind, name] → the Hold as JSON

Appends are optimistic transactions: WATCH the head, link the batch in
Python (the HMAC key never goes to Redis), MULTI/EXEC the RPUSH and the new
head; a concurrent append from another gateway aborts the EXEC and we link
again on the new head. So seq is always the previous seq + 1 and prev the
previous hash, across processes. Windows are sorted sets trimmed by score
in the same atomic step that counts them (a Lua script for `add`, which
sums the amounts server-side).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator

import redis

from audit.chain import checkpoint, in_period, key_id, link, resume
from audit.store import Hold, StoreError

PAGE = 500
TIMEOUT = 5.0  # seconds: a vanished Redis fails the call instead of hanging the gateway

# KEYS[1] the sorted set; ARGV: now, cutoff, member, ttl. Returns the window's sum as text
# (a Lua number returned to Redis would be truncated to an integer).
_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local total = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    total = total + tonumber(string.match(m, '|(.*)$'))
end
return string.format('%.17g', total)
"""


class RedisStore:
    def __init__(self, url: str, chain_key: bytes, *, prefix: str = "leakguard:") -> None:
        self.url = url
        self.chain_key = chain_key
        self.prefix = prefix
        try:
            self._r = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            )
            self._add = self._r.register_script(_ADD)
            ours = key_id(chain_key)
            self._r.set(self._k("key_id"), ours, nx=True)
            theirs = self._r.get(self._k("key_id"))
        except (redis.RedisError, ValueError) as err:
            raise StoreError(f"audit store {_shown(url)}: {err}") from err
        if theirs != ours:
            raise StoreError(
                f"audit store {_shown(url)} (prefix {prefix!r}) holds a chain kept with another "
                f"installation key (key id {theirs}, ours {ours}): gateways sharing a Redis "
                "must share installation.key"
            )

    def _k(self, name: str) -> str:
        return self.prefix + name

    # -- the record ------------------------------------------------------------------------

    def append(self, event: dict) -> dict:
        return self.append_many([event])[0]

    def append_many(self, events: list[dict]) -> list[dict]:
        if not events:
            return []
        head_key = self._k("head")
        with self._r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(head_key)
                    raw, tail = pipe.get(head_key), pipe.lindex(self._k("events"), -1)
                    last = _event(tail) if tail else None
                    head, notice = resume(
                        _event(raw) if raw else None,
                        (_seq(last), str(last.get("hash"))) if last else None,
                    )
                    batch = [notice, *events] if notice else events
                    out = []
                    for event in batch:
                        head = link(event, head, self.chain_key)
                        out.append(head)
                    mark = checkpoint(head["seq"], head["hash"], self.chain_key)
                    pipe.multi()
                    pipe.rpush(self._k("events"), *(_json(e) for e in out))
                    pipe.set(head_key, _json(mark))
                    pipe.execute()
                    return out[len(out) - len(events) :]
                except redis.WatchError:
                    continue  # another gateway appended first: link on its head

    def events(
        self, *, after_seq: int = 0, since: float | None = None, until: float | None = None
    ) -> Iterator[dict]:
        start = max(after_seq, 0)
        key = self._k("events")
        while True:
            rows = self._r.lrange(key, start, start + PAGE - 1)
            for raw in rows:
                event = _event(raw)
                seq = event.get("seq")
                if (not isinstance(seq, int) or seq > after_seq) and in_period(event, since, until):
                    yield event
            if len(rows) < PAGE:
                return
            start += PAGE

    def head(self) -> dict | None:
        raw = self._r.get(self._k("head"))
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"unreadable": raw}

    # -- counters --------------------------------------------------------------------------

    def add(self, key: str, now: float, window: float, amount: float = 1.0) -> float:
        member = f"{secrets.token_hex(8)}|{float(amount)!r}"
        total = self._add(
            keys=[self._k("c:" + key)], args=[repr(now), repr(now - window), member, _ttl(window)]
        )
        return float(total)

    def distinct(self, key: str, member: str, now: float, window: float) -> int:
        k = self._k("d:" + key)
        pipe = self._r.pipeline(transaction=True)
        pipe.zremrangebyscore(k, "-inf", repr(now - window))
        pipe.zadd(k, {member: now})
        pipe.expire(k, _ttl(window))
        pipe.zcard(k)
        return int(pipe.execute()[-1])

    def first_seen(self, key: str, member: str) -> bool:
        return self._r.sadd(self._k("s:" + key), member) == 1

    def members(self, key: str) -> set[str]:
        return set(self._r.smembers(self._k("s:" + key)))

    def reset(self, key: str) -> None:
        self._r.delete(*(self._k(kind + key) for kind in ("c:", "d:", "s:")))

    # -- holds -----------------------------------------------------------------------------

    def put_hold(self, hold: Hold) -> None:
        self._r.hset(self._k("holds"), _field(hold.kind, hold.name), _json(hold.to_dict()))

    def get_hold(self, kind: str, name: str) -> Hold | None:
        raw = self._r.hget(self._k("holds"), _field(kind, name))
        return Hold(**json.loads(raw)) if raw else None

    def drop_hold(self, kind: str, name: str) -> Hold | None:
        pipe = self._r.pipeline(transaction=True)
        pipe.hget(self._k("holds"), _field(kind, name))
        pipe.hdel(self._k("holds"), _field(kind, name))
        raw, _ = pipe.execute()
        return Hold(**json.loads(raw)) if raw else None

    def holds(self, kind: str | None = None) -> list[Hold]:
        rows = self._r.hgetall(self._k("holds"))
        found = sorted((tuple(json.loads(f)), Hold(**json.loads(v))) for f, v in rows.items())
        return [h for (k, _), h in found if kind in (None, k)]

    def close(self) -> None:
        self._r.close()


def _ttl(window: float) -> int:
    """Real-time expiry as housekeeping only (windows are trimmed by the given `now`)."""
    return 2 * max(1, math.ceil(window)) + 60


def _field(kind: str, name: str) -> str:
    return json.dumps([kind, name], ensure_ascii=False)


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _event(raw: str) -> dict:
    try:
        event = json.loads(raw)
    except ValueError:
        event = None
    return event if isinstance(event, dict) else {"unreadable": raw}


def _seq(event: dict) -> int:
    seq = event.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parsed = redis.connection.parse_url(url)
    except ValueError:
        return "<unparsable Redis URL>"
    if parsed.get("path"):
        return f"unix://{parsed['path']}"
    return f"redis://{parsed.get('host', '?')}:{parsed.get('port', 6379)}/{parsed.get('db', 0)}"
