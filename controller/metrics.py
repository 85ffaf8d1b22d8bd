"""What the operator watches: one snapshot of every switch's counters and the
databases, as Prometheus metrics (``/metrics``) and as the web view's JSON.

A scrape reads each switch once per counter array: on an NPE the two drop
arrays and, of the two stats arrays (pre- and post-queue), the cells of the
allocated fastpaths' partitions, one P4Runtime read each, plus one Thrift read
of the queue-length register; on an LC its drop array. A down switch is not
read (``spp_switch_up`` says 0). The databases are read from one committed
snapshot per node. However many scrapers and web views poll, the switches
are read at most once a second (``Metrics.snapshot``); docs/web.md gives
what a scrape costs.

API calls are counted where they are served, in ``controller.api.call``:
``ApiMetrics.observe`` by function and SPP error name ("OK" for success).
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import pipeline as pl
from .errors import SppError
from .p4rt import P4RuntimeError
from .rmp import Rmp
from .store import loads
from .thrift_api import ThriftError

log = logging.getLogger(__name__)

STAGES = (("pre_queue", pl.Npe.STATS_PRE), ("post_queue", pl.Npe.STATS_POST))
DROP_ARRAYS = {"npe": ((pl.Npe.DROPS_IN, pl.NPE_DROPS), (pl.Npe.DROPS_OUT, pl.NPE_DROPS)),
               "lc": ((pl.Lc.DROPS, pl.LC_DROPS),)}
LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)


class ApiMetrics:
    """Slice API calls by function and answer, and their latency."""

    def __init__(self, registry: CollectorRegistry):
        self.calls = Counter("spp_api_calls", "Slice API calls served, by function and SPP "
                             "error name (OK: success)", ["function", "error"],
                             registry=registry)
        self.seconds = Histogram("spp_api_call_seconds", "Time to serve a slice API call",
                                 ["function"], buckets=LATENCY_BUCKETS, registry=registry)

    def observe(self, function: str, error: str, seconds: float):
        self.calls.labels(function, error).inc()
        self.seconds.labels(function).observe(seconds)


def _db_state(store) -> dict:
    """One node's resources, from one committed snapshot (read-only)."""
    with store.read():
        fps = store.q("SELECT f.*, s.name AS slice FROM fastpaths f "
                      "JOIN slices s ON s.id = f.slice_id ORDER BY s.name, f.local_id")
        rows = {
            "meta_ifs": store.q("SELECT * FROM meta_ifs ORDER BY fastpath_id, mi"),
            "queues": store.q("SELECT * FROM queues ORDER BY fastpath_id, qid"),
            "filters": store.q("SELECT fastpath_id, fid, data FROM filters "
                               "ORDER BY fastpath_id, fid"),
            "reservations": store.q("SELECT * FROM reservations ORDER BY fastpath_id, ifn"),
        }
        slices = store.q("SELECT id, name, node, mgmt_addr, data_addr, lc_port FROM slices "
                         "ORDER BY name")
        endpoints = store.q("SELECT * FROM endpoints ORDER BY slice_id, eid")
        periodic = store.q("SELECT slice_id, pid, fastpath_id, data FROM periodic "
                           "ORDER BY slice_id, pid")
    by_fp: dict[int, dict] = {f["id"]: {**f, **{k: [] for k in rows}} for f in fps}
    for kind, items in rows.items():
        for r in items:
            if kind == "filters":
                r = {**Rmp._filter_view(r["fid"], loads(r["data"])),    # as get_fltr_byfid
                     "fastpath_id": r["fastpath_id"]}
            by_fp[r["fastpath_id"]][kind].append(r)
    out = {s["id"]: {**s, "fastpaths": [], "endpoints": [], "periodic": []} for s in slices}
    for f in by_fp.values():
        out[f["slice_id"]]["fastpaths"].append(f)
    for e in endpoints:
        out[e["slice_id"]]["endpoints"].append(e)
    id_to_fpid = {f["id"]: f["local_id"] for f in fps}
    for p in periodic:
        out[p["slice_id"]]["periodic"].append({"pid": p["pid"],
                                               "fpid": id_to_fpid.get(p["fastpath_id"]),
                                               **loads(p["data"])})
    return out


