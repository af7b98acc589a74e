#!/usr/bin/env python3
"""Writes fuzz/corpus-seeds/<target>/: a few small real inputs per target, in each target's input
layout (see the doc comment at the top of fuzz/fuzz_targets/<target>.rs).

Run from anywhere: python3 fuzz/make-seeds.py. Standard library only, except the Fernet-token seed,
which needs the `cryptography` package (skipped without it; the target wraps plaintexts itself).
"""
import base64
import hashlib
import hmac
import json
import os
import struct

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-seeds")
JWT_SECRET = b"fuzz-secret"  # token.rs SECRET
FERNET_SECRET = b"fuzz-key"  # redis_payload.rs keys()[0]


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- ws_frames: [limits, n, len_1..len_n, client bytes] -----------------------------------------
def frame(opcode, payload, fin=True, mask=b"\x37\xfa\x21\x3d"):
    """A masked client frame, as a browser sends it."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10
LIMIT_1024, LIMIT_65536 = 6, 7  # indexes into MAX_MESSAGE
FRAGS_1, FRAGS_4, FRAGS_64 = 0 << 3, 2 << 3, 3 << 3
LEFTOVER = 0x80

write("ws_frames", "text-json", bytes([LIMIT_1024 | FRAGS_4, 0]) + frame(TEXT, b'{"type":"ping"}'))
write(
    "ws_frames",
    "fragments-ping-close",
    bytes([LIMIT_1024 | FRAGS_4, 3, 3, 7, 1])
    + frame(TEXT, b'{"a":', fin=False)
    + frame(PING, b"hi")
    + frame(CONT, b"1}")
    + frame(CLOSE, struct.pack(">H", 1000) + b"bye"),
)
write(
    "ws_frames",
    "leftover-binary-pong",
    bytes([LEFTOVER | LIMIT_1024 | FRAGS_1, 1, 4])
    + frame(BINARY, b"\x00\xff")
    + frame(PONG, b"")
    + frame(CLOSE, b""),
)
write("ws_frames", "extended-length", bytes([LIMIT_1024 | FRAGS_4, 0]) + frame(TEXT, b"x" * 200))
write(
    "ws_frames",
    "over-limit",
    bytes([LIMIT_1024 | FRAGS_64, 0]) + frame(TEXT, b"y" * 2000)[:40],
)
write(
    "ws_frames",
    "64-bit-length",
    bytes([LIMIT_65536 | FRAGS_64, 0]) + frame(BINARY, b"z" * 70000)[:64],
)

# --- token: [mode, input] -----------------------------------------------------------------------
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jwt(header, claims):
    signing = b64(json.dumps(header, separators=(",", ":")).encode()) + b"." + b64(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    return signing + b"." + b64(hmac.new(JWT_SECRET, signing, hashlib.sha256).digest())


HEADER = {"alg": "HS256", "typ": "JWT"}
# simplejwt 5.5 access token claims (expired long ago: seeds must not depend on the date).
CLAIMS = {
    "token_type": "access",
    "exp": 1700000300,
    "iat": 1700000000,
    "jti": "8f14e45fceea167a5a36dedd4bea2543",
    "user_id": "42",
}
write("token", "raw-simplejwt", b"\x00" + jwt(HEADER, CLAIMS))
write("token", "raw-query", b"\x00" + b"foo=1&token=" + jwt(HEADER, CLAIMS) + b"&bar=%20x+y")
write("token", "structured-valid", b"\x01" + bytes(64))
write("token", "structured-mixed", b"\x01" + bytes(range(1, 120, 3)))
write("token", "signed-payload", b"\x02" + json.dumps(CLAIMS).encode())
write("token", "signed-header", b"\x03" + json.dumps({**HEADER, "kid": "k1"}).encode())

# --- redis_payload: [codec, payload] ------------------------------------------------------------
def mp(v):
    """A tiny msgpack encoder (what Python's msgpack.packb writes for these values)."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        s = v.encode()
        return (bytes([0xA0 | len(s)]) if len(s) < 32 else b"\xd9" + bytes([len(s)])) + s
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


NOTIFY = {"type": "new_message", "data": {"id": 3}}
CORE = {
    "type": "notification",
    "notification_type": "friend_request",
    "data": {"request_id": 7, "from_user": {"id": 1, "username": "ann"}, "x": 1.5, "n": None},
    "__asgi_channel__": ["specific.abc!def"],
}
PREFIX = bytes(range(12))
write("redis_payload", "msgpack", b"\x00" + mp(NOTIFY))
write("redis_payload", "msgpack-core-prefixed", b"\x01" + PREFIX + mp(CORE))
write("redis_payload", "json", b"\x00" + json.dumps(NOTIFY).encode())
write("redis_payload", "fernet-wrapped-msgpack", b"\x07" + PREFIX + mp(CORE))
write("redis_payload", "fernet-rotated-json", b"\x0b" + json.dumps(NOTIFY).encode())
try:
    from cryptography.fernet import Fernet

    key = base64.urlsafe_b64encode(hashlib.sha256(FERNET_SECRET).digest())
    write("redis_payload", "fernet-token", b"\x02" + Fernet(key).encrypt(json.dumps(NOTIFY).encode()))
except ImportError:
    print("cryptography not installed: no fernet-token seed")

# --- notify_body: the body ----------------------------------------------------------------------
write(
    "notify_body",
    "one",
    json.dumps({"user_id": 42, "type": "friend-request", "data": {"request_id": 7}}).encode(),
)
write("notify_body", "string-id", json.dumps({"user_id": " 042", "type": "new_message", "data": "hi"}).encode())
write(
    "notify_body",
    "batch",
    json.dumps(
        [
            {"user_id": 1, "type": "friend_accepted", "data": {"friend": {"id": 2, "username": "bo"}}},
            {"user_id": "a1b2-c3", "type": "notification"},
        ]
    ).encode(),
)
write("notify_body", "bad-item", json.dumps([{"user_id": 1, "type": "x"}, {"user_id": 1.5, "type": "x"}]).encode())
