#!/usr/bin/env bash
# Removes what contrib/install.sh installed. Spools (/var/lib/roset) and key files are left alone:
# they may hold data not yet uploaded.
set -euo pipefail
PREFIX=${PREFIX:-/usr/local}
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }
for f in /sbin/mount.roset /sbin/mount.fuse.roset "$PREFIX/bin/roset-fuse" "$PREFIX/bin/roset" \
         "$PREFIX/sbin/mount.roset" "$PREFIX/bin/roset-server" "$PREFIX/bin/roset-bench" \
         "$PREFIX/share/man/man8/mount.roset.8" "$PREFIX/share/man/man8/mount.fuse.roset.8" \
         "$PREFIX/share/man/man1/roset-fuse.1" "$PREFIX/share/man/man1/roset-server.1"; do
    if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; echo "removed $f"; fi
done
echo "left alone: /var/lib/roset (spool and server data), /etc/roset (keys)"
