"""Translation: the controller's records (slices, fastpaths, meta-interfaces,
filters, queues, endpoints) as the table entries, meter cells and register
values of npe.p4 and lc.p4.

The intended state of a switch is the union of these over the node's
database (``node_intent``); the RMP writes the difference a call makes, and
the SCD's ``reconcile`` makes a switch hold exactly the intent. The entry
builders per table are in pipeline.py, next to the P4 names they use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import pipeline as pl
from .p4rt import Entry, MeterCell
from .srm import SliceQuota
from .store import loads
from .testbed import Node, Npe

ETHERNET_MTU_FRAME = 1514
LC_POLICE_STRIDE = 512          # LC packet meters per NPE (define.p4: LC_POLICE_SIZE)


def queue_meter_rate(bw_kbps: int) -> tuple[int, int]:
    """Meter (bytes/s, burst bytes) of a bandwidth; 0 kb/s: closed (every packet red)."""
    if bw_kbps <= 0:
        return 0, 1
    rate = bw_kbps * 1000 // 8
    # 20 ms of traffic, and never less than two full frames.
    return rate, max(2 * ETHERNET_MTU_FRAME, rate // 50)


def host_meter_cells(slice_: dict) -> list[MeterCell]:
    """The LC meters of the slice host's port (lc_guard.p4), from its quota:
    bytes/s and packets/s, each with 100 ms of burst (a slow path answers in
    bursts; the rate, not the burst, is what the quota bounds). 0: closed."""
    q = SliceQuota.of(slice_)
    port = slice_["lc_port"]
    bps = q.host_kbps * 1000 // 8
    pps = q.host_pps
    return [MeterCell(pl.Lc.HOST_BYTES, port, bps, max(2 * ETHERNET_MTU_FRAME, bps // 10)
                      if bps else 1),
            MeterCell(pl.Lc.HOST_PACKETS, port, pps, max(8, pps // 10) if pps else 1)]


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


def partition(fp: dict) -> pl.Partition:
    """The fastpath's partition, as its tunnel entries carry it."""
    return pl.Partition(fp["gid"], fp["stats_base"], fp["n_stats"], fp["queue_base"],
                        fp["n_queues"])


def fastpath_entries(fp: dict, slice_: dict, npe: Npe) -> list[Entry]:
    """The fastpath's own entry (its slice endpoints) and the slice's return tunnel."""
    gid = fp["gid"]
    return [
        pl.npe_fastpath(gid, fp["local_id"], slice_["data_addr"], fp["ld_port"], fp["exc_port"],
                        npe.addr, fp["ret_port"]),
        pl.npe_slice_tunnel(partition(fp), npe.addr, fp["ret_port"], slice_["data_addr"],
                            slice_["lc_port"]),
    ]


def meta_if_entries(fp: dict, mi: dict, node: Node, npe: Npe) -> tuple[list[Entry], list[Entry]]:
    """(NPE entries, LC entries) of a meta-interface."""
    iface = node.interface(mi["ifn"])
    peer = iface.peer if iface.peering else 0
    npe_entries = [pl.npe_meta_if_tunnel(partition(fp), mi["mi"], mi["addr"], mi["port"], peer)]
    lc_entries = [pl.lc_meta_if(mi["addr"], mi["port"], npe.lc_port, npe.lc_mac, npe.mac,
                                lc_police_index(node, npe, fp["gid"]))]
    return npe_entries, lc_entries


def filter_result(result: dict) -> pl.FilterResult:
    return pl.FilterResult(**result)


def meta_if_encap(mi: dict, node: Node) -> pl.MetaIfEncap:
    """The outer header meta-interface ``mi`` sends with. It never changes
    while the meta-interface exists, so the filters forwarding to it carry it."""
    iface = node.interface(mi["ifn"])
    return pl.MetaIfEncap(mi["addr"], mi["port"], iface.peer if iface.peering else None)


