#!/usr/bin/env bash
# The one command that runs the whole test suite: installs its dependencies, builds the package
# once (debug, with tests), checks the man pages, then runs every test (unit, contract tests
# against a real roset-server, S3 tests against moto, real FUSE mounts, mount(8) and fstab).
# Real mounts and mount(8) need root and /dev/fuse; without them those tests say so and skip.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${ROSET_SKIP_DEPS:-}" = 1 ] || contrib/install-deps.sh

echo "== man pages"
for page in man/*.[0-9]; do
    warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1 || true)
    if [ -n "$warnings" ]; then echo "$page: groff warnings:"; echo "$warnings"; exit 1; fi
    MANWIDTH=80 man -l "$page" >/dev/null
done

echo "== build"
log=$(mktemp)
if ! swift build --build-tests >"$log" 2>&1; then
    grep -E 'error:|warning: unre|Build' "$log" | head -50; tail -20 "$log"; rm -f "$log"; exit 1
fi
tail -1 "$log"; rm -f "$log"
test -x .build/debug/roset-server && test -x .build/debug/mount.roset

echo "== tests"
exec timeout --signal=TERM --kill-after=60 75m swift test --skip-build ${ROSET_TEST_ARGS:-}
