"""A Django-side peer for courier's interop test: the real channels_redis, unchanged.

  channels_peer.py send    --layer core|pubsub --url U --prefix P --group G --messages '[{...}]'
      group_send each message to G, then print "SENT".
  channels_peer.py receive --layer core|pubsub --url U --prefix P --group G [--timeout S]
      new_channel + group_add(G), print "READY", then print "MESSAGE <json>" for the first
      message received (what a Django consumer would get), or exit 1 on timeout.
--key K adds symmetric_encryption_keys=[K] (Fernet), as a Django settings.py would.
"""

import argparse
import asyncio
import json
import sys

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer


def make_layer(args):
    kwargs = {"hosts": [args.url], "prefix": args.prefix}
    if args.key:
        kwargs["symmetric_encryption_keys"] = [args.key]
    if args.layer == "core":
        return RedisChannelLayer(**kwargs)
    return RedisPubSubChannelLayer(**kwargs)


async def close(layer):
    # Each layer type has its own way to release its connections.
    if isinstance(layer, RedisChannelLayer):
        await layer.close_pools()
    else:
        await layer.flush()


async def send(args):
    layer = make_layer(args)
    for message in json.loads(args.messages):
        await layer.group_send(args.group, message)
    await close(layer)
    print("SENT", flush=True)


async def receive(args):
    layer = make_layer(args)
    channel = await layer.new_channel()
    await layer.group_add(args.group, channel)
    print("READY", flush=True)
    try:
        message = await asyncio.wait_for(layer.receive(channel), args.timeout)
    except asyncio.TimeoutError:
        print("TIMEOUT", flush=True)
        return 1
    print("MESSAGE " + json.dumps(message), flush=True)
    await layer.group_discard(args.group, channel)
    await close(layer)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["send", "receive"])
    parser.add_argument("--layer", choices=["core", "pubsub"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", default="asgi")
    parser.add_argument("--group", required=True)
    parser.add_argument("--messages", default="[]")
    parser.add_argument("--key")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.mode == "send":
        asyncio.run(send(args))
        return 0
    return asyncio.run(receive(args))


if __name__ == "__main__":
    sys.exit(main())
