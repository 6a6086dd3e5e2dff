#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to a working mount: installs the dependencies,
# builds in release mode, starts a local roset-server (the embedded default control plane) and
# mounts it. Prints where it is mounted and how to unmount it. Run it again to remount.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${ROSET_SKIP_DEPS:-}" = 1 ] || contrib/install-deps.sh
swift build -c release
bin=$(swift build -c release --show-bin-path)

if [ "$(id -u)" -eq 0 ]; then
    state=/var/lib/roset; mnt=${ROSET_MOUNTPOINT:-/mnt/roset}
else
    state=${XDG_STATE_HOME:-$HOME/.local/state}/roset; mnt=${ROSET_MOUNTPOINT:-$HOME/roset}
fi
data=$state/server; port=${ROSET_PORT:-8787}; url=http://127.0.0.1:$port
mkdir -p "$data" "$mnt"

if ! curl -fsS "$url/healthz" >/dev/null 2>&1; then
    nohup "$bin/roset-server" --data "$data" --listen "127.0.0.1:$port" >"$state/server.log" 2>&1 &
    echo $! >"$state/server.pid"
    for _ in $(seq 1 100); do curl -fsS "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$url/healthz" >/dev/null || { echo "roset-server did not start; see $state/server.log" >&2; exit 1; }
fi

if mountpoint -q "$mnt"; then
    echo "already mounted at $mnt"
else
    "$bin/mount.roset" default "$mnt" -o "api_url=$url,apikey_file=$data/apikey"
fi
echo "Roset storage is mounted at $mnt (control plane $url, key file $data/apikey)."
if [ "$(id -u)" -eq 0 ]; then echo "Unmount with:  umount $mnt"; else echo "Unmount with:  fusermount3 -u $mnt"; fi
echo "Stop the local server with:  kill \$(cat $state/server.pid)"
