#!/usr/bin/env bash
# Builds roset-fuse in release mode and installs it:
#   $PREFIX/sbin/mount.roset, $PREFIX/bin/roset-server, $PREFIX/bin/roset-bench
#   links roset-fuse and roset (for mount.fuse3) in $PREFIX/bin,
#   /sbin/mount.roset and /sbin/mount.fuse.roset (the names mount(8) looks for),
#   man pages in $PREFIX/share/man.
# PREFIX defaults to /usr/local. Run as root. contrib/uninstall.sh undoes it (same PREFIX, SBIN).
# For packaging and tests: SBIN (default /sbin) is where the mount(8) helper links go;
# ROSET_BIN_DIR=DIR installs already-built binaries from DIR instead of building (a missing
# roset-server or roset-bench there is skipped with a note); ROSET_SKIP_DEPS=1 skips apt/pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
SBIN=${SBIN:-/sbin}
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it writes to $PREFIX and $SBIN)" >&2; exit 1; }
[ "${ROSET_SKIP_DEPS:-}" = 1 ] || contrib/install-deps.sh
if [ -n "${ROSET_BIN_DIR:-}" ]; then
    bin=$ROSET_BIN_DIR
else
    swift build -c release
    bin=$(swift build -c release --show-bin-path)
fi
[ -x "$bin/mount.roset" ] || { echo "install.sh: $bin/mount.roset is missing" >&2; exit 1; }
install -d "$PREFIX/sbin" "$PREFIX/bin" "$PREFIX/share/man/man8" "$PREFIX/share/man/man1" "$SBIN"
install -m 0755 "$bin/mount.roset" "$PREFIX/sbin/mount.roset"
for program in roset-server roset-bench; do
    if [ -x "$bin/$program" ]; then install -m 0755 "$bin/$program" "$PREFIX/bin/$program"
    else echo "install.sh: note: $bin/$program not built, not installed" >&2; fi
done
# A name that already is the installed binary (PREFIX=/usr with /sbin -> usr/sbin) is left alone:
# `ln -sf` there would replace the binary with a link to itself.
link_helper() {
    local target=$1 link=$2
    if [ -e "$link" ] && [ "$(readlink -f "$link")" = "$(readlink -f "$target")" ] && [ ! -L "$link" ]; then
        return 0
    fi
    ln -sfn "$target" "$link"
}
link_helper "$PREFIX/sbin/mount.roset" "$PREFIX/bin/roset-fuse"
link_helper "$PREFIX/sbin/mount.roset" "$PREFIX/bin/roset"     # mount.fuse3 -t fuse.roset runs `roset`
link_helper "$PREFIX/sbin/mount.roset" "$SBIN/mount.roset"       # mount -t roset
link_helper "$PREFIX/sbin/mount.roset" "$SBIN/mount.fuse.roset"  # mount -t fuse.roset, fstab
install -m 0644 man/mount.roset.8 "$PREFIX/share/man/man8/mount.roset.8"
ln -sf mount.roset.8 "$PREFIX/share/man/man8/mount.fuse.roset.8"
for page in man/*.1; do install -m 0644 "$page" "$PREFIX/share/man/man1/"; done
command -v mandb >/dev/null && mandb -q "$PREFIX/share/man" 2>/dev/null || true
echo "installed: $PREFIX/sbin/mount.roset (+ $SBIN/mount.roset, $SBIN/mount.fuse.roset), $PREFIX/bin/roset-fuse, $PREFIX/bin/roset-server"
