#!/usr/bin/env python3
"""Interop check: a Python client (websockets + PyJWT) gets exactly PROTOCOL.md's frames.

Mints a token shaped like djangorestframework-simplejwt 5.5's AccessToken, connects the way a
browser or a Django-side script would, and compares every frame with the expected JSON (keys and
key order). Publishes through POST /api/notify with the stdlib, as a Django backend would.

Usage: python-client-check.py --url ws://127.0.0.1:8000/ws/notifications/ \
           --http http://127.0.0.1:8000 --secret SECRET --api-key KEY
Exits 0 when every check passes; prints the first mismatch and exits 1 otherwise.
Needs: pip install 'websockets>=13' PyJWT
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.request
import uuid

import jwt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 5


def access_token(secret, user_id, **extra):
    """simplejwt 5.5.1's access-token claims: user_id is a string."""
    now = int(time.time())
    claims = {
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": user_id,
    }
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def check(got, want, what):
    """Equal as JSON *and* with the same key order (courier promises the reference's order)."""
    got_v = json.loads(got) if isinstance(got, str) else got
    if got_v != want or list(got_v) != list(want):
        sys.exit(f"FAIL {what}:\n  got  {got}\n  want {json.dumps(want)}")
    print(f"ok   {what}")


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def expect_close(ws, code, reason, what):
    try:
        frame = await recv(ws)
        sys.exit(f"FAIL {what}: expected close {code}, got frame {frame!r}")
    except ConnectionClosed as e:
        rcvd = e.rcvd
        if rcvd is None or (rcvd.code, rcvd.reason) != (code, reason):
            sys.exit(f"FAIL {what}: expected close {code} {reason!r}, got {rcvd}")
    print(f"ok   {what}")


def post(http, path, api_key, body):
    req = urllib.request.Request(
        http + path,
        data=json.dumps(body).encode(),
        headers={"X-API-Key": api_key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        return resp.status, json.loads(resp.read())


async def main(args):
    token = access_token(args.secret, "42")
    async with connect(f"{args.url}?token={token}") as ws:
        check(await recv(ws), {"type": "connection_established", "message": "Connected as 42", "user_id": 42},
              "connection_established (string user_id from simplejwt 5.5.1)")
        for value in [{"hello": "world"}, [1, 2], "s", 3, True, None]:
            await ws.send(json.dumps(value))
            check(await recv(ws), {"type": "echo", "data": value}, f"echo {json.dumps(value)}")
        await ws.send("{not json")
        check(await recv(ws), {"type": "error", "message": "Invalid JSON"}, "invalid JSON keeps the socket open")
        await ws.send(b"\x00\x01")
        check(await recv(ws), {"type": "error", "message": "Binary frames are not supported"}, "binary frame")

        data = {"request_id": 7, "from_user": {"id": 3, "username": "bob", "first_name": "Bob", "last_name": "B"}}
        status, body = post(args.http, "/api/notify", args.api_key, {"user_id": 42, "type": "friend-request", "data": data})
        check({"status": status, **body}, {"status": 202, "accepted": 1}, "POST /api/notify")
        check(await recv(ws), {"type": "friend_request", "data": data}, "friend_request frame")

        message = {"type": "notification", "notification_type": "system", "data": {"text": "hi"}}
        status, body = post(args.http, "/api/group_send", args.api_key, {"group": "user_42", "message": message})
        check({"status": status, **body}, {"status": 202, "accepted": 1}, "POST /api/group_send")
        check(await recv(ws), {"type": "system", "data": {"text": "hi"}}, "notification with notification_type")

    # Integer user_id (simplejwt before 5.5.1) and the subprotocol form; the server must pick `bearer`.
    token = access_token(args.secret, 7)
    async with connect(args.url, subprotocols=["bearer", token]) as ws:
        if ws.subprotocol != "bearer":
            sys.exit(f"FAIL subprotocol: server selected {ws.subprotocol!r}")
        check(await recv(ws), {"type": "connection_established", "message": "Connected as 7", "user_id": 7},
              "subprotocol bearer + integer user_id")

    bad = [
        ("expired token", access_token(args.secret, "42", exp=int(time.time()) - 10)),
        ("refresh token", access_token(args.secret, "42", token_type="refresh")),
        ("wrong key", access_token(args.secret + "x", "42")),
        ("HS512", jwt.encode(jwt.decode(access_token(args.secret, "42"), options={"verify_signature": False}),
                             args.secret, algorithm="HS512")),
    ]
    for what, token in bad:
        async with connect(f"{args.url}?token={token}") as ws:
            await expect_close(ws, 4001, "unauthenticated", f"{what} -> 4001")
    print("all checks passed")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="ws://HOST:PORT/ws/notifications/")
    p.add_argument("--http", required=True, help="http://HOST:PORT")
    p.add_argument("--secret", required=True)
    p.add_argument("--api-key", required=True)
    asyncio.run(main(p.parse_args()))
