#!/usr/bin/env python3
"""Hostile clients for courier (stdlib only): each connects with a valid token, then sends large
JSON text frames as fast as it can and never reads. courier must close each with 4008 once its
bounded queue is full, and give the memory back. Bounded: stops after --seconds or --frames.

usage: echo-flood.py HOST:PORT SECRET [--clients 10] [--frame-bytes 60000] [--frames 2000] [--seconds 20]
Prints one line per client: frames sent, and how it ended.
"""
import argparse, base64, hashlib, hmac, json, os, socket, threading, time, uuid

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

def token(secret, user):
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"token_type": "access", "exp": now + 300, "iat": now,
                           "jti": uuid.uuid4().hex, "user_id": str(user)}).encode())
    sig = b64(hmac.new(secret.encode(), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()

def frame(payload):
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
                            if n < 65536 else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    return head + b"\0\0\0\0" + payload  # zero mask: payload as is

def flood(addr, secret, user, args, out):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws/notifications/?token={token(secret, user)} HTTP/1.1\r\nHost: {addr}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += s.recv(1)
    if b" 101 " not in resp.split(b"\r\n")[0]:
        out[user] = "no upgrade"; return
    f = frame(json.dumps("x" * args.frame_bytes).encode())
    sent, end, how = 0, time.time() + args.seconds, "bound reached"
    s.settimeout(1.0)
    while sent < args.frames and time.time() < end:
        try:
            s.sendall(f); sent += 1
        except socket.timeout:
            continue
        except OSError as e:
            how = f"server ended it ({e.__class__.__name__})"; break
    out[user] = f"{sent} frames sent; {how}"
    s.close()

def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr"); p.add_argument("secret")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--frame-bytes", type=int, default=60000)
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20)
    a = p.parse_args()
    out = {}
    ts = [threading.Thread(target=flood, args=(a.addr, a.secret, 9000 + i, a, out)) for i in range(a.clients)]
    for t in ts: t.start()
    for t in ts: t.join()
    for k in sorted(out): print(f"client {k}: {out[k]}")

if __name__ == "__main__":
    main()
