#!/usr/bin/env python3
"""Streaming-spool benchmark (docs/PERFORMANCE.md, docs/SPOOL.md): one checkpoint written through
mount.roset until durable (dd conv=fsync: fsync returns once the store confirmed the upload),
with a bounded spool (spool_max_mb=512) and with an unbounded one, against curl's multipart PUT
of the same bytes straight to the store through the control plane's part URLs, in one run on one
roset-server (local backend). Prints seconds, MB/s, the spool's peak disk use and the ratios;
asserts nothing.

    contrib/bench/spool_stream.py [--size-mb 4096] [--bound-mb 512] [--part-mb 16] [--parallel 8]

Binaries: ROSET_BIN (folder with mount.roset and roset-server; default .build/release, else
.build/debug). Build first: `swift build -c release --product mount.roset --product roset-server`.
Needs root and /dev/fuse. Everything started here is stopped by PID; the mounts made here are
unmounted; the scratch folder (TMPDIR) is removed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roset_api import API  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def binaries():
    env = os.environ.get("ROSET_BIN")
    for d in ([env] if env else []) + [os.path.join(ROOT, ".build/release"), os.path.join(ROOT, ".build/debug")]:
        if os.access(os.path.join(d, "mount.roset"), os.X_OK) and os.access(os.path.join(d, "roset-server"), os.X_OK):
            return d
    sys.exit("mount.roset and roset-server not found; build them (see the header) or set ROSET_BIN")


def log(msg):
    print(msg, flush=True)


class DiskPeak:
    """Largest allocated size of a folder tree (st_blocks), sampled every 50 ms."""

    def __init__(self, path):
        self.path, self.peak, self.done = path, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            total = 0
            for d, _, files in os.walk(self.path):
                for f in files:
                    try:
                        total += os.lstat(os.path.join(d, f)).st_blocks * 512
                    except OSError:
                        pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self):
        self.done = True
        self.thread.join()
        return self.peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=4096)
    ap.add_argument("--bound-mb", type=int, default=512)
    ap.add_argument("--part-mb", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=8, help="curl part PUTs in flight")
    args = ap.parse_args()
    bindir = binaries()
    work = tempfile.mkdtemp(prefix="roset-spool-bench.")
    procs, mounts = [], []
    try:
        data = os.path.join(work, "server")
        os.makedirs(data)
        server = subprocess.Popen([os.path.join(bindir, "roset-server"), "--data", data, "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=open(os.path.join(work, "server.err"), "w"), text=True)
        procs.append(server)
        url = None
        for line in server.stdout:
            if line.startswith("roset-server listening on "):
                url = line.split()[-1]
                break
        if not url:
            sys.exit("roset-server did not start")
        key_file = os.path.join(data, "apikey")
        api = API.from_key_file(url, key_file)
        root = api.root()["id"]

        size = args.size_mb << 20
        src = os.path.join(work, "checkpoint.src")
        log(f"binaries: {bindir}\nsource: {args.size_mb} MiB of random bytes (64 MiB block repeated)")
        block = os.urandom(64 << 20)
        with open(src, "wb") as f:
            for i in range(0, size, len(block)):
                f.write(block[: min(len(block), size - i)])
        del block
        results = {}

        for label, bound in (("mount.roset, spool_max_mb=%d" % args.bound_mb, args.bound_mb),
                             ("mount.roset, unbounded spool", 10_000_000)):
            mnt, spool = os.path.join(work, "mnt"), os.path.join(work, "spool-%d" % bound)
            os.makedirs(mnt, exist_ok=True)
            os.makedirs(spool, exist_ok=True)
            opts = (f"api_url={url},apikey_file={key_file},spool_dir={spool},spool_max_mb={bound},"
                    f"part_size_mb={args.part_mb},log_file={os.path.join(work, 'daemon-%d.log' % bound)}")
            subprocess.run([os.path.join(bindir, "mount.roset"), "default", mnt, "-o", opts], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            mounts.append(mnt)
            subprocess.run(["sync"])
            peak = DiskPeak(spool)
            name = "ckpt-%d.bin" % bound
            t0 = time.monotonic()
            subprocess.run(["dd", f"if={src}", f"of={os.path.join(mnt, name)}", "bs=1M", "conv=fsync", "status=none"],
                           check=True)
            took = time.monotonic() - t0
            seen = peak.stop()
            node = api.resolve(root, name)
            ok = node is not None and node.get("size") == size
            results[label] = took
            log(f"{label}: {took:.2f} s until durable, {args.size_mb / took:.0f} MiB/s, spool peak {seen >> 20} MiB"
                f"{'' if ok else '  (NOT STORED)'}")
            subprocess.run(["umount", mnt], timeout=600)
            mounts.remove(mnt)

        # curl: multipart straight to the store through the control plane's part URLs.
        part = args.part_mb << 20
        count = (size + part - 1) // part
        t0 = time.monotonic()
        init = api.call("POST", "/v1/uploads/init", {"parentId": root, "name": "ckpt-curl.bin", "size": 0,
                                                     "multipart": True})
        token = init["uploadToken"]

        def put(n):
            u = api.call("POST", f"/v1/uploads/{token}/part?partNumber={n}")
            target = u.get("url") or u.get("uploadUrl")
            length = min(part, size - (n - 1) * part)
            dd = subprocess.Popen(["dd", f"if={src}", "bs=1M", f"skip={(n - 1) * args.part_mb}",
                                   f"count={args.part_mb}", "status=none"], stdout=subprocess.PIPE)
            r = subprocess.run(["curl", "-sSf", "-X", "PUT", "-H", "Expect:", "-H", f"Content-Length: {length}",
                                "--data-binary", "@-", "-D", "-", "-o", "/dev/null", target],
                               stdin=dd.stdout, capture_output=True, text=True)
            dd.wait()
            if r.returncode != 0:
                raise RuntimeError(f"part {n}: curl {r.returncode} {r.stderr.strip()}")
            etag = next(line.split(":", 1)[1].strip().strip('"') for line in r.stdout.splitlines()
                        if line.lower().startswith("etag:"))
            return {"PartNumber": n, "ETag": etag}

        with ThreadPoolExecutor(args.parallel) as pool:
            parts = list(pool.map(put, range(1, count + 1)))
        api.call("POST", f"/v1/uploads/{token}/complete", {"parts": parts}, timeout=600)
        took = time.monotonic() - t0
        results["curl multipart PUT"] = took
        log(f"curl multipart PUT ({args.parallel} parts in flight): {took:.2f} s, {args.size_mb / took:.0f} MiB/s")

        bounded, unbounded, curl = results.values()
        log(f"ratio bounded/unbounded: {bounded / unbounded:.2f}; bounded/curl: {bounded / curl:.2f}; "
            f"unbounded/curl: {unbounded / curl:.2f}")
    finally:
        for m in mounts:
            subprocess.run(["umount", "-l", m])
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
