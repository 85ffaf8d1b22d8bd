"""SRM, the system resource manager: the only component with global state.

It decides, from the inventory (the testbed description plus the sizes of
npe.p4's tables, counters, meters and registers, read from its P4Info) and
from what the database says is already allocated, whether a request fits:
which NPE hosts a new fastpath, which ranges of the shared arrays become its
partitions, which UDP ports its tunnels and endpoints get, and whether an
interface still has the bandwidth a reservation asks for. It never talks to
a switch.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import asdict, dataclass

from . import limits
from . import pipeline as pl
from .errors import SppError
from .p4rt import P4Type, Pipeline
from .testbed import Node, Npe, Testbed

log = logging.getLogger(__name__)

# UDP port ranges the SRM hands out.
HELD_PORTS = range(20000, 22000)        # the administrator's: held for slices (held_ports)
META_IF_PORTS = range(22000, 30000)     # meta-interface endpoints on interfaces
ENDPOINT_PORTS = range(30000, 40000)    # endpoints (LC NAT) chosen by the SRM
NPE_RETURN_PORTS = range(40000, 50000)  # where slices send packets back to their fastpath
SLICE_PORTS = range(50000, 60000)       # local-delivery/exception ports on slice hosts
USER_PORTS = range(limits.MIN_USER_PORT, 65536)  # ports a slice may ask for by number


@dataclass(frozen=True)
class SliceQuota:
    """What one slice may hold on its node (limits.py has the defaults)."""

    fastpaths: int = limits.SLICE_FASTPATHS
    meta_ifs: int = limits.SLICE_META_IFS
    endpoints: int = limits.SLICE_ENDPOINTS
    periodic: int = limits.SLICE_PERIODIC
    npe_share: int = limits.SLICE_NPE_SHARE
    if_share: int = limits.SLICE_IF_SHARE
    host_kbps: int = limits.SLICE_HOST_KBPS
    host_pps: int = limits.SLICE_HOST_PPS

    @classmethod
    def of(cls, slice_: dict) -> SliceQuota:
        return cls(**json.loads(slice_.get("quota") or "{}"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class LcCapacity:
    """What one line card can hold, from lc.p4's P4Info."""

    meta_ifs: int
    endpoints: int
    routes: int
    slice_ports: int

    @classmethod
    def of(cls, pipeline: Pipeline) -> LcCapacity:
        return cls(meta_ifs=pipeline.size(P4Type.table, pl.Lc.META_IF),
                   endpoints=min(pipeline.size(P4Type.table, pl.Lc.ENDPOINT_IN),
                                 pipeline.size(P4Type.table, pl.Lc.ENDPOINT_OUT)),
                   routes=pipeline.size(P4Type.table, pl.Lc.ROUTE),
                   slice_ports=pipeline.size(P4Type.table, pl.Lc.SLICE_PORT))


@dataclass(frozen=True)
class NpeCapacity:
    """What one NPE can hold, from npe.p4's P4Info (and the testbed for what
    BMv2 does not model: DRAM, buffers, forwarding bandwidth)."""

    fastpaths: int
    filters: int
    tunnels: int
    stats: int
    queues: int
    sram_words: int
    meta_ifs: int
    dram_bytes: int
    buffers: int
    bandwidth_kbps: int

    @classmethod
    def of(cls, pipeline: Pipeline, npe: Npe) -> NpeCapacity:
        return cls(fastpaths=pipeline.size(P4Type.table, pl.Npe.FASTPATH),
                   filters=pipeline.size(P4Type.table, pl.Npe.FILTER),
                   tunnels=pipeline.size(P4Type.table, pl.Npe.TUNNEL),
                   stats=pipeline.size(P4Type.counter, pl.Npe.STATS_PRE),
                   queues=pipeline.size(P4Type.meter, pl.Npe.QUEUE_RATE),
                   sram_words=pipeline.register_size(pl.Npe.SRAM),
                   # each meta-interface is one tunnel entry (npe.p4 has no other)
                   meta_ifs=pipeline.size(P4Type.table, pl.Npe.TUNNEL),
                   dram_bytes=npe.dram_bytes, buffers=npe.buffers,
                   bandwidth_kbps=npe.bandwidth_kbps)


# What a fastpath takes of its NPE (fastpaths column, NpeCapacity field):
# amounts, and ranges of an array (its partitions, first_fit). A slice's
# fastpaths on one NPE hold at most SliceQuota.npe_share % of each.
SUMMED = (("n_filters", "filters"), ("n_buffers", "buffers"), ("dram_bytes", "dram_bytes"),
          ("bw_kbps", "bandwidth_kbps"))
