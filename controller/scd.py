"""SCD, the substrate control daemon: one per switch.

Two halves:

* translation: functions turning the controller's records (fastpaths,
  meta-interfaces, filters, queues, endpoints, slices) into the table
  entries, meter rates and register values of npe.p4 and lc.p4. The full
  intended state of a switch is the union of these over the database, which
  is what ``reconcile`` compares the switch against;
* ``Scd``: the P4Runtime session (plus BMv2 Thrift for registers and queue
  settings) that writes them, re-pushing the pipeline and every entry when
  the switch has restarted.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import pipeline as pl
from .errors import SppError
from .p4rt import DELETE, INSERT, MODIFY, Entry, P4RuntimeError, Pipeline, SwitchConnection
from .store import loads
from .testbed import Node, Npe, Switch
from .thrift_api import ThriftClient, ThriftError

log = logging.getLogger(__name__)

ETHERNET_MTU_FRAME = 1514
LC_POLICE_STRIDE = 512          # LC packet meters per NPE (define.p4: LC_POLICE_SIZE)


# ---- translation ---------------------------------------------------------

def queue_meter_rate(bw_kbps: int) -> tuple[int, int]:
    """Meter (bytes/s, burst bytes) of a bandwidth; 0 kb/s: closed (every packet red)."""
    if bw_kbps <= 0:
        return 0, 1
    rate = bw_kbps * 1000 // 8
    # 20 ms of traffic, and never less than two full frames.
    return rate, max(2 * ETHERNET_MTU_FRAME, rate // 50)


def queue_rates(fp: dict, queues: list[dict], meta_ifs: list[dict]) -> dict[int, int]:
    """The rate (kb/s) each queue of a fastpath is policed at, from bind_queue on.

    A queue with a bandwidth of its own (set_queue_params) gets it. The queues
    of a meta-interface that have none share equally what the meta-interface's
    bandwidth leaves after those: never more than the meta-interface has, so
    never another queue's, nor another slice's, reserved share. A queue bound
    to no meta-interface gets nothing (0: closed).
    """
    mi_bw = {m["mi"]: m["bw_kbps"] for m in meta_ifs}
    rates = dict.fromkeys(range(fp["n_queues"]), 0)
    by_mi: dict[int, list[dict]] = {}
    for q in queues:
        by_mi.setdefault(q["mi"], []).append(q)
    for mi, qs in by_mi.items():
        left = max(mi_bw.get(mi, 0) - sum(q["bw_kbps"] for q in qs), 0)
        shared = sum(1 for q in qs if q["bw_kbps"] == 0)
        for q in qs:
            rates[q["qid"]] = q["bw_kbps"] or left // shared
    return rates


def lc_police_index(node: Node, npe: Npe, gid: int) -> int:
    """The LC packet meter (Lc.POLICE) of fastpath ``gid`` of ``npe``."""
    return [n.name for n in node.npes].index(npe.name) * LC_POLICE_STRIDE + gid


def police_rates(npe: Npe, fastpaths: list[dict]) -> dict[int, tuple[int, int] | None]:
    """LC packet meters (packets/s, burst packets) of an NPE's fastpaths, by
    gid: the NPE's packet budget shared in proportion to the fastpaths' bw, so
    that together they never offer the NPE more packets than it can process,
    and a flooding slice's excess is dropped at the LC. None: the NPE's
    capacity is unknown (testbed ``pps`` 0; not policed, the SRM warns)."""
    total = sum(fp["bw_kbps"] for fp in fastpaths)
    out: dict[int, tuple[int, int] | None] = {}
    for fp in fastpaths:
        if npe.pps <= 0:
            out[fp["gid"]] = None
            continue
        pps = max(1, npe.pps * fp["bw_kbps"] // total) if total else 1
        out[fp["gid"]] = (pps, max(8, pps // 20))         # 50 ms of packets
    return out


def fastpath_entries(fp: dict, slice_: dict, npe: Npe) -> list[Entry]:
    """Partition, the slice's return tunnel, and the two slice endpoints."""
    gid = fp["gid"]
    return [
        pl.npe_fastpath(gid, fp["local_id"], fp["stats_base"], fp["n_stats"],
                        fp["queue_base"], fp["n_queues"]),
        pl.npe_slice_tunnel(gid, npe.addr, fp["ret_port"], slice_["data_addr"],
                            slice_["lc_port"]),
        pl.npe_slice_endpoint(gid, pl.METANET_LOCAL_DELIVERY, slice_["data_addr"],
                              fp["ld_port"], npe.addr, fp["ret_port"]),
        pl.npe_slice_endpoint(gid, pl.METANET_EXCEPTION, slice_["data_addr"],
                              fp["exc_port"], npe.addr, fp["ret_port"]),
    ]


