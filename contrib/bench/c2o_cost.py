#!/usr/bin/env python3
"""What close-to-open and the short negative cache cost, against one local roset-server.

Two mounts of the same files: the defaults (close_to_open, negative_ttl=5) and the relaxed
behaviour (no_close_to_open, negative_ttl=300, as before both existed). For each: `ls -l` of a
folder of --files files after 6 s idle (its listing older than negative_ttl), and open + read
of every file (4 KiB each, all cached) after 1.5 s idle (each cached node older than the 1 s
revalidation bound). Best of --rounds. Asserts nothing; stops what it started, by PID.

  ROSET_BIN_DIR=.build/debug contrib/bench/c2o_cost.py [--files 1000] [--rounds 3]
"""
import argparse, json, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_bench as fb  # noqa: E402  (server, mount and cleanup helpers)


def read_all(folder, names):
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            f.read()


def pending(mnt):
    out = subprocess.run([os.path.join(fb.BIN, "mount.roset"), "status", mnt, "--json"], capture_output=True,
                         text=True, timeout=30).stdout
    return json.loads(out).get("pendingFiles", 1) if out.strip() else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="c2o-bench-")
    try:
        url, keyfile, _ = fb.start_server(tmp)
        mounts = {"close_to_open (default)": os.path.join(tmp, "on"),
                  "no_close_to_open,negative_ttl=300": os.path.join(tmp, "off")}
        fb.mount(mounts["close_to_open (default)"], url, keyfile, os.path.join(tmp, "spool-on"))
        fb.mount(mounts["no_close_to_open,negative_ttl=300"], url, keyfile, os.path.join(tmp, "spool-off"),
                 "no_close_to_open,negative_ttl=300")
        writer = mounts["close_to_open (default)"]
        names = [f"f{i:05d}" for i in range(args.files)]
        os.makedirs(os.path.join(writer, "d"))
        for name in names:
            with open(os.path.join(writer, "d", name), "wb") as f:
                f.write(os.urandom(4096))
        deadline = time.time() + 600
        while pending(writer) and time.time() < deadline:
            time.sleep(0.5)
        for label, mnt in mounts.items():
            folder = os.path.join(mnt, "d")
            subprocess.run(["ls", "-l", folder], stdout=subprocess.DEVNULL, check=True, timeout=300)
            read_all(folder, names)
            best_ls = best_read = float("inf")
            for _ in range(args.rounds):
                time.sleep(6)
                t = time.perf_counter()
                subprocess.run(["ls", "-l", folder], stdout=subprocess.DEVNULL, check=True, timeout=300)
                best_ls = min(best_ls, time.perf_counter() - t)
                time.sleep(1.5)
                t = time.perf_counter()
                read_all(folder, names)
                best_read = min(best_read, time.perf_counter() - t)
            fb.log(f"{label:36s} ls -l of {args.files}: {best_ls * 1000:7.1f} ms   "
                   f"open+read of {args.files} cached: {best_read * 1000:7.1f} ms "
                   f"({best_read / args.files * 1e6:.0f} us per file)")
    finally:
        fb.cleanup(tmp)


if __name__ == "__main__":
    main()
