#!/usr/bin/env bash
# Builds roset-fuse in release mode and installs it:
#   $PREFIX/sbin/mount.roset, $PREFIX/bin/roset-server, $PREFIX/bin/roset-bench
#   links roset-fuse and roset (for mount.fuse3) in $PREFIX/bin,
#   /sbin/mount.roset and /sbin/mount.fuse.roset (the names mount(8) looks for),
#   man pages in $PREFIX/share/man.
# PREFIX defaults to /usr/local. Run as root. contrib/uninstall.sh undoes it.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it writes to $PREFIX and /sbin)" >&2; exit 1; }
[ "${ROSET_SKIP_DEPS:-}" = 1 ] || contrib/install-deps.sh
swift build -c release
bin=$(swift build -c release --show-bin-path)
install -d "$PREFIX/sbin" "$PREFIX/bin" "$PREFIX/share/man/man8" "$PREFIX/share/man/man1"
install -m 0755 "$bin/mount.roset" "$PREFIX/sbin/mount.roset"
install -m 0755 "$bin/roset-server" "$PREFIX/bin/roset-server"
install -m 0755 "$bin/roset-bench" "$PREFIX/bin/roset-bench"
ln -sf "$PREFIX/sbin/mount.roset" "$PREFIX/bin/roset-fuse"
ln -sf "$PREFIX/sbin/mount.roset" "$PREFIX/bin/roset"
ln -sf "$PREFIX/sbin/mount.roset" /sbin/mount.roset
ln -sf "$PREFIX/sbin/mount.roset" /sbin/mount.fuse.roset
install -m 0644 man/mount.roset.8 "$PREFIX/share/man/man8/mount.roset.8"
ln -sf mount.roset.8 "$PREFIX/share/man/man8/mount.fuse.roset.8"
for page in man/*.1; do install -m 0644 "$page" "$PREFIX/share/man/man1/"; done
command -v mandb >/dev/null && mandb -q 2>/dev/null || true
echo "installed: $PREFIX/sbin/mount.roset (+ /sbin/mount.roset, /sbin/mount.fuse.roset), $PREFIX/bin/roset-fuse, $PREFIX/bin/roset-server"