def meta_if_entries(fp: dict, mi: dict, node: Node, npe: Npe) -> tuple[list[Entry], list[Entry]]:
    """(NPE entries, LC entries) of a meta-interface."""
    iface = node.interface(mi["ifn"])
    peer = iface.peer if iface.peering else 0
    npe_entries = [pl.npe_meta_if_tunnel(fp["gid"], mi["mi"], mi["addr"], mi["port"], peer),
                   pl.npe_meta_if(fp["gid"], mi["mi"], mi["addr"], mi["port"], peer or None)]
    lc_entries = [pl.lc_meta_if(mi["addr"], mi["port"], npe.lc_port, npe.lc_mac, npe.mac,
                                lc_police_index(node, npe, fp["gid"]))]
    return npe_entries, lc_entries


def filter_result(result: dict) -> pl.FilterResult:
    return pl.FilterResult(**result)


def filter_entry(fp: dict, fid: int, data: dict) -> Entry:
    return pl.npe_filter(fp["gid"], fid, data["type"], data["key"], data["mask"],
                         filter_result(data["result"]))


def queue_entries(fp: dict, q: dict) -> list[Entry]:
    if q["threshold"] > 0:
        return [pl.npe_queue_params(fp["queue_base"] + q["qid"], q["threshold"])]
    return []


def endpoint_entries(ep: dict, slice_: dict) -> list[Entry]:
    return list(pl.lc_endpoint(ep["addr"], ep["proto"], ep["port"], slice_["data_addr"],
                               ep["slice_port"]))


def slice_entries(slice_: dict, node: Node) -> list[Entry]:
    """LC: route to the slice host, and its port's and address's source guard."""
    return [pl.lc_route(slice_["data_addr"], 32, slice_["lc_port"], node.gpe_mac, slice_["mac"]),
            pl.lc_slice_port(slice_["lc_port"], slice_["data_addr"]),
            pl.lc_slice_addr(slice_["data_addr"])]


def npe_base_entries(node: Node, npe: Npe) -> list[Entry]:
    out = [pl.npe_route("0.0.0.0", 0, npe.port, npe.mac, npe.lc_mac),
           pl.npe_local_addr(npe.addr),
           pl.npe_peering(npe.addr)]          # slice return tunnels are keyed by source
    out += [pl.npe_peering(i.addr) for i in node.interfaces if i.peering]
    return out


def lc_base_entries(node: Node) -> list[Entry]:
    out = []
    for i in node.interfaces:
        out += [pl.lc_arp(i.addr, i.mac), pl.lc_local_addr(i.addr)]
    if node.gpe_gateway:
        out += [pl.lc_arp(node.gpe_gateway, node.gpe_mac), pl.lc_local_addr(node.gpe_gateway)]
    for r in node.routes:
        net = r.network
        mac = next(i.mac for i in node.interfaces if i.lc_port == r.lc_port)
        out.append(pl.lc_route(str(net.network_address), net.prefixlen, r.lc_port, mac, r.dst_mac))
    for npe in node.npes:
        out.append(pl.lc_route(npe.addr, 32, npe.lc_port, npe.lc_mac, npe.mac))
        out.append(pl.lc_npe_addr(npe.addr))       # only slice hosts' ports reach it
    return out


