#!/usr/bin/env python3
"""Filesystem benchmark of mount.roset against a local roset-server (docs/PERFORMANCE.md).

Prints each workload next to the direct transfer measured in the same run (curl on the same
signed URLs, and the raw paginated API listing), with the ratio. The transfers are taken in
interleaved rounds (--rounds, 3), and the best of each side is compared. Asserts nothing. Every step is
bounded in time; everything started is stopped by PID and unmounted, also when a step fails.

  contrib/bench/fs-bench.sh [--size-mb 1024] [--files 1000] [--entries 10000] [--fio-seconds 30]
                              [--rounds 3]
"""
import argparse, hashlib, json, os, re, shutil, signal, subprocess, sys, tempfile, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roset_api import API  # noqa: E402  (shared with compare.py)

BIN = os.environ.get("ROSET_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../.build/release"))
procs = []      # (name, Popen) started here
mounts = []     # mount points to unmount


def log(msg):
    print(msg, flush=True)


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, timeout=timeout, check=True, **kw)


def start_server(tmp, extra_args=(), env=None):
    """roset-server on a free port (a local folder, or the backend `extra_args` names)."""
    data = os.path.join(tmp, "server")
    p = subprocess.Popen([os.path.join(BIN, "roset-server"), "--data", data, "--listen", "127.0.0.1:0", *extra_args],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    procs.append(("roset-server", p))
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line or "")
        if m:
            url = m.group(1)
            key = open(os.path.join(data, "apikey")).readline().strip()
            return url, os.path.join(data, "apikey"), API(url, key)
        if p.poll() is not None:
            break
    raise RuntimeError("roset-server did not start")


def cleanup(tmp):
    """Unmounts every mount made here (lazily), stops every process started here by PID, newest
    first, and deletes the work folder."""
    for m in list(mounts):
        subprocess.run(["umount", "-l", m], timeout=60)
    for _, p in reversed(procs):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def mount(mnt, url, keyfile, spool, extra=""):
    os.makedirs(mnt, exist_ok=True)
    opts = f"api_url={url},apikey_file={keyfile},spool_dir={spool}" + ("," + extra if extra else "")
    run([os.path.join(BIN, "mount.roset"), "default", mnt, "-o", opts], timeout=60)
    mounts.append(mnt)


def unmount(mnt):
    subprocess.run(["umount", mnt], timeout=120)
    if mnt in mounts:
        mounts.remove(mnt)


def daemon_pid(mnt):
    out = subprocess.run(["pgrep", "-f", f"mount.roset default {mnt} "], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def vm_hwm_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None


def cpu_seconds(pid):
    """User + system CPU of a process (all its threads) so far, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def timed(fn):
    t = time.monotonic(); fn(); return time.monotonic() - t


def write_file(path, size, chunk=1 << 20):
    buf = os.urandom(chunk)
    with open(path, "wb") as f:
        for _ in range(size // chunk):
            f.write(buf)


def wait_durable(api, root, name, size, deadline, interval=0.05):
    """Polls until the API shows `name` under `root` with `size` bytes and hands out its download
    URL (the upload is complete); returns that signed URL. `deadline` is time.monotonic()'s."""
    while True:
        node = api.resolve(root, name)
        if node and node.get("size") == size:
            try:
                return api.call("GET", f"/v1/nodes/{node['id']}/download")["url"]
            except Exception:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} never became durable")
        time.sleep(interval)


def rates(mib, seconds):
    """Samples in MiB/s, in the order taken, the best marked."""
    best = min(seconds)
    return ", ".join(f"{mib / t:.0f}" + ("*" if t == best else "") for t in seconds) + "  (* = the best, compared)"