def filter_entry(fp: dict, fid: int, data: dict, encap: pl.MetaIfEncap | None = None) -> Entry:
    """``encap``: for a forwarding result, its meta-interface's (meta_if_encap)."""
    return pl.npe_filter(fp["gid"], fid, data["type"], data["key"], data["mask"],
                         filter_result(data["result"]), encap)


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
            pl.lc_src_owner(slice_["data_addr"], slice_["lc_port"])]


def npe_base_entries(node: Node, npe: Npe) -> list[Entry]:
    return [pl.npe_route("0.0.0.0", 0, npe.port, npe.mac, npe.lc_mac),
            pl.npe_local_addr(npe.addr)]


def lc_base_entries(node: Node) -> list[Entry]:
    out = []
    for i in node.interfaces:
        out += [pl.lc_arp(i.addr, i.mac), pl.lc_local_addr(i.addr)]
        if i.peering and i.peer:
            # A peering meta-interface takes only its peer's packets (the NPE
            # checks the outer source): that source only from the peering
            # link, or an end host would pass for the peer node.
            out.append(pl.lc_src_owner(i.peer, i.lc_port))
    if node.gpe_gateway:
        out += [pl.lc_arp(node.gpe_gateway, node.gpe_mac), pl.lc_local_addr(node.gpe_gateway)]
    for r in node.routes:
        net = r.network
        mac = next(i.mac for i in node.interfaces if i.lc_port == r.lc_port)
        out.append(pl.lc_route(str(net.network_address), net.prefixlen, r.lc_port, mac, r.dst_mac))
    for npe in node.npes:
        out.append(pl.lc_route(npe.addr, 32, npe.lc_port, npe.lc_mac, npe.mac))
        out.append(pl.lc_npe_addr(npe.addr))       # only slice hosts' ports reach it
        out.append(pl.lc_src_owner(npe.addr, npe.lc_port))   # its exceptions: only from it
    return out


@dataclass
class Intent:
    """Everything one switch should hold."""

    entries: list[Entry] = field(default_factory=list)
    meters: dict[int, tuple[int, int] | None] = field(default_factory=dict)   # queue index
    fastpath_meters: dict[int, tuple[int, int]] = field(default_factory=dict)  # fastpath gid
    police_meters: dict[int, tuple[int, int] | None] = field(default_factory=dict)  # LC
    registers: dict[int, int] = field(default_factory=dict)                   # SRAM cell
    host_meters: list[MeterCell] = field(default_factory=list)                # LC slice ports


def node_intent(store, node: Node) -> dict[str, Intent]:
    """The intended state of every switch of a node, from the database."""
    intents = {node.lc.name: Intent(lc_base_entries(node))}
    lc = intents[node.lc.name]
    for npe in node.npes:
        intents[npe.name] = Intent(npe_base_entries(node, npe))
    slices = {s["id"]: s for s in store.q("SELECT * FROM slices WHERE node = ?", node.name)}
    for s in slices.values():
        lc.entries += slice_entries(s, node)
        lc.host_meters += host_meter_cells(s)
    for ep in store.q("SELECT * FROM endpoints WHERE node = ?", node.name):
        lc.entries += endpoint_entries(ep, slices[ep["slice_id"]])
    for fp in store.q("SELECT * FROM fastpaths WHERE node = ?", node.name):
        npe = node.npe(fp["npe"])
        it = intents[npe.name]
        it.entries += fastpath_entries(fp, slices[fp["slice_id"]], npe)
        encaps = {}
        for mi in store.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?", fp["id"]):
            n_e, l_e = meta_if_entries(fp, mi, node, npe)
            it.entries += n_e
            lc.entries += l_e
            encaps[mi["mi"]] = meta_if_encap(mi, node)
        for f in store.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
            data = loads(f["data"])
            it.entries.append(filter_entry(fp, f["fid"], data,
                                           encaps.get(data["result"].get("meta_if"))))
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
