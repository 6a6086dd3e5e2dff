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
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Wrapping|Write|Linking|Merging|Copying|Applying|Generating|Planning)' || { echo "build failed"; exit 1; }
test -x .build/debug/roset-server && test -x .build/debug/mount.roset

echo "== tests"
exec timeout --signal=TERM --kill-after=60 75m swift test --skip-build ${ROSET_TEST_ARGS:-}
