#!/usr/bin/env bash
# Installs what building and testing roset-fuse needs on Debian/Ubuntu: the C libraries behind
# the system-library targets, FUSE's runtime, tools the tests and the man page check use (promtool
# among them), moto's S3 server (PyPI) for the S3-backend tests, logrotate for the test of its
# example, and automount(8) (autofs) for the automount test (which runs only where the kernel has
# autofs). Safe to run again.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    fuse3 libfuse3-dev libcurl4-openssl-dev libmount-dev libsqlite3-dev libssl-dev pkg-config \
    util-linux mount attr psmisc procps groff-base man-db curl ca-certificates python3-pip \
    autofs logrotate >/dev/null
# promtool (in Debian's prometheus package) checks the metrics= endpoint's output.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if ! python3 -c 'import moto.server' 2>/dev/null || ! command -v moto_server >/dev/null; then
    python3 -m pip install -q 'moto[server]' || python3 -m pip install -q --break-system-packages 'moto[server]'
fi
