#!/usr/bin/env python3
"""Data-loader benchmark (docs/PERFORMANCE.md): a training job's reads, epoch after epoch.

One run starts moto_server and roset-server --backend s3 on one bucket (compare.py's setup), puts
the same data set (--files files, sizes log-uniform from --min-kb to --max-kb) in the bucket for
each client (written through a mount with its data cache off for mount.roset, straight into the bucket under s3fs/ and
rclone/ for the others, under direct/ for the network limit) and in a local folder (the disk
limit), then for each client: --workers worker processes read whole files in a shuffled order,
--epochs epochs, the page cache dropped before each epoch and the client remounted before the
third. Clients: mount.roset (its disk data cache in a fresh folder), s3fs, and rclone mount
--vfs-cache-mode full. The network limit: the same objects fetched whole by --workers parallel
clients on presigned URLs; the disk limit: the local folder, read by the same workers.

Prints files/s and MiB/s per epoch per client, the ratios to both limits and to the best peer,
each daemon's peak RSS (VmHWM) and the disk use of its cache. Nothing asserts; the targets are
in docs/PERFORMANCE.md.

  contrib/bench/dataloader.py [--files 1500] [--min-kb 16] [--max-kb 4096] [--workers 8]
                              [--epochs 3] [--clients roset,s3fs,rclone] [--keep]

Binaries come from .build/release (ROSET_BIN_DIR to change). Run as root.
"""
import argparse, concurrent.futures, math, os, random, shutil, signal, subprocess, sys, tempfile, time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (moto, roset-server, the mounts and the janitor)
from compare import BUCKET, MIB, Janitor, RosetServer, RosetMount, S3fsMount, RcloneMount, Store, Stop, log  # noqa: E402
from fs_bench import vm_hwm_mb  # noqa: E402


