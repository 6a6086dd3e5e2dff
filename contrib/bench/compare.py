#!/usr/bin/env python3
"""Comparison benchmark (docs/PERFORMANCE.md): mount.roset against s3fs and rclone mount on one S3 store.

One run starts moto_server (S3 on loopback) and roset-server --backend s3 on a bucket of it, mounts
the clients on that bucket (roset through its control plane, s3fs under the prefix s3fs/, rclone
under rclone/; roset's objects live under default/, the direct transfers under direct/), runs the
same workloads on each mount, measures the limit with curl straight to the store, and prints a
table (metric x client) with ratios, and writes a CSV.

Invariants:
- Every external command and every wait has a timeout; a failed or timed-out step prints its
  error and the run goes on with the next step.
- Everything started here is stopped by PID (its own process group), and every mount made here is
  unmounted, also on failure and on SIGINT/SIGTERM/SIGHUP.
- Workload I/O runs in child processes (dd, fio, tar, ls, a python child), so a hung mount costs a
  timeout, not the run. Nothing asserts; targets are reported.
- Secrets (the API key, the S3 keys) go only into 0600 files and the environment, never argv.

  contrib/bench/compare.sh [--size-mb 1024] [--files 1000] [--entries 1000,10000]
                           [--fio-seconds 30] [--clients roset,s3fs,rclone] [--cache-size-mb 256]
                           [--read-rounds 3]

The cold sequential read is taken in interleaved rounds (a curl GET, then a cold read through the
client), and the best of each side is compared.
"""
import argparse, concurrent.futures, csv, json, os, random, re, shutil, signal, socket, subprocess
import sys, tempfile, time, urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roset_api import API  # noqa: E402
from fs_bench import cpu_seconds, vm_hwm_mb  # noqa: E402  (/proc readers shared with fs_bench, read_rounds)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

BIN = os.environ.get("ROSET_BIN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.build/release"))
BUCKET = "bench"
REGION = "us-east-1"
ACCESS, SECRET = "benchaccess", "benchsecret-not-a-real-one"
MIB = 1 << 20
DIO_READ = "seq read 1 file, cold, -o direct_io"   # mount.roset only


def log(msg=""):
    print(msg, flush=True)


class Stop(Exception):
    """Raised by the signal handler so that the finally blocks run."""


# --------------------------------------------------------------------------- processes and mounts

class Janitor:
    """Everything this run started (process groups by PID) or mounted, undone in reverse order."""

    def __init__(self):
        self.groups = []   # (name, pid) of process groups we spawned (each in its own session)
        self.daemons = []  # (name, pid) of daemons that detached from a mount command we ran
        self.mounts = []   # mount points we mounted

    def spawn(self, name, cmd, **kw):
        p = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.groups.append((name, p.pid))
        return p

    def stop_group(self, name, pid, grace=15):
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG) != (0, 0):
                        break
                except ChildProcessError:
                    if not pid_alive(pid):
                        break
                time.sleep(0.1)
            else:
                continue
            break
        if (name, pid) in self.groups:
            self.groups.remove((name, pid))

    def cleanup(self):
        for m in list(reversed(self.mounts)):
            unmount(m, self, [pid for _, pid in self.daemons], wait_exit=30)
        self.daemons.clear()
        for name, pid in list(reversed(self.groups)):
            self.stop_group(name, pid)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mnt for line in f)