def snapshot(ctl) -> dict:
    """Every node's slices with their resources and counters, the drops per
    switch, which switches are up, and what reading them cost."""
    t0 = time.perf_counter()
    reads = {"p4runtime": 0, "thrift": 0}
    up = ctl.up
    counters: dict[str, dict] = {}          # switch -> counter name -> {index: CounterValue}
    registers: dict[str, list[int]] = {}
    errors: list[str] = []

    def read(switch, names, cells=None):
        """Whole arrays, or only ``cells`` of them; one P4Runtime read each."""
        scd = ctl.scds[switch]
        got = counters.setdefault(switch, {})
        for name in names:
            if cells is not None and not cells:
                got[name] = {}
                continue
            reads["p4runtime"] += 1
            try:
                got[name] = (scd.read_counters(name) if cells is None
                             else scd.read_counter_cells(name, cells))
            except (SppError, P4RuntimeError) as e:
                errors.append(f"{switch}: {name}: {getattr(e, 'message', e)}")
                return

    nodes = []
    for node in ctl.testbed.nodes:
        slices = _db_state(ctl.stores[node.name])
        nodes.append({"name": node.name, "lc": node.lc.name,
                      "npes": [n.name for n in node.npes], "slices": list(slices.values())})
        if up.get(node.lc.name):
            read(node.lc.name, [a for a, _ in DROP_ARRAYS["lc"]])
        for npe in node.npes:
            if not up.get(npe.name):
                continue
            read(npe.name, [a for a, _ in DROP_ARRAYS["npe"]])
            fps = [f for s in slices.values() for f in s["fastpaths"] if f["npe"] == npe.name]
            # The stats arrays have 8,192 cells: read the fastpaths' partitions only.
            read(npe.name, [arr for _, arr in STAGES],
                 [f["stats_base"] + i for f in fps for i in range(f["n_stats"])])
            end = max((f["queue_base"] + f["n_queues"] for f in fps), default=0)
            if end:
                reads["thrift"] += 1
                try:
                    registers[npe.name] = ctl.scds[npe.name].register_read(
                        pl.Npe.QUEUE_LEN, 0, end)
                except (SppError, ThriftError) as e:
                    errors.append(f"{npe.name}: queue lengths: {getattr(e, 'message', e)}")
    for n in nodes:
        for s in n["slices"]:
            for f in s["fastpaths"]:
                c = counters.get(f["npe"], {})
                f["stats"] = []
                for i in range(f["n_stats"]):
                    g = f["stats_base"] + i
                    pre = c.get(pl.Npe.STATS_PRE, {}).get(g)
                    post = c.get(pl.Npe.STATS_POST, {}).get(g)
                    f["stats"].append({"index": i,
                                       "pre_packets": pre.packets if pre else None,
                                       "pre_bytes": pre.bytes if pre else None,
                                       "post_packets": post.packets if post else None,
                                       "post_bytes": post.bytes if post else None})
                lens = registers.get(f["npe"])
                for q in f["queues"]:
                    q["length"] = lens[f["queue_base"] + q["qid"]] if lens else None
    drops: dict[str, dict[str, int]] = {}
    for node in ctl.testbed.nodes:
        for switch, role in [(node.lc.name, "lc"), *((n.name, "npe") for n in node.npes)]:
            c = counters.get(switch)
            if c is None:
                continue
            d = drops[switch] = {}
            for array, reasons in DROP_ARRAYS[role]:
                for code, v in c.get(array, {}).items():
                    reason = reasons.get(code)
                    if reason:
                        d[reason] = d.get(reason, 0) + v.packets
    return {"time": time.time(), "switches": up, "nodes": nodes, "drops": drops,
            "switch_node": {sw: n.name for n in ctl.testbed.nodes
                            for sw in [n.lc.name, *(x.name for x in n.npes)]},
            "cost": {**reads, "seconds": time.perf_counter() - t0}, "errors": errors}


class SppCollector:
    """A Prometheus collector that reads the switches when scraped."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        snap = self.metrics.snapshot()
        sl = ["slice", "node", "fastpath", "index", "stage"]
        packets = CounterMetricFamily("spp_stats_packets", "Packets counted at a fastpath's "
                                      "stats index (pre_queue or post_queue)", labels=sl)
        bytes_ = CounterMetricFamily("spp_stats_bytes", "Bytes counted at a fastpath's stats "
                                     "index (pre_queue or post_queue)", labels=sl)
        qlen = GaugeMetricFamily("spp_queue_length", "Packets in a fastpath's queue",
                                 labels=["slice", "node", "fastpath", "queue"])
        for n in snap["nodes"]:
            for s in n["slices"]:
                for f in s["fastpaths"]:
                    base = [s["name"], n["name"], str(f["local_id"])]
                    for st in f["stats"]:
                        for stage in ("pre", "post"):
                            if st[f"{stage}_packets"] is None:
                                continue
                            lab = [*base, str(st["index"]), f"{stage}_queue"]
                            packets.add_metric(lab, st[f"{stage}_packets"])
                            bytes_.add_metric(lab, st[f"{stage}_bytes"])
                    for q in f["queues"]:
                        if q["length"] is not None:
                            qlen.add_metric([*base, str(q["qid"])], q["length"])
        drops = CounterMetricFamily("spp_drops", "Packets a switch dropped, by reason "
                                    "(npe.p4 and lc.p4 drop counters)",
                                    labels=["switch", "node", "reason"])
        for switch, reasons in snap["drops"].items():
            for reason, n in sorted(reasons.items()):
                drops.add_metric([switch, snap["switch_node"][switch], reason], n)
        up = GaugeMetricFamily("spp_switch_up", "1 if the controller holds the switch in "
                               "its intended state", labels=["switch", "node"])
        for switch, ok in snap["switches"].items():
            up.add_metric([switch, snap["switch_node"][switch]], 1 if ok else 0)
        cost = GaugeMetricFamily("spp_scrape_reads", "Switch reads this scrape made",
                                 labels=["protocol"])
        for proto in ("p4runtime", "thrift"):
            cost.add_metric([proto], snap["cost"][proto])
        secs = GaugeMetricFamily("spp_scrape_seconds", "Time this scrape spent reading the "
                                 "switches and databases", value=snap["cost"]["seconds"])
        yield from (packets, bytes_, qlen, drops, up, cost, secs)


class Metrics:
    """The controller's registry: switch and database state read on scrape,
    API calls counted as they are served."""

    def __init__(self, ctl, max_age: float = 1.0):
        self.ctl = ctl
        self.max_age = max_age
        self.registry = CollectorRegistry(auto_describe=False)
        self.api = ApiMetrics(self.registry)
        self.registry.register(SppCollector(self))
        self._lock = threading.Lock()
        self._last: tuple[float, dict] | None = None
        self.snapshots = 0                  # how many times the switches were read

    def snapshot(self) -> dict:
        """The latest snapshot, read anew when older than ``max_age`` seconds:
        however many scrapers and web views poll, the switches are read at
        most once per ``max_age`` (one scrape at a time reads them)."""
        with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] >= self.max_age:
                self._last = (now, snapshot(self.ctl))
                self.snapshots += 1
            return self._last[1]