@dataclass
class Intent:
    """Everything one switch should hold."""

    entries: list[Entry] = field(default_factory=list)
    meters: dict[int, tuple[int, int] | None] = field(default_factory=dict)   # queue index
    fastpath_meters: dict[int, tuple[int, int]] = field(default_factory=dict)  # fastpath gid
    police_meters: dict[int, tuple[int, int] | None] = field(default_factory=dict)  # LC
    registers: dict[int, int] = field(default_factory=dict)                   # SRAM cell


def node_intent(store, node: Node) -> dict[str, Intent]:
    """The intended state of every switch of a node, from the database."""
    intents = {node.lc.name: Intent(lc_base_entries(node))}
    lc = intents[node.lc.name]
    for npe in node.npes:
        intents[npe.name] = Intent(npe_base_entries(node, npe))
    slices = {s["id"]: s for s in store.q("SELECT * FROM slices WHERE node = ?", node.name)}
    for s in slices.values():
        lc.entries += slice_entries(s, node)
    for ep in store.q("SELECT * FROM endpoints WHERE node = ?", node.name):
        lc.entries += endpoint_entries(ep, slices[ep["slice_id"]])
    for fp in store.q("SELECT * FROM fastpaths WHERE node = ?", node.name):
        npe = node.npe(fp["npe"])
        it = intents[npe.name]
        it.entries += fastpath_entries(fp, slices[fp["slice_id"]], npe)
        for mi in store.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?", fp["id"]):
            n_e, l_e = meta_if_entries(fp, mi, node, npe)
            it.entries += n_e
            lc.entries += l_e
        for f in store.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
            it.entries.append(filter_entry(fp, f["fid"], loads(f["data"])))
        queues = store.q("SELECT * FROM queues WHERE fastpath_id = ?", fp["id"])
        for q in queues:
            it.entries += queue_entries(fp, q)
        mis = store.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?", fp["id"])
        for qid, kbps in queue_rates(fp, queues, mis).items():
            it.meters[fp["queue_base"] + qid] = queue_meter_rate(kbps)
        it.fastpath_meters[fp["gid"]] = queue_meter_rate(fp["bw_kbps"])
        for cell in store.q("SELECT offset, value FROM sram WHERE fastpath_id = ?", fp["id"]):
            it.registers[fp["sram_base"] + cell["offset"]] = cell["value"]
    for npe in node.npes:
        fps = store.q("SELECT * FROM fastpaths WHERE node = ? AND npe = ?", node.name, npe.name)
        for gid, rate in police_rates(npe, fps).items():
            lc.police_meters[lc_police_index(node, npe, gid)] = rate
    return intents


# ---- the daemon ----------------------------------------------------------