def daemon_pids(mnt, names):
    """PIDs of processes whose argv0 basename is in `names` and whose argv holds `mnt`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) in names and mnt in argv:
            out.append(int(d))
    return out


def unmount(mnt, janitor, daemons=(), wait_exit=60):
    """Unmounts (lazily if busy), then waits for the daemons to exit; SIGTERM/SIGKILL by PID."""
    if is_mounted(mnt):
        r = subprocess.run(["umount", mnt], timeout=120, capture_output=True, text=True)
        if r.returncode != 0 and is_mounted(mnt):
            log(f"  umount {mnt}: {r.stderr.strip()}; unmounting lazily")
            subprocess.run(["umount", "-l", mnt], timeout=60)
    if mnt in janitor.mounts:
        janitor.mounts.remove(mnt)
    deadline = time.monotonic() + wait_exit
    for pid in daemons:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not pid_alive(pid):
                break
            log(f"  daemon {pid} still running after unmount; sending {sig.name}")
            os.kill(pid, sig)
            t = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < t:
                time.sleep(0.1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s")


def run(cmd, timeout, **kw):
    kw.setdefault("capture_output", True)
    r = subprocess.run(cmd, timeout=timeout, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} exited {r.returncode}: {(r.stderr or '').strip()[-400:]}")
    return r


def run_mount(cmd, log_path, timeout=90, env=None):
    """Runs a mount command whose daemon stays behind: its stdio must not be our pipes (a daemon
    that keeps them open would make us wait for EOF until the timeout)."""
    with open(log_path, "a") as err:
        r = subprocess.run(cmd, timeout=timeout, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, env=env)
    if r.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-400:].strip()
        raise RuntimeError(f"{os.path.basename(cmd[0])} exited {r.returncode}: {tail}")


def timed_run(cmd, timeout, **kw):
    t = time.monotonic()
    r = run(cmd, timeout, **kw)
    return time.monotonic() - t, r


def dd_bytes(stderr):
    m = re.search(r"^(\d+) bytes", stderr or "", re.M)
    return int(m.group(1)) if m else -1


# --------------------------------------------------------------------------- the store (moto)

class Store:
    def __init__(self, janitor, tmp, stock):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TMPDIR=tmp)
        # compare_moto.py is moto_server with O(range) ranged GETs and a multipart complete that
        # copies nothing (stock moto reads the whole object for each range, and copies it five
        # times to complete); --stock-moto runs the unmodified moto_server.
        cmd = ["moto_server"] if stock else [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_moto.py")]
        self.proc = janitor.spawn("moto_server", cmd + ["-H", "127.0.0.1", "-p", str(self.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                               aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                               config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                             connect_timeout=10, read_timeout=300,
                                             retries={"max_attempts": 3}, max_pool_connections=32))
        wait_for(lambda: self.s3.list_buckets() is not None, 60, "moto_server start")
        self.s3.create_bucket(Bucket=BUCKET)

    def presign(self, method, key, expires=7200):
        op = {"GET": "get_object", "PUT": "put_object"}[method]
        return self.s3.generate_presigned_url(op, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=expires)

    def size(self, key):
        try:
            return self.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        except Exception:
            return None

    def put_many(self, keys, body=b"", workers=16):
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda k: self.s3.put_object(Bucket=BUCKET, Key=k, Body=body), keys))

    def list_count(self, prefix):
        n = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix, Delimiter="/"):
            n += len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        return n

    def rss_pid(self):
        return self.proc.pid


# --------------------------------------------------------------------------- the clients

class Client:
    """A mount of the bucket. Subclasses: how to mount, where its bytes land, how to make entries."""
    name = "?"
    daemon_names = ()

    def __init__(self, janitor, tmp, store):
        self.janitor, self.store = janitor, store
        self.mnt = os.path.join(tmp, "mnt-" + self.name)
        self.tmp = tmp
        self.hwm = None   # max VmHWM over this client's daemons so far (MiB)
        os.makedirs(self.mnt, exist_ok=True)

    def daemons(self):
        return daemon_pids(self.mnt, self.daemon_names)

    def sample_rss(self):
        for pid in self.daemons():
            v = vm_hwm_mb(pid)
            if v is not None:
                self.hwm = max(self.hwm or 0, v)

    def mount(self):
        self._mount()
        self.janitor.mounts.append(self.mnt)
        wait_for(lambda: is_mounted(self.mnt), 60, f"{self.name} mount")
        for pid in self.daemons():    # a daemonized child; ours to stop
            self.janitor.daemons.append((self.name, pid))

    def unmount(self, wait_exit=60):
        self.sample_rss()
        pids = self.daemons()
        unmount(self.mnt, self.janitor, pids, wait_exit)
        self.janitor.daemons = [d for d in self.janitor.daemons if d[1] not in pids]

    def remount(self):
        self.unmount()
        self.drop_local_cache()
        self.mount()

    def drop_local_cache(self):
        pass

    def path(self, rel):
        return os.path.join(self.mnt, rel)

    def durable(self, rel, size):
        return self.store.size(self.prefix + rel) == size

    def make_entries(self, folder, n):
        keys = [f"{self.prefix}{folder}/e{i:06d}" for i in range(n)]
        self.store.put_many(keys)

    def raw_listing(self, folder):
        """(entries, seconds) of the listing a client of this kind must at least do: S3 ListObjectsV2 pages."""
        t = time.monotonic()
        n = self.store.list_count(f"{self.prefix}{folder}/")
        return n, time.monotonic() - t


class RosetMount(Client):
    name = "roset"
    daemon_names = ("mount.roset",)
    prefix = None  # bytes live under default/<node>/<version>; the namespace is in the control plane

    def __init__(self, janitor, tmp, store, server, cache_mb, user_opts=""):
        super().__init__(janitor, tmp, store)
        self.server, self.cache_mb = server, cache_mb
        self.spool = os.path.join(tmp, "roset-spool")
        self.user_opts = "," + user_opts if user_opts else ""   # --roset-opts, on every mount
        self.extra_opts = ""   # e.g. ",direct_io" for one step

    def _mount(self):
        opts = (f"api_url={self.server.url},apikey_file={self.server.key_file},"
                f"cache_size_mb={self.cache_mb},spool_dir={self.spool},"
                f"log_file={os.path.join(self.tmp, 'mount.roset.daemon.log')}" + self.user_opts + self.extra_opts)
        run_mount([os.path.join(BIN, "mount.roset"), "default", self.mnt, "-o", opts],
                  os.path.join(self.tmp, "mount.roset.log"))

    def node(self, rel):
        api = self.server.api
        return api.resolve(api.root()["id"], rel)

    def durable(self, rel, size):
        node = self.node(rel)
        if not node or node.get("size") != size:
            return False
        url = self.server.api.download_url(node["id"])["url"]
        req = urllib.request.Request(url, headers={"Range": f"bytes={size - 1}-{size - 1}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return len(r.read()) == 1

    def make_entries(self, folder, n):
        api = self.server.api
        parent = api.mkdir(api.root()["id"], folder)["id"]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: api.create_file_node(parent, f"e{i:06d}"), range(n)))

    def raw_listing(self, folder):
        """(entries, seconds) of the Roset API's children pages (pageSize 1000): roset's namespace lives there."""
        folder_id = self.node(folder)["id"]
        t = time.monotonic()
        n = self.server.api.list_all(folder_id)
        return n, time.monotonic() - t


class S3fsMount(Client):
    name = "s3fs"
    daemon_names = ("s3fs",)
    prefix = "s3fs/"

    def __init__(self, janitor, tmp, store):
        super().__init__(janitor, tmp, store)
        self.passwd = os.path.join(tmp, "s3fs.passwd")
        fd = os.open(self.passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f"{ACCESS}:{SECRET}\n".encode()); os.close(fd)
        store.s3.put_object(Bucket=BUCKET, Key=self.prefix, Body=b"")   # the mounted prefix exists

    def _mount(self):
        run_mount(["s3fs", f"{BUCKET}:/{self.prefix.rstrip('/')}", self.mnt, "-o",
                   f"use_path_request_style,url={self.store.endpoint},passwd_file={self.passwd},endpoint={REGION}"],
                  os.path.join(self.tmp, "s3fs.log"))

    def make_entries(self, folder, n):
        self.store.s3.put_object(Bucket=BUCKET, Key=f"{self.prefix}{folder}/", Body=b"")  # s3fs dir marker
        super().make_entries(folder, n)


class RcloneMount(Client):
    name = "rclone"
    daemon_names = ("rclone",)
    prefix = "rclone/"

    def __init__(self, janitor, tmp, store):
        super().__init__(janitor, tmp, store)
        self.conf = os.path.join(tmp, "rclone.conf")
        self.cache = os.path.join(tmp, "rclone-cache")
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (f"[moto]\ntype = s3\nprovider = Other\naccess_key_id = {ACCESS}\n"
                      f"secret_access_key = {SECRET}\nendpoint = {store.endpoint}\nregion = {REGION}\n"
                      "force_path_style = true\n").encode())
        os.close(fd)

    def _mount(self):
        run_mount(["rclone", "mount", f"moto:{BUCKET}/{self.prefix.rstrip('/')}", self.mnt, "--config", self.conf,
                   "--vfs-cache-mode", "writes", "--cache-dir", self.cache, "--daemon", "--daemon-wait", "60s",
                   "--log-file", os.path.join(self.tmp, "rclone.log")], os.path.join(self.tmp, "rclone.log"),
            # rclone 1.60 refuses AWS_CA_BUNDLE with its own transport; the store is plain http anyway.
            env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"})

    def drop_local_cache(self):
        # A cold read must come from the store, not from the files this mount wrote earlier.
        shutil.rmtree(self.cache, ignore_errors=True)


class RosetServer:
    def __init__(self, janitor, tmp, store):
        data = os.path.join(tmp, "roset-server")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET)
        self.proc = janitor.spawn("roset-server", [
            os.path.join(BIN, "roset-server"), "--data", data, "--listen", "127.0.0.1:0", "--backend", "s3",
            "--s3-endpoint", store.endpoint, "--s3-bucket", BUCKET, "--s3-region", REGION],
            stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "roset-server.log"), "w"), text=True, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on (http://\S+)", line or "")
            if m:
                self.url = m.group(1)
                self.key_file = os.path.join(data, "apikey")
                self.api = API.from_key_file(self.url, self.key_file)
                return
            if self.proc.poll() is not None:
                break
        raise RuntimeError("roset-server did not start (see roset-server.log)")


# --------------------------------------------------------------------------- results

class Results:
    """metric -> {client or 'limit': value}; higher_better per metric."""

    def __init__(self):
        self.order, self.unit, self.higher, self.values, self.limit_note = [], {}, {}, {}, {}
        self.client_limit = {}  # (metric, client) -> limit when it differs per client

    def add(self, metric, unit, higher, who, value):
        if metric not in self.values:
            self.order.append(metric); self.values[metric] = {}
        self.unit[metric], self.higher[metric] = unit, higher
        self.values[metric][who] = value
        log(f"  {metric} [{who}]: {value:.4g} {unit}")

    def get(self, metric, who):
        return self.values.get(metric, {}).get(who)

    def limit(self, metric, who):
        return self.client_limit.get((metric, who), self.get(metric, "limit"))

    def speed(self, metric, v, ref):
        """How many times faster v is than ref (>1 = faster), whatever the unit's direction."""
        if v is None or ref is None or v == 0 or ref == 0:
            return None
        return v / ref if self.higher[metric] else ref / v