def read_file(path, chunk=1 << 20):
    with open(path, "rb", buffering=0) as f:
        while f.read(chunk):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--fio-seconds", type=int, default=30)
    ap.add_argument("--cache-size-mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved samples of each transfer; the best counts")
    args = ap.parse_args()
    size = args.size_mb << 20
    tmp = tempfile.mkdtemp(prefix="roset-bench-")
    rows, hwm = [], None
    try:
        url, keyfile, api = start_server(tmp)
        root = api.root()["id"]
        mnt, spool = os.path.join(tmp, "mnt"), os.path.join(tmp, "spool")
        mount(mnt, url, keyfile, spool, f"cache_size_mb={args.cache_size_mb}")

        # Sequential write, interleaved with the direct PUT: each round a curl PUT of the same
        # size to a signed URL of the same server, then a write through the mount (to close, and
        # until durable: visible via the API). The best of each side is compared, because this
        # machine's disk and CPU drift by 2x within minutes and a single sample of either side
        # says more about the moment than about the code.
        rounds = max(1, args.rounds)
        mib = size / (1 << 20)
        src = os.path.join(tmp, "direct.bin"); write_file(src, size)
        init = api.call("POST", "/v1/uploads/init", {"parentId": root, "name": "direct.bin", "size": size, "multipart": False})
        puts, closes, durables = [], [], []
        seq = None
        # Each transfer starts from a clean page cache (os.sync() first): otherwise it shares the
        # disk with the write-back of the gigabyte before it, and only the first PUT of a run
        # would not.
        for r in range(rounds):
            os.sync()
            puts.append(timed(lambda: run(["curl", "-sf", "-o", "/dev/null", "-T", src, init["uploadUrl"]], timeout=600)))
            if seq:
                os.unlink(os.path.join(mnt, seq))   # the previous round's file: keeps the disk use at one copy
            seq = f"seq{r}.bin"
            os.sync()
            t0 = time.monotonic()
            write_file(os.path.join(mnt, seq), size)
            closes.append(time.monotonic() - t0)
            signed = wait_durable(api, root, seq, size, deadline=t0 + 900)
            durables.append(time.monotonic() - t0)
        api.call("POST", "/v1/uploads/commit", {"uploadToken": init["uploadToken"], "size": size})
        os.unlink(src)
        log(f"{'direct PUT MiB/s:':32}" + rates(mib, puts))
        log(f"{'write to close MiB/s:':32}" + rates(mib, closes))
        log(f"{'write until durable MiB/s:':32}" + rates(mib, durables))
        rows.append(("seq write 1 file, to close", mib / min(closes), mib / min(puts), "MiB/s"))
        rows.append(("seq write 1 file, until durable", mib / min(durables), mib / min(puts), "MiB/s"))

        # Cold sequential read, interleaved the same way: curl on the signed URL the mount itself
        # gets for the file (the same object, stored as the mount's multipart upload left it),
        # then a read through a fresh mount (neither the kernel nor the daemon has it cached),
        # then the same with -o direct_io (reads bypass the page cache; off by default).
        os.sync()   # the disk's write-back done before anything is read
        gets, reads, dio_reads = [], [], []
        for r in range(rounds):
            gets.append(timed(lambda: run(["curl", "-sf", "-o", "/dev/null", signed], timeout=600)))
            unmount(mnt); mount(mnt, url, keyfile, spool, f"cache_size_mb={args.cache_size_mb}")
            reads.append(timed(lambda: read_file(os.path.join(mnt, seq))))
            pid = daemon_pid(mnt)
            peak = vm_hwm_mb(pid) if pid else None
            if peak is not None:
                hwm = max(hwm or 0, peak)
            unmount(mnt); mount(mnt, url, keyfile, spool, f"cache_size_mb={args.cache_size_mb},direct_io")
            dio_reads.append(timed(lambda: read_file(os.path.join(mnt, seq))))
        unmount(mnt); mount(mnt, url, keyfile, spool, f"cache_size_mb={args.cache_size_mb}")
        log(f"{'direct GET MiB/s of ' + seq + ':':32}" + rates(mib, gets))
        log(f"{'cold read MiB/s:':32}" + rates(mib, reads))
        log(f"{'cold read -o direct_io MiB/s:':32}" + rates(mib, dio_reads))
        rows.append(("seq read 1 file, cold", mib / min(reads), mib / min(gets), "MiB/s"))
        rows.append(("seq read 1 file, cold, -o direct_io", mib / min(dio_reads), mib / min(gets), "MiB/s"))

        # 1,000 creates of 4 KiB files in one folder.
        d = os.path.join(mnt, "creates"); os.mkdir(d)
        payload = os.urandom(4096)
        def creates():
            for i in range(args.files):
                with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
                    f.write(payload)
        c_s = timed(creates)
        rows.append((f"{args.files} creates of 4 KiB", c_s, None, "s"))

        # ls -l of a folder of N entries made through the API, against the raw paginated listing.
        big = api.mkdir(root, "big")["id"]
        for i in range(args.entries):
            api.call("POST", "/v1/nodes", {"name": f"e{i:06d}", "type": "folder", "parentId": big})
        raw_s = timed(lambda: api.list_all(big))
        ls_s = timed(lambda: run(["ls", "-l", os.path.join(mnt, "big")], timeout=600, stdout=subprocess.DEVNULL))
        rows.append((f"ls -l of {args.entries} entries", ls_s, raw_s, "s"))

        # fio random 4 KiB reads.
        if shutil.which("fio"):
            out = subprocess.run(["fio", "--name=rand", f"--filename={os.path.join(mnt, seq)}", "--rw=randread",
                                  "--bs=4k", "--direct=0", "--ioengine=psync", "--numjobs=4", "--group_reporting",
                                  f"--runtime={args.fio_seconds}", "--time_based", "--readonly",
                                  "--output-format=json"], capture_output=True, text=True,
                                 timeout=args.fio_seconds + 120).stdout
            iops = json.loads(out)["jobs"][0]["read"]["iops"]
            rows.append((f"fio randread 4 KiB, {args.fio_seconds} s", iops, None, "IOPS"))
    finally:
        cleanup(tmp)

    log(f"\n{'workload':38} {'mount.roset':>12} {'direct':>12} {'ratio':>7}  unit")
    for name, ours, direct, unit in rows:
        ratio = ""
        if direct:
            ratio = f"{ours / direct:.2f}"
        log(f"{name:38} {ours:12.2f} {direct if direct is not None else float('nan'):12.2f} {ratio:>7}  {unit}")
    if hwm:
        log(f"daemon peak RSS (VmHWM) after the cold reads: {hwm:.0f} MiB (cache_size_mb={args.cache_size_mb})")
    log("direct = curl on the same signed URLs (transfers) / the raw paginated API listing (ls)")


if __name__ == "__main__":
    main()