PARTITIONED = (("n_stats", "stats"), ("n_queues", "queues"), ("sram_words", "sram_words"))


def first_fit(taken: list[tuple[int, int]], count: int, size: int) -> int | None:
    """Lowest base such that [base, base + count) avoids every (base, count)
    in ``taken`` and fits in [0, size); None if there is none."""
    if count == 0:
        return 0
    base = 0
    for b, c in sorted(t for t in taken if t[1] > 0):
        if base + count <= b:
            break
        base = max(base, b + c)
    return base if base + count <= size else None


def lowest_free(used: set[int], candidates: range) -> int | None:
    return next((p for p in candidates if p not in used), None)


class Srm:
    """Admission for every shared resource. Called from inside a node's
    executor (controller/executor.py), so what it counts is what the change
    will be added to: nothing can slip in between the check and the insert."""

    def __init__(self, stores: dict, testbed: Testbed, npe_pipeline: Pipeline,
                 lc_pipeline: Pipeline):
        self.stores = stores                    # node name -> Store
        self.testbed = testbed
        self.capacity = {npe.name: NpeCapacity.of(npe_pipeline, npe)
                         for node in testbed.nodes for npe in node.npes}
        self.lc_capacity = LcCapacity.of(lc_pipeline)
        # Per node: its own addresses, and its LC routes, longest prefix first
        # (check_next_hop).
        self._links = {node.name: (
            {i.addr for i in node.interfaces} | {n.addr for n in node.npes}
            | ({node.gpe_gateway} if node.gpe_gateway else set()),
            [(int(r.network.network_address), int(r.network.netmask), r.lc_port)
             for r in sorted(node.routes, key=lambda r: -r.network.prefixlen)])
            for node in testbed.nodes}
        for npe in (n for node in testbed.nodes for n in node.npes):
            if npe.pps > 0:
                log.info("%s: %d packets/s for %d kb/s of fastpaths; the LC polices each "
                         "fastpath's inbound packets to its share", npe.name, npe.pps,
                         npe.bandwidth_kbps)
            else:
                log.warning("%s: packet capacity unknown (testbed 'pps' is 0): the LC does "
                            "NOT police fastpaths' packet rates, a flood can use up this "
                            "NPE's packets", npe.name)

    # ---- per-slice quotas and table room ----
    def check_quota(self, slice_: dict, what: str, more: int = 1):
        """Refuse (EQUOTA) what would take the slice over its quota of ``what``."""
        quota = getattr(SliceQuota.of(slice_), what)
        table, col = {"fastpaths": ("fastpaths", "slice_id"),
                      "endpoints": ("endpoints", "slice_id"),
                      "periodic": ("periodic", "slice_id")}.get(what, (None, None))
        st = self.stores[slice_["node"]]
        if what == "meta_ifs":
            have = st.scalar("SELECT COUNT(*) FROM meta_ifs m JOIN fastpaths f ON "
                             "f.id = m.fastpath_id WHERE f.slice_id = ?", slice_["id"])
        else:
            have = st.scalar(f"SELECT COUNT(*) FROM {table} WHERE {col} = ?", slice_["id"])
        if have + more > quota:
            raise SppError("EQUOTA", f"slice {slice_['name']} has {have} of its {quota} "
                                     f"{what.replace('_', '-')} on {slice_['node']}")

    def check_meta_if_room(self, node: Node, npe: str):
        """Room for one more meta-interface in the NPE's tunnel and encap
        tables and in the LC's demux table (ENORES before any is full)."""
        st = self.stores[node.name]
        cap = self.capacity[npe]
        on_npe = st.scalar("SELECT COUNT(*) FROM meta_ifs m JOIN fastpaths f ON "
                           "f.id = m.fastpath_id WHERE f.npe = ?", npe)
        fps = st.scalar("SELECT COUNT(*) FROM fastpaths WHERE npe = ?", npe)
        if on_npe + 1 > cap.meta_ifs or on_npe + fps + 1 > cap.tunnels:
            raise SppError("ENORES", f"{npe} has no meta-interface left")
        if st.scalar("SELECT COUNT(*) FROM meta_ifs") + 1 > self.lc_capacity.meta_ifs:
            raise SppError("ENORES", f"the line card of {node.name} has no meta-interface left")

    def check_endpoint_room(self, node: Node):
        st = self.stores[node.name]
        if st.scalar("SELECT COUNT(*) FROM endpoints") + 1 > self.lc_capacity.endpoints:
            raise SppError("ENORES", f"the line card of {node.name} has no endpoint left")

    # ---- interfaces and bandwidth ----
    def reserved_on(self, node: str, ifn: int) -> int:
        return self.stores[node].scalar(
            "SELECT COALESCE(SUM(r.bw_kbps), 0) FROM reservations r "
            "JOIN fastpaths f ON f.id = r.fastpath_id WHERE f.node = ? AND r.ifn = ?", node, ifn)

    def available_bw(self, node: Node, ifn: int) -> int:
        iface = node.interface(ifn)
        return iface.bandwidth_kbps - self.reserved_on(node.name, ifn)

    def check_reservation(self, node: Node, ifn: int, more_kbps: int, slice_: dict):
        avail = self.available_bw(node, ifn)
        if more_kbps > avail:
            raise SppError("ENOBW", f"interface {ifn} has {avail} kb/s available, "
                                    f"{more_kbps} kb/s asked")
        # ... and no slice reserves more than its share of an interface.
        share = SliceQuota.of(slice_).if_share
        mine = self.stores[node.name].scalar(
            "SELECT COALESCE(SUM(r.bw_kbps), 0) FROM reservations r JOIN fastpaths f ON "
            "f.id = r.fastpath_id WHERE f.slice_id = ? AND r.ifn = ?", slice_["id"], ifn)
        allowed = node.interface(ifn).bandwidth_kbps * share // 100
        if mine + more_kbps > allowed:
            raise SppError("EQUOTA", f"slice {slice_['name']} may reserve {share}% of interface "
                                     f"{ifn} ({allowed} kb/s); it has {mine} kb/s, "
                                     f"{more_kbps} kb/s asked")

    def check_next_hop(self, node: Node, ifn: int, nh_addr: str):
        """A forwarding filter's next hop must be on its meta-interface's own
        link: the LC routes the packet by its outer destination (the next hop),
        whatever interface the meta-interface is on. Elsewhere, traffic policed
        at the slice's reservation on one interface would leave by another,
        where other slices reserved the bandwidth, go to a slice host, or come
        back into an NPE (a meta-interface of the node's own address). A
        peering meta-interface always sends to its peer (its next hop is not
        used)."""
        iface = node.interface(ifn)
        if iface.peering:
            return
        internal, routes = self._links[node.name]
        addr = int(ipaddress.IPv4Address(nh_addr))
        port = next((p for net, mask, p in routes if addr & mask == net), None)
        if (port != iface.lc_port or nh_addr in internal
                or self.stores[node.name].one("SELECT 1 FROM slices WHERE node = ? AND "
                                              "data_addr = ?", node.name, nh_addr)):
            raise SppError("EINVAL", f"next hop {nh_addr} is not on interface {ifn}'s link "
                                     "(a meta-interface sends out its own interface only)")

    # ---- fastpath placement ----
    def place_fastpath(self, node: Node, req: dict, slice_: dict) -> dict:
        """Choose an NPE and carve partitions for a new fastpath, or refuse:
        ENORES saying what was short, or EQUOTA if the NPEs that have the
        room would take the slice past its share of them (``npe_share``)."""
        reasons, over_share = [], []
        share = SliceQuota.of(slice_).npe_share
        # Least loaded first: the NPE with the fewest fastpaths (ties: the
        # testbed's order), then the others if it cannot host this one.
        fps_of = {npe.name: self.stores[node.name].q("SELECT * FROM fastpaths WHERE npe = ?",
                                                     npe.name) for npe in node.npes}
        for npe in sorted(node.npes, key=lambda n: len(fps_of[n.name])):
            cap = self.capacity[npe.name]
            fps = fps_of[npe.name]
            short = []
            if len(fps) >= cap.fastpaths:
                short.append("fastpaths")
            if len(fps) + self.stores[node.name].scalar(
                    "SELECT COUNT(*) FROM meta_ifs m JOIN fastpaths f ON f.id = m.fastpath_id "
                    "WHERE f.npe = ?", npe.name) + 1 > cap.tunnels:
                short.append("tunnels")
            for key, capname in SUMMED:
                if sum(f[key] for f in fps) + req[key] > getattr(cap, capname):
                    short.append(capname)
            stats_base = first_fit([(f["stats_base"], f["n_stats"]) for f in fps],
                                   req["n_stats"], cap.stats)
            queue_base = first_fit([(f["queue_base"], f["n_queues"]) for f in fps],
                                   req["n_queues"], cap.queues)
            sram_base = first_fit([(f["sram_base"], f["sram_words"]) for f in fps],
                                  req["sram_words"], cap.sram_words)
            for name, val in (("stats", stats_base), ("queues", queue_base),
                              ("sram", sram_base)):
                if val is None:
                    short.append(name)
            if short:
                reasons.append(f"{npe.name}: not enough {', '.join(short)}")
                continue
            # No slice may hold more than its share of any of an NPE's
            # resources, so that no slice can take what every slice needs.
            mine = [f for f in fps if f["slice_id"] == slice_["id"]]
            over = [capname for key, capname in SUMMED + PARTITIONED if
                    sum(f[key] for f in mine) + req[key] > getattr(cap, capname) * share // 100]
            if over:
                over_share.append(f"{npe.name}: {', '.join(over)}")
                continue
            gid = lowest_free({f["gid"] for f in fps}, range(1, cap.fastpaths + 1))
            ret_port = lowest_free({f["ret_port"] for f in fps}, NPE_RETURN_PORTS)
            return {"npe": npe.name, "gid": gid, "stats_base": stats_base,
                    "queue_base": queue_base, "sram_base": sram_base, "ret_port": ret_port}
        if over_share:
            raise SppError("EQUOTA", f"slice {slice_['name']} may hold {share}% of an NPE's "
                                     "resources; this fastpath would take it past that on "
                                     + "; ".join(over_share))
        raise SppError("ENORES", "no NPE can host this fastpath: " + "; ".join(reasons))

    # ---- UDP ports ----
    def used_udp_ports(self, node: str, addr: str) -> set[int]:
        st = self.stores[node]
        used = {r["port"] for r in st.q(
            "SELECT port FROM meta_ifs WHERE node = ? AND addr = ?", node, addr)}
        used |= {r["port"] for r in st.q(
            "SELECT port FROM endpoints WHERE node = ? AND addr = ? AND proto = 17", node, addr)}
        return used

    def alloc_port(self, node: str, addr: str, proto: int, port: int, auto: range,
                   slice_: dict) -> int:
        """``port`` if free (0: the lowest free one of ``auto``). A UDP port
        the administrator holds for a slice (``held_ports``: the testbed's
        plan gives each slice's routers fixed ports) is another slice's to
        ask for by number never, and nobody's to get as ``auto``."""
        if proto == 17:
            used = self.used_udp_ports(node, addr)
            held = {r["port"]: r["slice_id"] for r in self.stores[node].q(
                "SELECT port, slice_id FROM held_ports WHERE addr = ?", addr)}
            if port == 0:
                used |= set(held)
            elif held.get(port, slice_["id"]) != slice_["id"]:
                raise SppError("EEXIST", f"port {port} on {addr} is held for another slice")
            elif port in HELD_PORTS and port not in held:
                # The testbed's plan gives future slices ports here too.
                raise SppError("EPERM", f"ports {HELD_PORTS.start}..{HELD_PORTS.stop - 1} are "
                                        f"held for slices by the administrator; port {port} is "
                                        "not this slice's")
        else:
            used = {r["port"] for r in self.stores[node].q(
                "SELECT port FROM endpoints WHERE node = ? AND addr = ? AND proto = ?",
                node, addr, proto)}
        if port == 0:
            port = lowest_free(used, auto)
            if port is None:
                raise SppError("ENORES", f"no free port left on {addr}")
            return port
        if port not in USER_PORTS:
            raise SppError("ERANGE",
                           f"port {port} outside {USER_PORTS.start}..{USER_PORTS.stop - 1}")
        if port in used:
            raise SppError("EEXIST", f"port {port} on {addr} is already in use")
        return port

    def hold_port(self, node: str, addr: str, port: int, slice_: dict):
        """Hold UDP ``port`` of ``addr`` for the slice (alloc_port gives it to
        the slice only), unless it is in use or held already."""
        st = self.stores[node]
        if (port in self.used_udp_ports(node, addr)
                or st.one("SELECT 1 FROM held_ports WHERE addr = ? AND port = ?", addr, port)):
            raise SppError("EEXIST", f"port {port} on {addr} is already in use or held")
        st.x("INSERT INTO held_ports VALUES (?, ?, ?)", slice_["id"], addr, port)

    def slice_ports(self, slice_: dict, count: int) -> list[int]:
        """Ports on the slice host for local-delivery and exception traffic."""
        st, slice_id = self.stores[slice_["node"]], slice_["id"]
        used = set()
        for f in st.q("SELECT ld_port, exc_port FROM fastpaths WHERE slice_id = ?", slice_id):
            used |= {f["ld_port"], f["exc_port"]}
        used |= {r["slice_port"] for r in st.q(
            "SELECT slice_port FROM endpoints WHERE slice_id = ?", slice_id)}
        out = []
        for p in SLICE_PORTS:
            if p not in used:
                out.append(p)
                if len(out) == count:
                    return out
        raise SppError("ENORES", "no free port left on the slice host")