# --------------------------------------------------------------------------- workloads

class Bench:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.size = args.size_mb * MIB
        self.part = self.size // 4
        self.res = Results()
        self.failures = []
        self.services = {}    # name -> pid of moto_server / roset-server, for CPU accounting
        self.cpu_rows = []    # (client, step, wall s, {process: CPU s})
        self.perf_files = []
        self.perf_dir = args.perf_dir or tmp
        os.makedirs(self.perf_dir, exist_ok=True)

    def step(self, who, name, fn, *a):
        log(f"[{who}] {name}")
        client = next((c for c in getattr(self, "clients", []) if c.name == who), None)
        watched = dict(self.services)
        if client is not None and is_mounted(client.mnt):
            watched.update({f"{who} daemon": p for p in client.daemons()[:1]})
        before = {k: cpu_seconds(p) for k, p in watched.items()}
        perf = self.start_perf(client, name)
        t = time.monotonic()
        try:
            fn(*a)
        except Stop:
            raise
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            log(f"  FAILED after {time.monotonic() - t:.1f} s: {msg}")
            self.failures.append((who, name, msg))
        finally:
            wall = time.monotonic() - t
            self.stop_perf(perf)
            used = {k: cpu_seconds(p) - before[k] for k, p in watched.items()
                    if before[k] is not None and cpu_seconds(p) is not None}
            if client is not None and wall >= 1 and "mount" not in name:
                hwm = [vm_hwm_mb(p) for p in client.daemons()[:1]]
                if hwm and hwm[0] is not None:
                    used[f"{who} VmHWM MiB"] = hwm[0]
                self.cpu_rows.append((who, name, wall, used))

    # ---- profiling (--perf CLIENTS): perf record of the client's daemon during each workload step

    def start_perf(self, client, name):
        """perf record of the client's daemon (and of roset-server with `roset-server` in --perf)."""
        wanted = self.args.perf.split(",")
        if client is None or client.name not in wanted or "mount" in name or not shutil.which("perf"):
            return []
        targets = [(client.name, pid) for pid in client.daemons()[:1]]
        if client.name == "roset" and "roset-server" in wanted and "roset-server" in self.services:
            targets.append(("roset-server", self.services["roset-server"]))
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
        recorders = []
        for label, pid in targets:
            out = os.path.join(self.perf_dir, f"perf-{label}-{len(self.perf_files):02d}-{slug}.data")
            recorders.append(subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", out],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                              start_new_session=True))
            self.perf_files.append(out)
        return recorders

    def stop_perf(self, recorders):
        for p in recorders:
            p.send_signal(signal.SIGINT)
        for p in recorders:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill(); p.wait()

    # ---- fixtures

    def make_sources(self):
        self.src = os.path.join(self.tmp, "src-seq.bin")
        self.src_part = os.path.join(self.tmp, "src-part.bin")
        with open(self.src, "wb") as f:
            for _ in range(self.size // MIB):
                f.write(os.urandom(MIB))
        with open(self.src, "rb") as fi, open(self.src_part, "wb") as fo:
            fo.write(fi.read(self.part))
        # The untar tree: the first N regular files of /usr/include (sorted), paths kept.
        files = []
        for root, dirs, names in os.walk("/usr/include"):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(root, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append(os.path.relpath(p, "/usr"))
        files = files[: self.args.tar_files]
        lst = os.path.join(self.tmp, "tar.list")
        with open(lst, "w") as f:
            f.write("\n".join(files) + "\n")
        self.tarball = os.path.join(self.tmp, "include.tar")
        run(["tar", "-cf", self.tarball, "-C", "/usr", "-T", lst], timeout=300)
        self.tar_files = len(files)
        log(f"sources: {self.size // MIB} MiB file, 4 x {self.part // MIB} MiB, tarball of {self.tar_files} files "
            f"({os.path.getsize(self.tarball) // MIB} MiB) from /usr/include")

    # ---- the limit: curl straight to the store

    def limit_steps(self, store):
        T = self.args.step_timeout
        def seq():
            t, _ = timed_run(["curl", "-sSf", "-H", "Expect:", "-o", "/dev/null", "-T", self.src,
                              store.presign("PUT", "direct/seq.bin")], T)
            self.res.add("seq write 1 file, to close", "MiB/s", True, "limit", self.size / MIB / t)
            self.res.add("seq write 1 file, until durable", "MiB/s", True, "limit", self.size / MIB / t)
            t, _ = timed_run(["curl", "-sSf", "-o", "/dev/null", store.presign("GET", "direct/seq.bin")], T)
            self.res.add("seq read 1 file, cold", "MiB/s", True, "limit", self.size / MIB / t)
            self.res.add(DIO_READ, "MiB/s", True, "limit", self.size / MIB / t)
        self.step("limit", f"curl PUT + GET of {self.size // MIB} MiB", seq)

        def multipart():
            # What a multipart uploader can get from this store: 16 MiB parts (mount.roset's
            # default part_size_mb), 8 curl PUTs at a time (its upload_concurrency), then complete.
            part = 16 * MIB
            pdir = os.path.join(self.tmp, "mpu-parts"); os.makedirs(pdir, exist_ok=True)
            run(["split", "-b", str(part), "-d", "-a", "5", self.src, os.path.join(pdir, "p")], T)
            names = sorted(os.listdir(pdir))
            t = time.monotonic()
            uid = store.s3.create_multipart_upload(Bucket=BUCKET, Key="direct/mpu.bin")["UploadId"]
            urls = [store.s3.generate_presigned_url("upload_part", ExpiresIn=7200, Params={
                "Bucket": BUCKET, "Key": "direct/mpu.bin", "UploadId": uid, "PartNumber": i + 1}) for i in range(len(names))]
            etags = [None] * len(names)
            def put(i):
                r = run(["curl", "-sSf", "-H", "Expect:", "-D", "-", "-o", "/dev/null", "-T", os.path.join(pdir, names[i]), urls[i]], T)
                etags[i] = re.search(r"(?im)^etag:\s*(\S+)", r.stdout).group(1)
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                list(ex.map(put, range(len(names))))
            parts_s = time.monotonic() - t
            store.s3.complete_multipart_upload(Bucket=BUCKET, Key="direct/mpu.bin", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
            total = time.monotonic() - t
            shutil.rmtree(pdir, ignore_errors=True)
            self.res.add("multipart PUT (16 MiB parts, 8 at once)", "MiB/s", True, "limit", self.size / MIB / total)
            log(f"  (parts {parts_s:.1f} s, complete {total - parts_s:.1f} s)")
        self.step("limit", f"curl multipart upload of {self.size // MIB} MiB, 16 MiB parts, 8 at once", multipart)

        def parallel():
            for i in range(4):
                run(["curl", "-sSf", "-H", "Expect:", "-o", "/dev/null", "-T", self.src_part,
                     store.presign("PUT", f"direct/p{i}.bin")], T)
            t = time.monotonic()
            ps = [subprocess.Popen(["curl", "-sSf", "-o", "/dev/null", store.presign("GET", f"direct/p{i}.bin")])
                  for i in range(4)]
            wait_all(ps, T)
            self.res.add("4 parallel readers", "MiB/s", True, "limit", 4 * self.part / MIB / (time.monotonic() - t))
        self.step("limit", f"4 parallel curl GETs of {self.part // MIB} MiB", parallel)

        def random_reads():
            url = store.presign("GET", "direct/seq.bin")
            def conf(n, path):
                entries = []
                for _ in range(n):
                    off = random.randrange(0, self.size // 4096) * 4096
                    entries.append(f'url = "{url}"\nrange = {off}-{off + 4095}\noutput = /dev/null\n')
                with open(path, "w") as f:
                    f.write("next\n".join(entries))   # a trailing `next` would be an entry without a URL
            c = os.path.join(self.tmp, "curl-rand-cal.conf"); conf(200, c)
            t, _ = timed_run(["curl", "-sSf", "-K", c], T)
            n = max(200, min(200000, int(self.args.fio_seconds / (t / 200))))
            confs = [os.path.join(self.tmp, f"curl-rand-{j}.conf") for j in range(4)]
            for c in confs:
                conf(n, c)
            t = time.monotonic()
            wait_all([subprocess.Popen(["curl", "-sSf", "-K", c]) for c in confs], T + self.args.fio_seconds * 4)
            self.res.add("random 4 KiB reads (fio)", "IOPS", True, "limit", 4 * n / (time.monotonic() - t))
        self.step("limit", "4 curl processes of ranged 4 KiB GETs (keep-alive)", random_reads)

        def creates():
            payload = os.path.join(self.tmp, "4k.bin")
            with open(payload, "wb") as f:
                f.write(os.urandom(4096))
            c = os.path.join(self.tmp, "curl-put.conf")
            with open(c, "w") as f:
                f.write("next\n".join(f'url = "{store.presign("PUT", f"direct/creates/f{i:05d}")}"\n'
                                       f'upload-file = "{payload}"\nheader = "Expect:"\noutput = /dev/null\n'
                                       for i in range(self.args.files)))
            t, _ = timed_run(["curl", "-sSf", "-K", c], T)
            self.res.add(f"{self.args.files} creates of 4 KiB", "files/s", True, "limit", self.args.files / t)
        self.step("limit", f"{self.args.files} curl PUTs of 4 KiB (one connection)", creates)

    # ---- one client

    def client_steps(self, c):
        T, a = self.args.step_timeout, self.args
        res, mib = self.res, self.size / MIB

        def seq_write():
            t0 = time.monotonic()
            _, r = timed_run([sys.executable, "-c", WRITE_CHILD, self.src, c.path("seq.bin")], T)
            close_s = time.monotonic() - t0
            if int(r.stdout) != self.size:
                raise RuntimeError(f"wrote {r.stdout.strip()} bytes")
            res.add("seq write 1 file, to close", "MiB/s", True, c.name, mib / close_s)
            # Polled every 0.2 s: each roset poll is 3 API calls, and faster polling loads the 2 cores measured.
            wait_for(lambda: c.durable("seq.bin", self.size), T, "seq.bin durable", interval=0.2)
            res.add("seq write 1 file, until durable", "MiB/s", True, c.name, mib / (time.monotonic() - t0))
        self.step(c.name, f"sequential write of {a.size_mb} MiB", seq_write)

        def parts_write():
            for i in range(4):
                run([sys.executable, "-c", WRITE_CHILD, self.src_part, c.path(f"p{i}.bin")], T)
            for i in range(4):
                wait_for(lambda: c.durable(f"p{i}.bin", self.part), T, f"p{i}.bin durable")
        self.step(c.name, f"write 4 x {self.part // MIB} MiB (untimed fixture) and wait until durable", parts_write)

        self.step(c.name, "remount (cold caches)", c.remount)

        def seq_read(metric="seq read 1 file, cold"):
            # Interleaved rounds, each a curl GET of the same size straight from the store, then a
            # cold read through the client (remounted between rounds); the best of each side is
            # compared. This machine's store speed drifts by 2x within minutes, so one sample of
            # either side says more about the moment than about the client.
            gets, reads = [], []
            for round_ in range(max(1, a.read_rounds)):
                if round_:
                    c.remount()
                try:
                    gets.append(timed_run(["curl", "-sSf", "-o", "/dev/null",
                                           c.store.presign("GET", "direct/seq.bin")], T)[0])
                except Exception as e:
                    log(f"  (curl GET failed: {e})")
                t, r = timed_run(["dd", f"if={c.path('seq.bin')}", "of=/dev/null", "bs=1M"], T)
                if dd_bytes(r.stderr) != self.size:
                    raise RuntimeError(f"dd read {dd_bytes(r.stderr)} bytes")
                reads.append(t)
            if gets:
                res.client_limit[(metric, c.name)] = mib / min(gets)
            else:
                log("  (no curl GET in these rounds; the opening limit is used)")
            log("  MiB/s by round, curl GET: " + ", ".join(f"{mib / t:.4g}" for t in gets)
                + f"; {c.name}: " + ", ".join(f"{mib / t:.4g}" for t in reads) + " (the best of each is compared)")
            res.add(metric, "MiB/s", True, c.name, mib / min(reads))
        self.step(c.name, f"cold sequential read of {a.size_mb} MiB", seq_read)

        if isinstance(c, RosetMount):
            # The same read with the direct_io option (off by default: it gives up the page cache).
            def dio_read():
                c.extra_opts = ",direct_io"
                try:
                    c.remount()
                    seq_read(DIO_READ)
                finally:
                    c.extra_opts = ""
                    c.remount()
            self.step(c.name, f"cold sequential read of {a.size_mb} MiB with -o direct_io", dio_read)

        def par_read():
            t = time.monotonic()
            ps = [subprocess.Popen(["dd", f"if={c.path(f'p{i}.bin')}", "of=/dev/null", "bs=1M"],
                                   stderr=subprocess.PIPE, text=True) for i in range(4)]
            outs = wait_all(ps, T)
            dt = time.monotonic() - t
            if any(dd_bytes(e) != self.part for e in outs):
                raise RuntimeError(f"readers got {[dd_bytes(e) for e in outs]} bytes")
            res.add("4 parallel readers", "MiB/s", True, c.name, 4 * self.part / MIB / dt)
        self.step(c.name, f"4 parallel readers of {self.part // MIB} MiB", par_read)

        for n in self.entries:
            def ls(n=n):
                folder = f"ls{n}"
                t, r = timed_run(["ls", "-l", c.path(folder)], T)
                got = len(r.stdout.splitlines()) - 1   # minus the "total" line
                if got != n:
                    raise RuntimeError(f"ls -l listed {got} entries, expected {n}")
                res.add(f"ls -l of {n} entries", "s", False, c.name, t)
                raw, raw_s = c.raw_listing(folder)
                res.client_limit[(f"ls -l of {n} entries", c.name)] = raw_s
                res.add(f"raw listing of {n} entries", "s", False, c.name, raw_s)
                if raw < n:
                    raise RuntimeError(f"raw listing found {raw} entries, expected {n}")
            self.step(c.name, f"ls -l of {n} entries (cold)", ls)

        self.step(c.name, "remount (cold caches)", c.remount)

        def fio():
            _, r = timed_run(["fio", "--name=rand", f"--filename={c.path('seq.bin')}", "--rw=randread", "--bs=4k",
                              "--direct=0", "--ioengine=psync", "--numjobs=4", "--group_reporting",
                              f"--runtime={a.fio_seconds}", "--time_based", "--readonly",
                              "--output-format=json"], a.fio_seconds + T)
            res.add("random 4 KiB reads (fio)", "IOPS", True, c.name, json.loads(r.stdout)["jobs"][0]["read"]["iops"])
        self.step(c.name, f"fio random 4 KiB reads, 4 jobs, {a.fio_seconds} s", fio)

        def creates():
            os.mkdir(c.path("creates"))
            t, _ = timed_run([sys.executable, "-c", CREATE_CHILD, c.path("creates"), str(a.files)], T)
            res.add(f"{a.files} creates of 4 KiB", "files/s", True, c.name, a.files / t)
        self.step(c.name, f"{a.files} creates of 4 KiB files in one folder", creates)

        def untar():
            os.mkdir(c.path("untar"))
            t, _ = timed_run(["tar", "-xf", self.tarball, "-C", c.path("untar")], T * 2)
            res.add(f"untar of {self.tar_files} files", "files/s", True, c.name, self.tar_files / t)
        self.step(c.name, f"untar of {self.tar_files} files", untar)

    # ---- the run

    def run(self, janitor):
        a = self.args
        self.entries = [int(x) for x in a.entries.split(",") if x]
        self.make_sources()
        store = Store(janitor, self.tmp, a.stock_moto)
        self.services["moto"] = store.proc.pid
        log(f"moto_server{' (stock)' if a.stock_moto else ' with O(range) ranged GETs and copy-free multipart complete (compare_moto.py)'} on "
            f"{store.endpoint} (pid {store.proc.pid}), bucket {BUCKET}")
        clients = []
        for name in a.clients.split(","):
            try:
                if name == "roset":
                    server = RosetServer(janitor, self.tmp, store)
                    self.services["roset-server"] = server.proc.pid
                    log(f"roset-server on {server.url} (pid {server.proc.pid}), --backend s3")
                    clients.append(RosetMount(janitor, self.tmp, store, server, a.cache_size_mb, a.roset_opts))
                elif name == "s3fs":
                    clients.append(S3fsMount(janitor, self.tmp, store))
                elif name == "rclone":
                    clients.append(RcloneMount(janitor, self.tmp, store))
                else:
                    raise ValueError(f"unknown client {name}")
            except Stop:
                raise
            except Exception as e:
                log(f"[{name}] setup FAILED: {type(e).__name__}: {e}")
                self.failures.append((name, "setup", str(e)))
        self.clients = clients

        # Entries for ls -l, made before mounting so no client has a stale view of the folder.
        for c in clients:
            for n in self.entries:
                how = "through the Roset API (control plane)" if c.name == "roset" else "with boto3 put_object"
                self.step(c.name, f"create {n} entries in ls{n}/ {how}", c.make_entries, f"ls{n}", n)

        self.limit_steps(store)
        for n in self.entries:
            def s3list(n=n):
                if not any(c.name != "roset" for c in clients):
                    return
                c = next(c for c in clients if c.name != "roset")
                self.res.add(f"ls -l of {n} entries", "s", False, "limit", c.raw_listing(f"ls{n}")[1])
            self.step("limit", f"S3 ListObjectsV2 of {n} keys (boto3)", s3list)

        # All clients are mounted together on the one bucket; the workloads run one client at a time.
        for c in clients:
            self.step(c.name, f"mount at {c.mnt}", c.mount)
        for c in clients:
            if not is_mounted(c.mnt):
                log(f"[{c.name}] not mounted; its workloads are skipped")
                continue
            self.client_steps(c)
            self.step(c.name, "unmount (peak RSS sampled first)", c.unmount, 120)


# Writes go through one fd, opened, written in 1 MiB pieces and closed, as most writers do. (dd
# would dup2() its output onto stdout and close the original fd first, so the file gets a FLUSH
# before its first write; see the benchmark's report for what that does to mount.roset today.)
WRITE_CHILD = """
import sys
src, dst = sys.argv[1], sys.argv[2]
n = 0
with open(src, "rb", buffering=0) as fi, open(dst, "wb", buffering=0) as fo:
    while True:
        b = fi.read(1 << 20)
        if not b:
            break
        view = memoryview(b)
        while view:
            view = view[fo.write(view):]
        n += len(b)
print(n)
"""

CREATE_CHILD = """
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
payload = os.urandom(4096)
for i in range(n):
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(payload)
"""


def wait_all(procs, timeout):
    """Waits for all; kills the rest on timeout or failure. Returns each one's stderr text."""
    deadline = time.monotonic() + timeout
    outs = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            if p.returncode != 0:
                raise RuntimeError(f"{p.args[0]} exited {p.returncode}: {(err or '').strip()[-300:]}")
            outs.append(err)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill(); p.wait()
    return outs


# --------------------------------------------------------------------------- report

def fmt(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"


def report(bench, csv_path):
    res, a = bench.res, bench.args
    names = [c.name for c in bench.clients]
    peers = [n for n in names if n != "roset"]
    w = 34
    head = f"{'metric':{w}} {'unit':7} {'limit':>9} " + " ".join(f"{n + ' (x lim)':>18}" for n in names)
    if "roset" in names:
        head += f" {'roset x best peer':>18}"
    log("\n" + head)
    log("-" * len(head))
    rows = []
    for m in res.order:
        vals = res.values[m]
        lim = vals.get("limit")
        line = f"{m:{w}} {res.unit[m]:7} {fmt(lim):>9} "
        row = {"metric": m, "unit": res.unit[m], "higher_is_better": res.higher[m], "limit": lim}
        cells = []
        for n in names:
            v = vals.get(n)
            r = res.speed(m, v, res.limit(m, n))
            cells.append(f"{fmt(v):>9} ({fmt(r):>6})" if v is not None else f"{'-':>18}")
            row[n] = v; row[f"{n}_x_limit"] = r
        line += " ".join(f"{c:>18}" for c in cells)
        if "roset" in names:
            pv = [vals[p] for p in peers if vals.get(p) is not None]
            best = (max(pv) if res.higher[m] else min(pv)) if pv else None
            r = res.speed(m, vals.get("roset"), best)
            line += f" {fmt(r):>18}"
            row["best_peer"] = best; row["roset_x_best_peer"] = r
        log(line); rows.append(row)
    hline = f"{'peak RSS of the daemon (VmHWM)':{w}} {'MiB':7} {'-':>9} " + " ".join(
        f"{fmt(c.hwm):>18}" for c in bench.clients)
    log(hline)
    rows.append({"metric": "peak RSS of the daemon (VmHWM)", "unit": "MiB", "higher_is_better": False,
                 **{c.name: c.hwm for c in bench.clients}})
    if bench.cpu_rows:
        log("\nCPU seconds used during each step (2 cores = 2 CPU-s per second of wall time):")
        for who, name, wall, used in bench.cpu_rows:
            log(f"  [{who:6}] {name[:52]:52} wall {wall:7.1f} s  " +
                "  ".join(f"{k} {v:.1f}" for k, v in sorted(used.items())))
    svc = getattr(bench, "service_rss", {})
    if svc:
        log("services' peak RSS (not clients): " + ", ".join(f"{n} {fmt(v)} MiB" for n, v in svc.items()))
    log("\n(x lim) and 'x best peer' = how many times faster than the reference (>1 faster, <1 slower),\n"
        "for every unit: value/ref for MiB/s, IOPS, files/s; ref/value for seconds.\n"
        "limit = curl straight to the store (moto) with presigned URLs: one PUT / GET of the same size\n"
        f"(for the cold reads: {max(1, bench.args.read_rounds)} rounds per client of a curl GET, then a cold read through the\n"
        "client; its best read is compared with the best of its rounds' GETs; the limit column shows the\n"
        "opening GET), 4 parallel\n"
        "GETs, 4 curl processes of keep-alive ranged 4 KiB GETs, one curl of N keep-alive 4 KiB PUTs;\n"
        "for ls -l the limit is the raw listing each client needs: S3 ListObjectsV2 pages (boto3) for s3fs and\n"
        "rclone, the Roset API children pages (pageSize 1000) for roset, whose namespace lives in its control\n"
        "plane: its ls entries were created through the Roset API, the peers' with boto3 straight into the bucket.\n"
        "Write 'until durable': s3fs/rclone = HEAD via boto3 shows the full size; roset = the API shows the node\n"
        "with the full size and a ranged GET of its download URL works. rclone uploads after --vfs-write-back (5 s).")

    with open(csv_path, "w", newline="") as f:
        keys = ["metric", "unit", "higher_is_better", "limit"] + sum(([n, f"{n}_x_limit"] for n in names), []) + \
               (["best_peer", "roset_x_best_peer"] if "roset" in names else [])
        wr = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        wr.writeheader(); wr.writerows(rows)
    log(f"\nCSV: {csv_path}")

    # Targets (reported, not asserted).
    if "roset" in names:
        log("\nTargets:")
        def t(label, ok, detail):
            log(f"  [{'met' if ok else 'MISSED' if ok is False else 'n/a'}] {label}: {detail}")
        def sp(m, ref):
            return res.speed(m, res.get(m, "roset"), ref)
        def of_limit(m, r):
            return f"{fmt(r)} ({fmt(res.get(m, 'roset'))} of {fmt(res.limit(m, 'roset'))} MiB/s)"
        m = "seq read 1 file, cold"
        r = sp(m, res.limit(m, "roset")); t("seq read >= 0.9x direct", None if r is None else r >= 0.9, of_limit(m, r))
        best = max([res.get(m, p) for p in peers if res.get(m, p)] or [0]) or None
        r = sp(m, best); t("seq read >= 2x best peer", None if r is None else r >= 2, fmt(r))
        r = sp(DIO_READ, res.limit(DIO_READ, "roset"))
        t("seq read >= 0.9x direct, with -o direct_io (not the default)", None if r is None else r >= 0.9,
          of_limit(DIO_READ, r))
        r = sp(DIO_READ, best); t("seq read >= 2x best peer, with -o direct_io", None if r is None else r >= 2, fmt(r))
        m = "seq write 1 file, until durable"
        r = sp(m, res.get(m, "limit")); t("write until durable >= 0.8x direct", None if r is None else r >= 0.8, fmt(r))
        m = f"{a.files} creates of 4 KiB"
        r = sp(m, res.get(m, "s3fs")); t("creates >= 10x s3fs", None if r is None else r >= 10, fmt(r))
        n = max(bench.entries) if bench.entries else 0
        m = f"ls -l of {n} entries"
        ls, raw = res.get(m, "roset"), res.client_limit.get((m, "roset"))
        q = ls / raw if ls and raw else None
        t(f"ls -l of {n} <= 1.5x raw API listing", None if q is None else q <= 1.5,
          f"{fmt(ls)} s vs {fmt(raw)} s = {fmt(q)}x the time")
        hwm = next((c.hwm for c in bench.clients if c.name == "roset"), None)
        t(f"peak RSS <= cache_size_mb + 64 = {a.cache_size_mb + 64} MiB",
          None if hwm is None else hwm <= a.cache_size_mb + 64, f"{fmt(hwm)} MiB")
    if bench.perf_files:
        log("\nperf data (perf report -i FILE --no-children --sort dso,symbol):")
        for f in bench.perf_files:
            log(f"  {f}")
    if bench.failures:
        log("\nFailed steps:")
        for who, name, msg in bench.failures:
            log(f"  [{who}] {name}: {msg}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="sequential file size; 4 parallel files of a quarter each")
    ap.add_argument("--files", type=int, default=1000, help="creates of 4 KiB files")
    ap.add_argument("--entries", default="1000,10000", help="ls -l folder sizes, comma-separated")
    ap.add_argument("--fio-seconds", type=int, default=30)
    ap.add_argument("--read-rounds", type=int, default=3,
                    help="cold sequential reads per client, each after its own curl GET; the best of each counts")
    ap.add_argument("--tar-files", type=int, default=4000, help="files of /usr/include in the tarball")
    ap.add_argument("--clients", default="roset,s3fs,rclone")
    ap.add_argument("--cache-size-mb", type=int, default=256, help="mount.roset cache_size_mb")
    ap.add_argument("--roset-opts", default="", help="extra mount.roset options for every mount, e.g. splice_read=no")
    ap.add_argument("--step-timeout", type=int, default=900, help="seconds per step")
    ap.add_argument("--csv", default=None, help="CSV path (default: /tmp/roset-compare-<time>.csv)")
    ap.add_argument("--stock-moto", action="store_true",
                    help="run moto_server unmodified (its ranged GETs read the whole object, its multipart complete copies it)")
    ap.add_argument("--perf", default="", help="clients whose daemon is recorded with perf in each step")
    ap.add_argument("--perf-dir", default=None, help="where perf data goes (default: the work dir; see --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("compare.py: run as root (mounts, umount)")
    # Checked before anything starts, so a fresh machine learns all it lacks at once, not one
    # failed step at a time 20 minutes in.
    needed = {"fio": "fio", "curl": "curl", "tar": "tar", "moto_server": "pip: moto[server]"}
    needed.update({c: c for c in ("s3fs", "rclone") if c in a.clients.split(",")})
    missing = [pkg for tool, pkg in needed.items() if not shutil.which(tool)]
    if missing:
        debs = [p for p in missing if not p.startswith("pip:")]
        sys.exit("compare.py: missing " + ", ".join(missing) +
                 (f"; install with: apt-get install -y {' '.join(debs)}" if debs else "") +
                 ("; python3 -m pip install 'moto[server]'" if len(debs) < len(missing) else ""))
    csv_path = a.csv or time.strftime("/tmp/roset-compare-%Y%m%d-%H%M%S.csv", time.gmtime())

    def on_signal(sig, _frame):
        raise Stop(f"signal {sig}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    tmp = tempfile.mkdtemp(prefix="roset-compare-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    log(f"compare: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, nproc {os.cpu_count()}, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') // MIB} MiB RAM, work dir {tmp}")
    janitor = Janitor()
    bench = Bench(a, tmp)
    bench.clients = []
    try:
        bench.run(janitor)
    except Stop as e:
        log(f"\nstopped by {e}; cleaning up")
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        for c in bench.clients:
            if is_mounted(c.mnt):
                c.sample_rss()
        bench.service_rss = {name: vm_hwm_mb(pid) for name, pid in janitor.groups}
        janitor.cleanup()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    report(bench, csv_path)


if __name__ == "__main__":
    main()
