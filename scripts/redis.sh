#!/usr/bin/env bash
# Start or check the local Redis the Redis-backed tests use (never stops a Redis it did not start).
#   scripts/redis.sh start   # start redis-server on 127.0.0.1:6379 unless one answers there
#   scripts/redis.sh status  # exit 0 if it answers
set -euo pipefail
port="${REDIS_PORT:-6379}"
case "${1:-start}" in
  start)
    if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "redis already answering on $port"; exit 0; fi
    command -v redis-server >/dev/null || { echo "redis-server not installed (apt-get install redis-server)" >&2; exit 2; }
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && { echo "redis started on $port"; exit 0; }; sleep 0.1; done
    echo "redis did not come up on $port" >&2; exit 1 ;;
  status)
    redis-cli -p "$port" ping ;;
  *) echo "usage: $0 start|status" >&2; exit 2 ;;
esac
