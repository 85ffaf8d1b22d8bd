"""Control-plane benchmark: how fast slices program their fastpaths.

One live SPP node (mininet_topo/livenode.py: BMv2 LC and NPE in a private
namespace) and the controller as its own process, as in a testbed. Side by
side, on the same BMv2 NPE:

* raw P4Runtime filter writes, before the controller owns the switch: one
  entry per request, and batches of 100 (the reference for every ratio);
* write_fltr through the slice library one by one (latency and rate), from
  8 concurrent clients of one slice, and from 4 slices at once (2 clients
  each); every client is a process of its own, as slice programs are; the
  same 8 clients and 4 slices again, each client with the library's
  ``batch`` call (8,000 filters in all);
* one slice program installing as many filters as the NPE holds for it
  (8,000 of its 8,192), the fastest way the library offers (its ``batch``
  call when it has one, else requests in flight), scaled to 10,000;
* mem_write of 4,096 words;
* fairness: slice b's read_stats latency while slice a floods the API
  (8 processes writing and removing filters one call at a time; then 4
  writing and removing them in batches of 500), against b's idle latency.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx

from controller import limits as L
from controller import pipeline as pl
from controller.p4rt import DELETE, INSERT, SwitchConnection
from mininet_topo.livenode import SLICE_A, SLICE_B, LiveNode
from slices.client import Slice, SppError

ROOT = Path(__file__).resolve().parent.parent
MGMT = "127.0.0.2"
# Slices of the benchmark: management address, data address, LC port. Slices
# c and d have no host port on the LC: no packet goes to them here.
SLICES = {"a": ("127.0.0.2", SLICE_A, 2), "b": ("127.0.0.3", SLICE_B, 3),
          "c": ("127.0.0.4", "10.0.2.12", 5), "d": ("127.0.0.5", "10.0.2.13", 6)}
BULK_FILTERS = 8000          # the NPE's filter table holds 8,192
# A stage of one slice starts once the other slices' last calls (the stage
# before) are older than what the controller counts as "another slice host
# calls" (api.Callers): otherwise its batches start with the shared window.
ALONE_S = L.OTHERS_RECENT_S + 0.2
MEM_WORDS = 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=100)
    return {"p50_ms": statistics.median(values), "p90_ms": q[89], "p99_ms": q[98],
            "n": len(values)}


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


class CpuMeter:
    """Where the time goes: CPU the controller (and its encoder processes,
    controller/encoder.py), the NPE and the clients spend per filter during
    a stage, against the wall time per filter (2 cores)."""

    def __init__(self, ctl: ControllerProcess, node: LiveNode):
        self.ctl = ctl.proc.pid
        self.pids = {"controller": ctl.proc.pid, "npe": node.procs["npe"].pid}

    def _encoders(self) -> dict[int, float]:
        out = {}
        for c in children(self.ctl):
            try:
                out[c] = cpu_s(c)
            except OSError:
                pass
        return out

    def __enter__(self):
        self.t = time.perf_counter()
        self.before = {k: cpu_s(p) for k, p in self.pids.items()}
        self.enc_before = self._encoders()
        self.me = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        self.used = {k: cpu_s(p) - self.before[k] for k, p in self.pids.items()}
        self.used["encoder"] = sum(v - self.enc_before.get(c, 0.0)
                                   for c, v in self._encoders().items())
        self.used["bench process"] = time.process_time() - self.me

    def per(self, n: int, client_cpu_s: float = 0.0, wall_s: float | None = None) -> dict:
        """Per filter; ``wall_s``: the stage's own wall time (without the
        wait before its common start), else the meter's."""
        out = {k: v * 1000 / n for k, v in self.used.items()}
        if client_cpu_s:
            out["client processes"] = client_cpu_s * 1000 / n
        out["wall"] = (self.wall if wall_s is None else wall_s) * 1000 / n
        return out


def timed(fn, *a, **kw) -> float:
    t = time.perf_counter()
    fn(*a, **kw)
    return (time.perf_counter() - t) * 1000


def raw_filters(n: int, fastpath: int = 250, start: int = 0):
    r = pl.FilterResult("drop")
    return [pl.npe_filter(fastpath, i % pl.MAX_FILTER_ID, 0,
                          {"dst_addr": (10 << 24) + start + i}, {"dst_addr": 0xFFFFFFFF}, r)
            for i in range(n)]


