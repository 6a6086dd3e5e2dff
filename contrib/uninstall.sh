#!/usr/bin/env bash
# Removes what contrib/install.sh installed. Spools (/var/lib/roset) and key files are left alone:
# they may hold data not yet uploaded.
set -euo pipefail
PREFIX=${PREFIX:-/usr/local}
SBIN=${SBIN:-/sbin}
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }
# The helper names are removed only when they are links to this install's binary: another
# package's /sbin/mount.roset (or a link to another build) is not ours to remove.
installed=$PREFIX/sbin/mount.roset
for f in "$SBIN/mount.roset" "$SBIN/mount.fuse.roset" "$PREFIX/bin/roset-fuse" "$PREFIX/bin/roset"; do
    # With PREFIX=/usr and /sbin -> usr/sbin, $SBIN/mount.roset is the binary itself (removed below).
    if [ ! -L "$f" ] && [ "$(readlink -f "$f")" = "$(readlink -f "$installed")" ]; then continue; fi
    if [ -L "$f" ] && [ "$(readlink "$f")" = "$installed" ]; then rm -f "$f"; echo "removed $f"
    elif [ -e "$f" ] || [ -L "$f" ]; then echo "left alone: $f (not a link to $installed)"; fi
done
for f in "$installed" "$PREFIX/bin/roset-server" "$PREFIX/bin/roset-bench" \
         "$PREFIX/share/man/man8/mount.roset.8" "$PREFIX/share/man/man8/mount.fuse.roset.8" \
         "$PREFIX/share/man/man1/roset-fuse.1" "$PREFIX/share/man/man1/roset-server.1"; do
    if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; echo "removed $f"; fi
done
command -v mandb >/dev/null && mandb -q "$PREFIX/share/man" 2>/dev/null || true
echo "left alone: /var/lib/roset (spool and server data), /etc/roset (keys)"
