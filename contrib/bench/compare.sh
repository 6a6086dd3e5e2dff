#!/usr/bin/env bash
# Comparison benchmark (docs/PERFORMANCE.md): mount.roset vs s3fs vs rclone mount on one moto bucket.
# Builds the release binaries, then runs compare.py as root. Options: see compare.py --help
# (--size-mb, --files, --entries, --fio-seconds, --tar-files, --clients, --cache-size-mb, --csv).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${ROSET_BIN_DIR:-}" ]; then
    # Only the two binaries the benchmark runs.
    swift build -c release --product mount.roset >/dev/null
    swift build -c release --product roset-server >/dev/null
    ROSET_BIN_DIR=$(swift build -c release --show-bin-path)
fi
ROSET_BIN_DIR="$ROSET_BIN_DIR" exec python3 contrib/bench/compare.py "$@"