def raw_p4runtime(node: LiveNode, n: int) -> dict:
    """Filter entries per second written straight over P4Runtime."""
    out = {}
    conn = SwitchConnection(node.testbed.nodes[0].npes[0].grpc_addr, pl.npe_pipeline())
    try:
        conn.set_pipeline()
        for label, batch in (("raw_p4rt_single", 1), ("raw_p4rt_batch100", 100)):
            entries = raw_filters(n)
            t = time.perf_counter()
            for i in range(0, n, batch):
                conn.write([(INSERT, e) for e in entries[i:i + batch]])
            out[label] = n / (time.perf_counter() - t)
            for i in range(0, n, 500):
                conn.write([(DELETE, e) for e in entries[i:i + 500]])
    finally:
        conn.close()
    return out


class ControllerProcess:
    """``python -m controller`` on a live node, as in a testbed: its own process,
    which can be killed (``kill()`` is kill -9) and started again on the same
    database (``start()``). The tests of issue 10 use it too."""

    def __init__(self, node: LiveNode, workdir: Path, port: int | None = None,
                 token: str = "bench-token", testbed: Path | None = None):
        self.node, self.workdir = node, Path(workdir)
        self.testbed = testbed or node.testbed_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.db = self.workdir / "spp.db"
        self.log = self.workdir / "controller.log"
        self.proc: subprocess.Popen | None = None
        self._bench_secret = None

    def start(self, timeout: float = 60.0):
        (self.workdir / "admin.token").write_text(self.token + "\n")
        with open(self.workdir / "controller.stderr", "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller", "--testbed", str(self.testbed),
                 "--db", str(self.db), "--listen", f"127.0.0.1:{self.port}",
                 "--admin-token-file", str(self.workdir / "admin.token"),
                 "--log-file", str(self.log)], cwd=ROOT, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(httpx.get(self.url + "/health", timeout=1).json()["result"]
                       ["switches"].values()):
                    return self
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"controller did not come up: see {self.log}")
            time.sleep(0.1)

    def admin(self, method: str, path: str, **kw) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"X-SPP-Admin": self.token},
                             timeout=30, **kw)

    def create_slice(self, name, mgmt, data_addr, lc_port, mac, node="node1",
                     quota: dict | None = None) -> str:
        """A new slice (``quota``: what it may hold, else the defaults); returns its secret."""
        rep = self.admin("POST", "/admin/slices", json={
            "name": name, "node": node, "mgmt_addr": mgmt, "data_addr": data_addr,
            "lc_port": lc_port, "mac": mac, **({"quota": quota} if quota else {})})
        if rep.status_code != 200:
            raise RuntimeError(f"create_slice {name}: HTTP {rep.status_code} {rep.text}")
        return rep.json()["result"]["secret"]

    def slice(self) -> Slice:
        """A client of the slice "bench" (on slice host A), created on first use
        with the largest quotas the admin API grants: capacity measurements
        (bench/scale.py) find the NPE's limits, not the slice's."""
        if self._bench_secret is None:
            big = 1 << 16
            self._bench_secret = self.create_slice(
                "bench", MGMT, SLICE_A, 2, self.node.slice_macs["A"],
                quota={"fastpaths": big, "meta_ifs": big, "endpoints": big, "periodic": big,
                       "npe_share": 100, "if_share": 100})
        return Slice(self.url, self._bench_secret, local_address=MGMT)

    def kill(self):
        """kill -9: no shutdown of any kind."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- slice programs (each a process of its own) ------------------------------

def filter_key(fid: int) -> dict:
    return {"dst_addr": f"10.{fid >> 16 & 255}.{fid >> 8 & 255}.{fid & 255}"}


FULL = {"dst_addr": "255.255.255.255"}
DROP = {"action": "drop"}


def _warm(_):
    time.sleep(0.5)                   # every worker process is up and has imported us


def _client(job: dict) -> dict:
    """One slice program: waits for ``job["start"]`` (wall clock), then
    writes filters (``write``), writes and removes them until ``job["until"]``
    (``flood``), or loads them all (``bulk``)."""
    s = Slice(job["url"], job["secret"], local_address=job["mgmt"])
    fpid, fids = job["fpid"], job.get("fids", [])
    lat, errors, n = [], {}, 0

    def call(fn, *a, **kw):
        nonlocal n
        t = time.perf_counter()
        try:
            fn(*a, **kw)
            n += 1
        except SppError as e:
            errors[e.name] = errors.get(e.name, 0) + 1
        lat.append((time.perf_counter() - t) * 1000)

    time.sleep(max(0.0, job["start"] - time.time()))
    t0, cpu0 = time.time(), time.process_time()
    if job["op"] == "write":
        for fid in fids:
            call(s.write_fltr, fpid, fid, key=filter_key(fid), mask=FULL, result=DROP)
    elif job["op"] == "flood":
        i = 0
        while time.time() < job["until"]:
            fid = fids[i % len(fids)]
            call(s.write_fltr, fpid, fid, key=filter_key(fid), mask=FULL, result=DROP)
            call(s.rem_fltr_byfid, fpid, fid)
            i += 1
    elif job["op"] == "bulk":
        n, errors = bulk_load(s, job, fpid, fids)
    elif job["op"] == "batch_flood":
        while time.time() < job["until"]:
            for fn, args in (("write_fltr", lambda f: {"type": 0, "key": filter_key(f),
                                                       "mask": FULL, "result": DROP}),
                             ("rem_fltr_byfid", lambda f: {})):
                for r in s.batch((fn, {"fpid": fpid, "fid": f, **args(f)}) for f in fids):
                    if isinstance(r, SppError):
                        errors[r.name] = errors.get(r.name, 0) + 1
                    else:
                        n += 1
    t1, cpu = time.time(), time.process_time() - cpu0
    s.close()
    return {"t0": t0, "t1": t1, "n": n, "lat": lat, "errors": errors, "cpu": cpu}


def bulk_load(s: Slice, job: dict, fpid: int, fids: list[int]) -> tuple[int, dict]:
    """Many filters, the fastest way the slice library offers: its batch call
    when it has one (each filter keeps its own result code), else requests in
    flight from ``job["threads"]`` threads."""
    errors: dict[str, int] = {}
    if hasattr(s, "batch"):
        done = 0
        for r in s.batch(("write_fltr", {"fpid": fpid, "fid": fid, "type": 0,
                                         "key": filter_key(fid), "mask": FULL, "result": DROP})
                         for fid in fids):
            if isinstance(r, SppError):
                errors[r.name] = errors.get(r.name, 0) + 1
            else:
                done += 1
        return done, errors
    lock = threading.Lock()
    counts = {"done": 0}

    def worker(part):
        with Slice(job["url"], job["secret"], local_address=job["mgmt"]) as c:
            for fid in part:
                try:
                    c.write_fltr(fpid, fid, key=filter_key(fid), mask=FULL, result=DROP)
                    with lock:
                        counts["done"] += 1
                except SppError as e:
                    with lock:
                        errors[e.name] = errors.get(e.name, 0) + 1

    k = job["threads"]
    with ThreadPoolExecutor(k) as ex:
        list(ex.map(worker, [fids[i::k] for i in range(k)]))
    return counts["done"], errors


def run_clients(pool: ProcessPoolExecutor, jobs: list[dict], lead: float = 0.5) -> dict:
    """Run slice programs at once; rate over the wall time from the common start."""
    start = time.time() + lead
    for j in jobs:
        j["start"] = start
    outs = list(pool.map(_client, jobs))
    n = sum(o["n"] for o in outs)
    errors: dict[str, int] = {}
    for o in outs:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    wall = max(o["t1"] for o in outs) - start
    return {"n": n, "seconds": wall, "rate": n / wall, "errors": errors,
            "lat": [x for o in outs for x in o["lat"]], "cpu": sum(o["cpu"] for o in outs)}


# ---- the benchmark ------------------------------------------------------------

def run(n_filters: int = 2000, n_lat: int = 500, log=print) -> dict:
    res: dict = {"n_filters": n_filters, "errors": {}}
    ctx = multiprocessing.get_context("spawn")   # no fork of a process with gRPC threads
    with tempfile.TemporaryDirectory(prefix="spp-bench-cp-") as tmp, \
            LiveNode(Path(tmp), tag="240") as node, \
            ProcessPoolExecutor(8, mp_context=ctx) as pool:
        list(pool.map(_warm, range(8)))
        res["rates"] = raw_p4runtime(node, n_filters)
        with ControllerProcess(node, Path(tmp)) as ctl:
            # Whole NPEs: slice "a" loads 8,000 filters into one fastpath.
            secrets = {name: ctl.create_slice(name, mgmt, data, port,
                                              node.slice_macs.get(name.upper(),
                                                                  f"02:00:00:00:02:{port:02x}"),
                                              quota={"npe_share": 100, "if_share": 100})
                       for name, (mgmt, data, port) in SLICES.items()}
            lib = {name: Slice(ctl.url, secrets[name], local_address=SLICES[name][0])
                   for name in SLICES}
            s = lib["a"]

            def job(name, op, fpid, fids, **kw):
                return {"url": ctl.url, "secret": secrets[name], "mgmt": SLICES[name][0],
                        "op": op, "fpid": fpid, "fids": list(fids), **kw}

            def fastpath(name, filters, **kw):
                args = dict(bw=1000, filters=filters, queues=1, buffers=1, stats=2)
                return lib[name].alloc_fastpath(**{**args, **kw})["fpid"]

            # alloc/free_fastpath latency.
            lat_alloc, lat_free = [], []
            for _ in range(30):
                t = time.perf_counter()
                fp = s.alloc_fastpath(bw=1000, filters=n_filters, queues=4, buffers=64,
                                      stats=16)
                lat_alloc.append((time.perf_counter() - t) * 1000)
                lat_free.append(timed(s.free_fastpath, fp["fpid"]))

            # write_fltr one by one, in this process: latency and rate.
            fp = fastpath("a", n_filters)
            lat_fltr = []
            t = time.perf_counter()
            with CpuMeter(ctl, node) as meter:
                for fid in range(1, n_filters + 1):
                    lat_fltr.append(timed(s.write_fltr, fp, fid, key=filter_key(fid),
                                          mask=FULL, result=DROP))
            res["rates"]["rest_single"] = n_filters / (time.perf_counter() - t)
            res["cpu_ms_per_filter"] = {"rest_single": meter.per(n_filters)}
            s.free_fastpath(fp)

            # 8 clients of one slice, then 4 slices at once (2 clients each):
            # a call per filter, then each client loading its share with
            # Slice.batch (the batch extension: each filter keeps its own
            # result code).
            for op, how, n in (("write", "rest", n_filters), ("bulk", "batch", BULK_FILTERS)):
                fp = fastpath("a", n)
                with CpuMeter(ctl, node) as meter:
                    r = run_clients(pool, [job("a", op, fp, range(1 + i, n + 1, 8))
                                           for i in range(8)], lead=ALONE_S)
                label = f"{how}_8_clients_1_slice"
                res["cpu_ms_per_filter"][label] = meter.per(r["n"], r["cpu"], r["seconds"])
                res["rates"][label] = r["rate"]
                res["errors"][label] = r["errors"]
                s.free_fastpath(fp)
                per = n // 4
                fps = {name: fastpath(name, per) for name in SLICES}
                r = run_clients(pool, [job(name, op, fps[name], range(1 + i, per + 1, 2))
                                       for name in SLICES for i in range(2)])
                res["rates"][f"{how}_4_slices"] = r["rate"]
                res["errors"][f"{how}_4_slices"] = r["errors"]
                for name, f in fps.items():
                    lib[name].free_fastpath(f)

            # One slice program loads BULK_FILTERS filters.
            fp = fastpath("a", BULK_FILTERS)
            has_batch = hasattr(Slice, "batch")
            with CpuMeter(ctl, node) as meter:
                r = run_clients(pool, [job("a", "bulk", fp, range(1, BULK_FILTERS + 1),
                                           threads=16)], lead=ALONE_S)
            res["cpu_ms_per_filter"]["rest_bulk_1_program"] = meter.per(r["n"], r["cpu"],
                                                                        r["seconds"])
            res["bulk"] = {"filters": r["n"], "seconds": r["seconds"],
                           "seconds_per_10000": r["seconds"] * 10_000 / max(1, r["n"]),
                           "how": ("Slice.batch, as many calls per request as it takes"
                                   if has_batch else
                                   "16 threads with requests in flight (no batch call)"),
                           "errors": r["errors"]}
            res["rates"]["rest_bulk_1_program"] = r["rate"]
            lat_bulk_free = timed(s.free_fastpath, fp)

            # mem_write of 4,096 words.
            fp = fastpath("a", 1, sram=MEM_WORDS)
            lat_mem = [timed(s.mem_write, fp, 0, [(i * 7919 + k) & 0xFFFFFFFF
                                                  for i in range(MEM_WORDS)])
                       for k in range(5)]
            lat_mem_read = [timed(s.mem_read, fp, 0, MEM_WORDS) for _ in range(5)]
            s.free_fastpath(fp)

            # Fairness: b's read_stats, idle and while a floods the API.
            b = lib["b"]
            fb = fastpath("b", 1)
            idle = [timed(b.read_stats, fb, 1) for _ in range(n_lat)]

            def reads_under_flood(op: str, fp: int, fids: list[range]) -> dict:
                """b's read_stats while slice a's programs (one per range of
                filter IDs) flood the API for 6 s, against b's idle latency."""
                until = time.time() + 0.5 + 6.0
                box: dict = {}
                th = threading.Thread(target=lambda: box.update(run_clients(
                    pool, [job("a", op, fp, ids, until=until) for ids in fids])))
                th.start()
                time.sleep(1.5)             # the flood is on
                busy = []
                while time.time() < until - 0.5:
                    busy.append(timed(b.read_stats, fb, 1))
                th.join()
                return {"flood": pct(busy), "p99_ratio": pct(busy)["p99_ms"] / pct(idle)["p99_ms"],
                        "flood_calls_per_s": box["rate"], "flood_errors": box["errors"]}

            # One call at a time (8 programs), then batches (4 programs, 500
            # filters a batch).
            res["fairness"] = {"idle": pct(idle), **reads_under_flood(
                "flood", fastpath("a", 64), [range(1 + 8 * i, 9 + 8 * i) for i in range(8)])}
            res["fairness_batch"] = reads_under_flood(
                "batch_flood", fastpath("a", 2000),
                [range(1 + 500 * i, 501 + 500 * i) for i in range(4)])
            for c in lib.values():
                c.close()
            res["latency"] = {"alloc_fastpath": pct(lat_alloc), "free_fastpath": pct(lat_free),
                              "write_fltr": pct(lat_fltr), "read_stats": pct(idle),
                              "read_stats_under_flood": res["fairness"]["flood"],
                              f"mem_write_{MEM_WORDS}": pct(lat_mem),
                              f"mem_read_{MEM_WORDS}": pct(lat_mem_read),
                              f"free_fastpath_{BULK_FILTERS}_filters": {
                                  "p50_ms": lat_bulk_free, "p90_ms": lat_bulk_free,
                                  "p99_ms": lat_bulk_free, "n": 1}}
    raw = res["rates"].get("raw_p4rt_batch100")
    res["vs_raw_batch100"] = {k: v / raw for k, v in res["rates"].items() if raw}
    for k, v in res["rates"].items():
        log(f"  {k:<24} {v:>9.0f} filters/s  {res['vs_raw_batch100'].get(k, 0):.2f}x raw batched")
    for k, v in res["latency"].items():
        log(f"  {k:<34} p50 {v['p50_ms']:8.2f} ms  p99 {v['p99_ms']:8.2f} ms")
    log(f"  bulk: {res['bulk']['filters']} filters in {res['bulk']['seconds']:.2f} s "
        f"({res['bulk']['how']}); 10,000 at that rate: {res['bulk']['seconds_per_10000']:.1f} s")
    for k, v in res["cpu_ms_per_filter"].items():
        log(f"  CPU ms per filter, {k}: " + ", ".join(f"{w} {x:.3f}" for w, x in v.items()))
    f = res["fairness"]
    log(f"  fairness: read_stats p99 {f['idle']['p99_ms']:.2f} ms idle, "
        f"{f['flood']['p99_ms']:.2f} ms under a flood of {f['flood_calls_per_s']:.0f} calls/s "
        f"({f['p99_ratio']:.1f}x)")
    fb_ = res["fairness_batch"]
    log(f"  fairness: read_stats p99 {fb_['flood']['p99_ms']:.2f} ms under a batch flood of "
        f"{fb_['flood_calls_per_s']:.0f} calls/s ({fb_['p99_ratio']:.1f}x)")
    if any(res["errors"].values()) or f["flood_errors"] or res["bulk"]["errors"]:
        log(f"  errors: {res['errors']} bulk {res['bulk']['errors']} flood {f['flood_errors']}")
    return res


if __name__ == "__main__":
    run()