class Scd:
    """The controller's agent for one switch (LC or NPE)."""

    def __init__(self, switch: Switch, pipeline: Pipeline, role: str):
        self.switch = switch
        self.pipeline = pipeline
        self.role = role
        self.conn: SwitchConnection | None = None
        self.thrift: ThriftClient | None = None
        self.lock = threading.RLock()

    @property
    def name(self):
        return self.switch.name

    def _fail(self, what, err) -> SppError:
        return SppError("ESWITCH", f"{self.name}: {what}: {err}")

    def connect(self, timeout: float = 10.0) -> bool:
        """(Re)connect; push the pipeline if the switch does not run it.
        Returns True when the pipeline was pushed (the switch is empty)."""
        with self.lock:
            self.close()
            self.conn = SwitchConnection(self.switch.grpc_addr, self.pipeline,
                                         self.switch.device_id, timeout=timeout)
            host = self.switch.grpc_addr.rsplit(":", 1)[0]
            self.thrift = ThriftClient(host, self.switch.thrift_port)
            if self.conn.has_pipeline():
                return False
            log.info("%s: pushing pipeline %s", self.name, self.pipeline.json_path)
            self.conn.set_pipeline()
            return True

    def close(self):
        if self.conn:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a dead channel may fail to close
                pass
            self.conn = None
        if self.thrift:
            self.thrift.close()
            self.thrift = None

    def alive(self) -> bool:
        with self.lock:
            if self.conn is None:
                return False
            try:
                return self.conn.has_pipeline()
            except Exception:  # noqa: BLE001
                return False

    @contextmanager
    def _call(self, what: str):
        """Serialize access to the switch; its failures become SppError(ESWITCH)."""
        with self.lock:
            if self.conn is None or self.thrift is None:
                raise SppError("ESWITCH", f"{self.name}: not connected")
            try:
                yield
            except (P4RuntimeError, ThriftError) as e:
                raise self._fail(what, e) from None

    def write(self, updates: list[tuple[int, Entry]]):
        """One batch of (INSERT|MODIFY|DELETE, Entry); SppError(ESWITCH) on failure."""
        if updates:
            with self._call("write"):
                self.conn.write(updates)

    def read_counter(self, name: str, index: int):
        with self._call("counter read"):
            return self.conn.read_counter(name, index)

    def write_counter(self, name: str, index: int):
        with self._call("counter write"):
            self.conn.write_counter(name, index, 0, 0)

    def clear_counters(self, name: str, start: int, count: int):
        with self._call("counter write"):
            self.conn.clear_counters(name, start, count)

    def set_meter(self, name: str, index: int, rate_burst: tuple[int, int] | None):
        rate, burst = rate_burst or (None, 0)
        with self._call("meter write"):
            self.conn.set_meter(name, index, rate, burst)

    def register_read(self, name: str, start: int, count: int) -> list[int]:
        with self._call("register read"):
            if count == 1:
                return [self.thrift.register_read(name, start)]
            return self.thrift.register_read_range(name, start, count)

    def register_write(self, name: str, cells: dict[int, int]):
        with self._call("register write"):
            for index, value in cells.items():
                self.thrift.register_write(name, index, value)

    def register_fill(self, name: str, start: int, count: int, value: int = 0):
        with self._call("register write"):
            self.thrift.register_fill(name, start, count, value)

    def reconcile(self, intent: Intent, pushed: bool = False) -> dict[str, int]:
        """Make the switch hold exactly ``intent``: no missing, no extra entry.

        Meters and SRAM are written when the pipeline was just pushed (they
        start unconfigured and zero) or, for meters, always (idempotent).
        """
        with self.lock:
            want = {}
            for e in intent.entries:
                c = self.pipeline.canonical(e)
                want[(c.table, c.match, c.priority)] = c
            with self._call("read"):
                have = {(e.table, e.match, e.priority): e for e in self.conn.read_entries()}
            deletes = [(DELETE, e) for k, e in have.items() if k not in want]
            inserts = [(INSERT, e) for k, e in want.items() if k not in have]
            modifies = [(MODIFY, e) for k, e in want.items() if k in have and have[k] != e]
            self.write(deletes + modifies + inserts)
            if self.role == "npe":
                for index, rate in intent.meters.items():
                    self.set_meter(pl.Npe.QUEUE_RATE, index, rate)
                for index, rate in intent.fastpath_meters.items():
                    self.set_meter(pl.Npe.FASTPATH_RATE, index, rate)
            else:
                for index, rate in intent.police_meters.items():
                    self.set_meter(pl.Lc.POLICE, index, rate)
            if pushed and intent.registers:
                self.register_write(pl.Npe.SRAM, intent.registers)
            counts = {"inserted": len(inserts), "deleted": len(deletes),
                      "modified": len(modifies), "entries": len(want)}
            log.info("%s: reconciled %s", self.name, counts)
            return counts