class RcloneFull(RcloneMount):
    """rclone mount with its full VFS cache: whole files kept on local disk, its epoch 2 answer."""

    def _mount(self):
        compare.run_mount(["rclone", "mount", f"moto:{BUCKET}/{self.prefix.rstrip('/')}", self.mnt, "--config", self.conf,
                           "--vfs-cache-mode", "full", "--cache-dir", self.cache, "--daemon", "--daemon-wait", "60s",
                           "--log-file", os.path.join(self.tmp, "rclone.log")], os.path.join(self.tmp, "rclone.log"),
                          env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"})

    def drop_local_cache(self):
        pass   # kept across the remount, as a user would: it is the point of the cache

    def cache_use(self):
        return du(self.cache)


class RosetCached(RosetMount):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.data_cache = os.path.join(self.tmp, "roset-data-cache")
        self.extra_opts = f",data_cache_dir={self.data_cache}"

    def cache_use(self):
        return du(self.data_cache)


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def data_set(n, min_kb, max_kb, seed=7):
    rng = random.Random(seed)
    lo, hi = math.log(min_kb * 1024), math.log(max_kb * 1024)
    return [(f"d{i // 100:03d}/f{i:05d}.bin", int(math.exp(rng.uniform(lo, hi)))) for i in range(n)]


def payload(name, size):
    rng = random.Random(name)
    return rng.randbytes(size)


def drop_page_cache():
    subprocess.run(["sync"], timeout=120)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def read_file(path):
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += len(b)


def get_url(url):
    with urllib.request.urlopen(url, timeout=300) as r:
        return len(r.read())


def epoch(pool, fn, items, seed):
    order = list(items)
    random.Random(seed).shuffle(order)
    t = time.monotonic()
    total = sum(pool.map(fn, order, chunksize=4))
    wall = time.monotonic() - t
    return len(order) / wall, total / MIB / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1500)
    ap.add_argument("--min-kb", type=int, default=16)
    ap.add_argument("--max-kb", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--clients", default="roset,s3fs,rclone")
    ap.add_argument("--cache-size-mb", type=int, default=256)
    ap.add_argument("--roset-opts", default="")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("dataloader.py: run as root (mounts, drop_caches)")
    wanted = a.clients.split(",")
    missing = [t for t in ["moto_server"] + [c for c in ("s3fs", "rclone") if c in wanted] if not shutil.which(t)]
    if missing:
        sys.exit("dataloader.py: missing " + ", ".join(missing))

    def on_signal(sig, _frame):
        raise Stop(f"signal {sig}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    tmp = tempfile.mkdtemp(prefix="roset-dataloader-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    files = data_set(a.files, a.min_kb, a.max_kb)
    total_mib = sum(s for _, s in files) / MIB
    log(f"dataloader: {len(files)} files, {total_mib:.0f} MiB, {a.workers} workers, {a.epochs} epochs, work dir {tmp}")
    janitor = Janitor()
    rows = {}     # client -> [(files/s, MiB/s) per epoch]
    extra = {}    # client -> (peak RSS MiB, cache MiB)
    try:
        store = Store(janitor, tmp, stock=False)
        server = RosetServer(janitor, tmp, store)
        local = os.path.join(tmp, "local")
        for name, size in files:
            path = os.path.join(local, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(payload(name, size))
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda fs: store.s3.put_object(Bucket=BUCKET, Key="direct/" + fs[0],
                                                       Body=payload(fs[0], fs[1])), files))
        with concurrent.futures.ProcessPoolExecutor(a.workers) as pool:
            drop_page_cache()
            rows["local folder"] = [epoch(pool, read_file, [os.path.join(local, n) for n, _ in files], 1)]
            urls = [store.presign("GET", "direct/" + n) for n, _ in files]
            rows["8 signed-URL GETs"] = [epoch(pool, get_url, urls, 1)]
        clients = []
        if "roset" in wanted:
            c = RosetCached(janitor, tmp, store, server, a.cache_size_mb, a.roset_opts)
            # Written through a mount with the data cache off (an upload seeds the cache) and
            # left to upload at its unmount.
            c.extra_opts = ",data_cache_max_mb=0,shutdown_grace=1800"
            c.mount()
            compare.run(["cp", "-r"] + [os.path.join(local, d) for d in sorted(os.listdir(local))] + [c.mnt], 1800)
            c.unmount(wait_exit=1800)
            c.extra_opts = f",data_cache_dir={c.data_cache}"
            clients.append(c)
        for cls, key in ((S3fsMount, "s3fs"), (RcloneFull, "rclone")):
            if key in wanted:
                c = cls(janitor, tmp, store)
                with concurrent.futures.ThreadPoolExecutor(16) as ex:
                    list(ex.map(lambda fs: store.s3.put_object(Bucket=BUCKET, Key=c.prefix + fs[0],
                                                               Body=payload(fs[0], fs[1])), files))
                clients.append(c)
        for c in clients:
            c.mount()
            per = []
            with concurrent.futures.ProcessPoolExecutor(a.workers) as pool:
                for e in range(a.epochs):
                    if e == 2:
                        c.remount()
                    drop_page_cache()
                    per.append(epoch(pool, read_file, [c.path(n) for n, _ in files], 100 + e))
                    log(f"  {c.name} epoch {e + 1}: {per[-1][0]:.0f} files/s, {per[-1][1]:.0f} MiB/s")
                    c.sample_rss()
            rows[c.name] = per
            extra[c.name] = (c.hwm, (c.cache_use() / MIB) if hasattr(c, "cache_use") else None)
            c.unmount()
    except Stop as e:
        log(f"stopped by {e}")
    finally:
        janitor.cleanup()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    disk = rows.get("local folder", [(0, 0)])[0][1]
    net = rows.get("8 signed-URL GETs", [(0, 0)])[0][1]
    log(f"\n{'client':<20} {'epoch':>5} {'files/s':>8} {'MiB/s':>8} {'x local':>8} {'x network':>9} {'x best peer':>11}")
    for name, per in rows.items():
        for e, (fps, mps) in enumerate(per):
            peers = [rows[p][e][1] for p in ("s3fs", "rclone") if p in rows and p != name and len(rows[p]) > e]
            best = max(peers) if peers else None
            log(f"{name:<20} {e + 1:>5} {fps:>8.0f} {mps:>8.0f} {mps / disk if disk else 0:>8.2f} "
                f"{mps / net if net else 0:>9.2f} {(f'{mps / best:.2f}' if best else '-'):>11}")
    for name, (hwm, cache) in extra.items():
        log(f"{name}: daemon peak RSS {hwm} MiB" + (f", cache on disk {cache:.0f} MiB" if cache is not None else ""))


if __name__ == "__main__":
    main()
