#!/usr/bin/env bash
# Filesystem benchmark (docs/PERFORMANCE.md): builds in release mode, then runs fs_bench.py as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release >/dev/null
ROSET_BIN_DIR=$(swift build -c release --show-bin-path) exec python3 contrib/bench/fs_bench.py "$@"
