"""A Django-side peer for courier's interop test: the real channels_redis, unchanged.

  channels_peer.py send    --layer core|pubsub --url U --prefix P --group G --messages '[{...}]'
      group_send each message to G, then print "SENT".
  channels_peer.py receive --layer core|pubsub --url U --prefix P --group G [--group G2 ...]
                           [--timeout S]
      new_channel + group_add(G) for every G, print "READY", then print "MESSAGE <json>" for each
      of the first len(groups) messages received (what a Django consumer would get), or exit 1
      on timeout.
  channels_peer.py send-seq --layer core|pubsub --url U --prefix P --users A-B --per-user K
      for seq in 0..K, for user in A..=B: group_send("user_{user}", {"type": "seq_event",
      "data": {"seq": seq}}); then print "SENT <n>".
  channels_peer.py notify --url U --prefix P --users A-B --per-user K [--first N]
      the same events as send-seq (seq from N), published with integrations/django/courier_notify.py
      (courier's publish script through redis-py: positions, history); then print "SENT <n>".
--url may be repeated: the layer's `hosts`, in that order (channels_redis shards over them).
--key K adds symmetric_encryption_keys=[K] (Fernet), as a Django settings.py would.
"""

import argparse
import asyncio
import json
import os
import sys

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer


def make_layer(args):
    kwargs = {"hosts": args.url, "prefix": args.prefix}
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


async def send_seq(args):
    layer = make_layer(args)
    first, last = (int(x) for x in args.users.split("-"))
    n = 0
    for seq in range(args.per_user):
        for user in range(first, last + 1):
            await layer.group_send(f"user_{user}", {"type": "seq_event", "data": {"seq": seq}})
            n += 1
    await close(layer)
    print(f"SENT {n}", flush=True)


async def receive(args):
    layer = make_layer(args)
    channel = await layer.new_channel()
    for group in args.group:
        await layer.group_add(group, channel)
    print("READY", flush=True)
    for _ in args.group:
        try:
            message = await asyncio.wait_for(layer.receive(channel), args.timeout)
        except asyncio.TimeoutError:
            print("TIMEOUT", flush=True)
            return 1
        print("MESSAGE " + json.dumps(message), flush=True)
    for group in args.group:
        await layer.group_discard(group, channel)
    await close(layer)
    return 0


def notify(args):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "integrations", "django"))
    from courier_notify import CourierNotifier

    kwargs = {"hosts": args.url, "prefix": args.prefix}
    if args.key:
        kwargs["symmetric_encryption_keys"] = [args.key]
    notifier = CourierNotifier(**kwargs)
    first, last = (int(x) for x in args.users.split("-"))
    n = 0
    for seq in range(args.first, args.first + args.per_user):
        for user in range(first, last + 1):
            notifier.notify_user(user, "seq-event", {"seq": seq})
            n += 1
    print(f"SENT {n}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["send", "receive", "send-seq", "notify"])
    parser.add_argument("--layer", choices=["core", "pubsub"], required=True)
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--prefix", default="asgi")
    parser.add_argument("--group", action="append")
    parser.add_argument("--users", default="1-1")
    parser.add_argument("--per-user", type=int, default=1)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--messages", default="[]")
    parser.add_argument("--key")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.mode == "notify":
        notify(args)
        return 0
    if args.mode == "send-seq":
        asyncio.run(send_seq(args))
        return 0
    if not args.group:
        parser.error("--group is required")
    if args.mode == "send":
        args.group = args.group[0]
        asyncio.run(send(args))
        return 0
    return asyncio.run(receive(args))


if __name__ == "__main__":
    sys.exit(main())
