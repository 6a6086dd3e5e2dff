#!/usr/bin/env python3
"""Alternating cold reads of one 1 GiB object: curl on its signed URL, then mount.roset buffered,
then with -o direct_io, for N rounds, each line with the CPU it cost (the read path's profiling tool, see docs/PERFORMANCE.md).

The object is written through the mount (a multipart upload, as the benchmarks read it); every
mount.roset read comes through a fresh mount. Per read: MiB/s, wall time, cores busy machine-wide
(/proc/stat), and the CPU-seconds of the store (roset-server, or moto with --moto) and of the
daemon (/proc/PID/stat), and where the kernel has free page reporting, the MiB it handed back
to the host meanwhile; at the end the store's peak RSS. Asserts nothing. Everything started is stopped by PID and unmounted.

  python3 contrib/bench/read_rounds.py [--rounds 3] [--moto] [--no-direct-io] [--opts OPTS]
                                       [--perf FILE]   (perf record -a -g of round 1's buffered read)
"""
import argparse, os, signal, socket, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_bench  # noqa: E402  (its server, mount and process bookkeeping)
from fs_bench import cpu_seconds, daemon_pid, mount, read_file, run, start_server, unmount, wait_durable, write_file  # noqa: E402

SIZE = 1 << 30


def busy_seconds():
    ticks = list(map(int, open("/proc/stat").readline().split()[1:]))
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


# In a VM with free page reporting (virtio-balloon), memory the guest frees goes back to the host
# and costs a host fault when touched again; the counter shows how much went back during a read,
# because that, not the read path, is what makes the same read swing by 3x here
# (docs/PERFORMANCE.md, "Why the read targets are missed").
REPORTED_KIB = "/sys/module/page_reporting/parameters/reported_kib"


def reported_mib():
    try:
        return int(open(REPORTED_KIB).read()) / 1024
    except (OSError, ValueError):
        return None


def measure(label, fn, store_pid, daemon):
    s0, b0, d0, r0 = cpu_seconds(store_pid), busy_seconds(), cpu_seconds(daemon) if daemon else 0, reported_mib()
    t0 = time.monotonic(); fn(); t = time.monotonic() - t0
    s1, b1, d1, r1 = cpu_seconds(store_pid), busy_seconds(), cpu_seconds(daemon) if daemon else 0, reported_mib()
    reported = f"  reported to host {r1 - r0:5.0f} MiB" if r0 is not None and r1 is not None else ""
    print(f"{label:9} {SIZE / (1 << 20) / t:6.0f} MiB/s  wall {t:5.2f} s  cores {(b1 - b0) / t:4.2f}"
          f"  store {s1 - s0:4.2f}  daemon {d1 - d0:4.2f} CPU-s{reported}", flush=True)


def start_moto_backed_server(tmp):
    """compare_moto.py on a free port, and roset-server with the S3 backend on a bucket of it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    moto = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_moto.py"),
                             "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fs_bench.procs.append(("moto", moto))
    deadline = time.time() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.time() > deadline or moto.poll() is not None:
            raise RuntimeError("moto_server did not start")
        time.sleep(0.2)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-not-a-secret")
    url, key_file, api = start_server(tmp, ["--backend", "s3", "--s3-endpoint", f"http://127.0.0.1:{port}",
                                            "--s3-bucket", "bench"], env)
    return url, key_file, api, moto.pid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--moto", action="store_true", help="the store is moto (S3 backend), not a local folder")
    ap.add_argument("--no-direct-io", action="store_true")
    ap.add_argument("--opts", default="cache_size_mb=256", help="mount.roset options of the reads")
    ap.add_argument("--perf", default="", help="perf record -a -g output of round 1's buffered read")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="roset-read-rounds-")
    try:
        if args.moto:
            url, key_file, api, store_pid = start_moto_backed_server(tmp)
        else:
            url, key_file, api = start_server(tmp)
            store_pid = fs_bench.procs[0][1].pid
        root = api.root()["id"]
        mnt, spool = os.path.join(tmp, "mnt"), os.path.join(tmp, "spool")
        mount(mnt, url, key_file, spool, args.opts)
        write_file(os.path.join(mnt, "seq.bin"), SIZE)
        signed = wait_durable(api, root, "seq.bin", SIZE, deadline=time.monotonic() + 900, interval=0.1)
        os.sync()
        modes = [("buffered", args.opts)] + ([] if args.no_direct_io else [("direct_io", args.opts + ",direct_io")])
        for r in range(args.rounds):
            measure("curl", lambda: run(["curl", "-sf", "-o", "/dev/null", signed], timeout=600), store_pid, None)
            for label, opts in modes:
                unmount(mnt); mount(mnt, url, key_file, spool, opts)
                recorder = None
                if args.perf and r == 0 and label == "buffered":
                    recorder = subprocess.Popen(["perf", "record", "-a", "-g", "-o", args.perf, "--", "sleep", "120"],
                                                stderr=subprocess.DEVNULL)
                    time.sleep(1)
                try:
                    measure(label, lambda: read_file(os.path.join(mnt, "seq.bin")), store_pid, daemon_pid(mnt))
                finally:
                    if recorder:
                        recorder.send_signal(signal.SIGINT); recorder.wait(60)
        print(f"store peak RSS (VmHWM): {fs_bench.vm_hwm_mb(store_pid):.0f} MiB", flush=True)
    finally:
        fs_bench.cleanup(tmp)


if __name__ == "__main__":
    main()
