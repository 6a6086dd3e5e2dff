#!/usr/bin/env bash
# Transfer benchmark of RosetClient against the curl command line (docs/PERFORMANCE.md): starts
# roset-server with the local backend and, when moto_server is installed, a second roset-server
# with --backend s3 on moto; runs roset-bench against each; stops everything it started by PID.
# Prints numbers only, asserts nothing.
#
#   contrib/bench/client-transfer.sh [roset-bench options, e.g. --size-mb 256 --parallel 8]
#
# Binaries: ROSET_SERVER_BIN (default .build/release/roset-server, else .build/debug/roset-server)
# and ROSET_BENCH_BIN (default .build/release/roset-bench, else .build/debug/roset-bench).
# Build them first, e.g. `swift build -c release --product roset-server --product roset-bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."

pick() { for f in "$@"; do [ -x "$f" ] && { echo "$f"; return; }; done; echo "missing: $*" >&2; exit 1; }
SERVER=${ROSET_SERVER_BIN:-$(pick .build/release/roset-server .build/debug/roset-server)}
BENCH=${ROSET_BENCH_BIN:-$(pick .build/release/roset-bench .build/debug/roset-bench)}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roset-client-bench.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_server NAME [extra args]: starts roset-server, waits for its URL; sets URL.
start_server() {
    local name=$1; shift
    mkdir -p "$WORK/$name"
    "$SERVER" --data "$WORK/$name/data" --listen 127.0.0.1:0 "$@" >"$WORK/$name/out" 2>"$WORK/$name/err" &
    PIDS+=($!)
    URL=""
    for _ in $(seq 300); do
        URL=$(sed -n 's/^roset-server listening on //p' "$WORK/$name/out" | head -1)
        [ -n "$URL" ] && curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "roset-server ($name) did not start:" >&2; cat "$WORK/$name/err" >&2; exit 1
}

echo "server: $SERVER"
echo "bench:  $BENCH"
echo "curl:   $(curl --version | head -1)"

start_server local
"$BENCH" --api-url "$URL" --api-key-file "$WORK/local/data/apikey" --label local --scratch "$WORK" "$@"

if command -v moto_server >/dev/null 2>&1; then
    MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/" 2>/dev/null && break; sleep 0.1; done
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret \
        start_server s3 --backend s3 --s3-endpoint "http://127.0.0.1:$MOTO_PORT" --s3-bucket roset-bench --s3-region us-east-1
    "$BENCH" --api-url "$URL" --api-key-file "$WORK/s3/data/apikey" --label s3-moto --scratch "$WORK" "$@"
else
    echo "moto_server not installed: skipping the S3 backend (pip install 'moto[server]')"
fi
