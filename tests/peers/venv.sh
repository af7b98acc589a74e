#!/usr/bin/env bash
# Prints the path of a Python that has the real channels_redis, creating a venv for it on first use.
#   tests/peers/venv.sh            # -> .../target/interop-venv/bin/python
# The venv lives under target/ (gitignored); override with COURIER_INTEROP_VENV. Needs python3 + PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${COURIER_INTEROP_VENV:-$root/target/interop-venv}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import channels_redis, msgpack, cryptography' 2>/dev/null; then
  echo "$py"; exit 0
fi
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 3; }
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2 || { echo "python3 -m venv failed (apt-get install python3-venv)" >&2; exit 3; }
# channels_redis pulls channels, redis and msgpack; cryptography is for symmetric_encryption_keys.
"$py" -m pip install -q --disable-pip-version-check "channels_redis==4.3.*" "cryptography" >&2
echo "$py"
