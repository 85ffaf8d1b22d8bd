"""Control-plane benchmark: how fast a slice programs its fastpath.

One live SPP node (mininet_topo/livenode.py: BMv2 LC and NPE in a private
namespace) and the controller as its own process, as in a testbed. Filters
are installed through the slice library and REST, one by one and with
several requests in flight, and, into the same BMv2 before the controller
owns it, as raw P4Runtime writes (one entry per request, and batches of
100). Latency percentiles of alloc_fastpath, write_fltr and read_stats are
those the slice library sees.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from controller import pipeline as pl
from controller.p4rt import DELETE, INSERT, SwitchConnection
from mininet_topo.livenode import SLICE_A, LiveNode
from slices.client import Slice

ROOT = Path(__file__).resolve().parent.parent
MGMT = "127.0.0.2"


def pct(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=100)
    return {"p50_ms": statistics.median(values), "p90_ms": q[89], "p99_ms": q[98],
            "n": len(values)}


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


def rest_filters(s_list: list[Slice], fpid: int, n: int, workers: int) -> float:
    """Filters per second through REST with ``workers`` requests in flight."""
    def one(i):
        s = s_list[i % len(s_list)]
        s.write_fltr(fpid, 10 + i, key={"dst_addr": f"10.{i >> 16 & 255}.{i >> 8 & 255}."
                                        f"{i & 255}"},
                     mask={"dst_addr": "255.255.255.255"}, result={"action": "drop"})
    t = time.perf_counter()
    if workers == 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(one, range(n)))
    return n / (time.perf_counter() - t)


class ControllerProcess:
    """``python -m controller`` on a live node, with one slice."""

    def __init__(self, node: LiveNode, workdir: Path):
        self.node, self.workdir = node, workdir
        self.url = "http://127.0.0.1:18080"

    def __enter__(self):
        (self.workdir / "admin.token").write_text("bench-token\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "--testbed", str(self.node.testbed_path),
             "--db", str(self.workdir / "spp.db"), "--listen", "127.0.0.1:18080",
             "--admin-token-file", str(self.workdir / "admin.token"),
             "--log-file", str(self.workdir / "controller.log")], cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if all(httpx.get(self.url + "/health", timeout=1).json()["result"]
                       ["switches"].values()):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("controller did not come up: see "
                                   f"{self.workdir / 'controller.log'}")
            time.sleep(0.2)
        rep = httpx.post(self.url + "/admin/slices", headers={"X-SPP-Admin": "bench-token"},
                         json={"name": "bench", "node": "node1", "mgmt_addr": MGMT,
                               "data_addr": SLICE_A, "lc_port": 2,
                               "mac": self.node.slice_macs["A"]})
        self.secret = rep.json()["result"]["secret"]
        return self

    def slice(self) -> Slice:
        return Slice(self.url, self.secret, local_address=MGMT)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def run(n_filters: int = 1000, n_lat: int = 200, log=print) -> dict:
    res = {"n_filters": n_filters}
    with tempfile.TemporaryDirectory(prefix="spp-bench-cp-") as tmp, \
            LiveNode(Path(tmp), tag="240") as node:
        res["rates"] = raw_p4runtime(node, n_filters)
        with ControllerProcess(node, Path(tmp)) as ctl:
            s = ctl.slice()
            lat_alloc, lat_free = [], []
            for _ in range(30):
                t = time.perf_counter()
                fp = s.alloc_fastpath(bw=1000, filters=4 * n_filters, queues=4, buffers=64,
                                      stats=16)
                lat_alloc.append((time.perf_counter() - t) * 1000)
                lat_free.append(timed(s.free_fastpath, fp["fpid"]))
            fp = s.alloc_fastpath(bw=1000, filters=4 * n_filters, queues=4, buffers=64,
                                  stats=16)["fpid"]
            lat_fltr = []
            for i in range(n_lat):
                lat_fltr.append(timed(s.write_fltr, fp, 60000 - i,
                                      key={"dst_addr": f"11.0.{i >> 8}.{i & 255}"},
                                      mask={"dst_addr": "255.255.255.255"},
                                      result={"action": "drop"}))
            lat_stats = [timed(s.read_stats, fp, 1) for _ in range(n_lat)]
            res["rates"]["rest_single"] = rest_filters([s], fp, n_filters, 1)
            for i in range(n_filters):
                s.rem_fltr_byfid(fp, 10 + i)
            clients = [ctl.slice() for _ in range(8)]
            res["rates"]["rest_8_in_flight"] = rest_filters(clients, fp, n_filters, 8)
            for c in clients:
                c.close()
            s.close()
            res["latency"] = {"alloc_fastpath": pct(lat_alloc), "free_fastpath": pct(lat_free),
                              "write_fltr": pct(lat_fltr), "read_stats": pct(lat_stats)}
    for k, v in res["rates"].items():
        log(f"  {k:<20} {v:>9.0f} filters/s")
    for k, v in res["latency"].items():
        log(f"  {k:<20} p50 {v['p50_ms']:.2f} ms  p99 {v['p99_ms']:.2f} ms")
    return res
