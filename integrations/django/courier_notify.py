"""courier's notify_user for Django: the one-line change that makes notifications resumable.

An unchanged ``group_send`` through channels_redis's pub/sub layer still reaches courier's clients,
but without a position: a client that was away cannot be replayed what it missed. This module
publishes the same Channels message to the same Redis channel, through courier's own publish
script: the user's stream takes the next offset (one sequencer per user, shared with courier's HTTP
API), Redis keeps the event for replay, the event is published on the group's channel exactly as
``group_send`` would (Django consumers still read it), and a position note just before it lets
every courier process number it.
A client then resumes on whichever courier process it reconnects to (``since=``/``epoch=``).

Use it where the app calls ``notify_user`` today (the reference's ``utils.py``)::

    from courier_notify import notify_user          # instead of group_send through the layer
    notify_user(user.id, "friend-request", {"request_id": 7, "from_user": ...})

It reads ``settings.CHANNEL_LAYERS["default"]["CONFIG"]`` (``hosts``, ``prefix``,
``symmetric_encryption_keys``, ``serializer_format``) and serializes with channels_redis's own
serializer, so the payload is byte for byte what ``group_send`` would publish (Fernet included).
Outside Django, build a ``CourierNotifier(hosts=[...], prefix=...)`` yourself. Needs redis-py and
channels_redis (both already there with channels_redis). The history bounds must match courier's
``--history-*`` flags (defaults below are courier's).

Requires courier ≥ the release that added ``--layer redis-pubsub`` history; courier's test suite
checks that the script below is the one courier runs.
"""

import uuid

import redis
from channels_redis.serializers import registry
from channels_redis.utils import _consistent_hash, decode_hosts

# courier's PUBLISH_LUA (src/layer/redis/wire/history.rs), verbatim.
PUBLISH_LUA = r"""
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local mkey, skey = KEYS[1], KEYS[2]
local payload, size, ttl, meta_ttl = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local max_bytes, candidate = tonumber(ARGV[6]), ARGV[7]
local meta = redis.call('HMGET', mkey, 'epoch', 'run')
local epoch = meta[1]
if (not epoch) or meta[2] ~= run then
  epoch = candidate
  redis.call('DEL', skey)
  redis.call('HSET', mkey, 'epoch', epoch, 'run', run, 'bytes', 0)
end
local offset = redis.call('HINCRBY', mkey, 'offset', 1)
if size > 0 and #payload <= max_bytes then
  local t = redis.call('TIME')
  local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('XADD', skey, '0-' .. offset, 't', now_ms, 'p', payload)
  local bytes = redis.call('HINCRBY', mkey, 'bytes', #payload)
  local len = redis.call('XLEN', skey)
  while len > 0 and (len > size or bytes > max_bytes) do
    local first = redis.call('XRANGE', skey, '-', '+', 'COUNT', 1)[1]
    bytes = bytes - #first[2][4]
    redis.call('XDEL', skey, first[1])
    len = len - 1
  end
  redis.call('HSET', mkey, 'bytes', bytes)
  redis.call('PEXPIRE', skey, ttl)
else
  redis.call('DEL', skey)
  redis.call('HSET', mkey, 'bytes', 0)
end
redis.call('PEXPIRE', mkey, meta_ttl)
redis.call('PUBLISH', ARGV[8], offset .. ' ' .. epoch)
redis.call('PUBLISH', ARGV[1], payload)
return {offset, epoch}
"""


class CourierNotifier:
    """Publishes notifications with positions, like courier's HTTP API."""

    def __init__(
        self,
        hosts=None,
        prefix="asgi",
        symmetric_encryption_keys=None,
        serializer_format="msgpack",
        history_size=100,
        history_ttl_ms=300_000,
        history_meta_ttl_ms=86_400_000,
        history_stream_bytes=65_536,
    ):
        self.prefix = prefix
        self.serializer = registry.get_serializer(
            serializer_format, symmetric_encryption_keys=symmetric_encryption_keys
        )
        self.hosts = [_client(h) for h in decode_hosts(hosts)]
        self.scripts = [c.register_script(PUBLISH_LUA) for c in self.hosts]
        self.bounds = [
            history_size,
            history_ttl_ms,
            history_meta_ttl_ms,
            history_stream_bytes,
        ]

    @classmethod
    def from_settings(cls, alias="default", **bounds):
        """A notifier over the Django channel layer ``alias``'s Redis settings."""
        from django.conf import settings

        config = dict(settings.CHANNEL_LAYERS[alias].get("CONFIG", {}))
        keep = ("hosts", "prefix", "symmetric_encryption_keys", "serializer_format")
        return cls(**{k: v for k, v in config.items() if k in keep}, **bounds)

    def group_send(self, group, message):
        """``group_send(group, message)`` with a position; returns ``(offset, epoch)``.

        Only ``user_*`` groups have streams; other groups are published plainly."""
        channel = f"{self.prefix}__group__{group}"
        host = _consistent_hash(channel, len(self.hosts))
        payload = self.serializer.serialize(message)
        if not group.startswith("user_"):
            self.hosts[host].publish(channel, payload)
            return None
        keys = [
            f"{self.prefix}:courier:pos:{group}",
            f"{self.prefix}:courier:hist:{group}",
        ]
        size, ttl, meta_ttl, stream_bytes = self.bounds
        note = f"{self.prefix}__courier__{group}"
        epoch = uuid.uuid4().hex[:12]
        args = [channel, payload, size, ttl, meta_ttl, stream_bytes, epoch, note]
        offset, epoch = self.scripts[host](keys=keys, args=args)
        return int(offset), epoch.decode() if isinstance(epoch, bytes) else epoch

    def notify_user(self, user_id, type, data):
        """The reference's ``notify_user``: type ``-`` becomes ``_``, to group ``user_{id}``."""
        message = {"type": type.replace("-", "_"), "data": data}
        return self.group_send(f"user_{user_id}", message)


def _client(host):
    host = dict(host)
    address = host.pop("address", None)
    if address is not None:
        return redis.Redis.from_url(address, **host)
    return redis.Redis(**host)


_default = None


def notify_user(user_id, type, data):
    """``notify_user`` over the Django settings' default channel layer."""
    global _default
    if _default is None:
        _default = CourierNotifier.from_settings()
    return _default.notify_user(user_id, type, data)
