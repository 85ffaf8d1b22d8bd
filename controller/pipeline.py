"""Our two P4 programs as the controller sees them.

Where the compiled outputs are, the names of their P4 objects, the codes
that p4/include/define.p4 defines, and one builder per table turning SPP
concepts (meta-interface, filter, endpoint, ...) into table entries. The SCD
and the PTF tests both build entries here, so there is one translation.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from .limits import MAX_FILTER_ID
from .p4rt import Entry, Pipeline

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("SPP_P4_BUILD", ROOT / "p4" / "build"))


def npe_pipeline() -> Pipeline:
    return Pipeline(str(BUILD / "npe.p4info.txtpb"), str(BUILD / "npe.json"))


def lc_pipeline() -> Pipeline:
    return Pipeline(str(BUILD / "lc.p4info.txtpb"), str(BUILD / "lc.json"))


# Codes shared with define.p4 and slices/metanet.py.
METANET_LOCAL_DELIVERY = 1
METANET_EXCEPTION = 2
LOOKUP_META_IF = 0
LOOKUP_SUBSTRATE = 1

NPE_DROPS = {
    1: "not_tunnel", 2: "unknown_tunnel", 3: "no_fastpath", 4: "bad_slice_packet",
    5: "no_substrate_filter", 6: "filter", 7: "bad_stats", 8: "bad_queue", 9: "meter",
    10: "no_meta_if", 11: "no_endpoint", 12: "no_route", 13: "queue_full", 14: "local",
    15: "not_slice_port", 16: "fastpath_rate",
}
LC_DROPS = {1: "no_route", 2: "spoofed", 3: "arp", 4: "not_ipv4", 5: "local", 6: "internal",
            7: "policed", 8: "host_rate"}
NPE_DROP = {name: code for code, name in NPE_DROPS.items()}
LC_DROP = {name: code for code, name in LC_DROPS.items()}

# The LC stamps frames it hands to an NPE from a slice host's port with that
# port (source MAC), see define.p4.
LC_PORT_STAMP = 0x025350000000


def lc_port_stamp(port: int) -> int:
    return LC_PORT_STAMP | port


class Npe:
    """Names of npe.p4's P4Runtime objects."""

    TUNNEL = "NpeIngress.tunnel.tunnel"
    FASTPATH = "NpeIngress.encap.fastpath"
    FILTER = "NpeIngress.filter.filter"
    ROUTE = "NpeIngress.route.route"
    QUEUE_PARAMS = "NpeEgress.queue.queue_params"
    STATS_PRE = "NpeIngress.stats_pre"
    STATS_POST = "NpeEgress.stats.stats_post"
    QUEUE_RATE = "NpeIngress.encap.queue_rate"
    FASTPATH_RATE = "NpeIngress.encap.fastpath_rate"
    DROPS_IN = "NpeIngress.drops"
    DROPS_OUT = "NpeEgress.drops"
    # Registers: BMv2 Thrift names (P4Runtime on BMv2 does not serve them).
    SRAM = "NpeIngress.sram"
    QUEUE_LEN = "NpeEgress.queue.queue_len"


class Lc:
    """Names of lc.p4's P4Runtime objects."""

    ARP = "LcIngress.arp.arp"
    SLICE_PORT = "LcIngress.guard.slice_port"
    SRC_OWNER = "LcIngress.guard.src_owner"
    NPE_ADDR = "LcIngress.guard.npe_addr"
    META_IF = "LcIngress.demux.meta_if"
    POLICE = "LcIngress.demux.police_rate"
    HOST_BYTES = "LcIngress.guard.host_bytes"         # by slice port: the slice host's
    HOST_PACKETS = "LcIngress.guard.host_packets"     # traffic (quota host_kbps, host_pps)
    ENDPOINT_IN = "LcIngress.nat.endpoint_in"
    ENDPOINT_OUT = "LcIngress.nat.endpoint_out"
    ROUTE = "LcIngress.route.route"
    DROPS = "LcIngress.drops"


# Filter precedence: lower filter ID wins; P4Runtime: higher priority wins.
# Filter fid gets priority FILTER_PRIORITY_BASE - 1 - fid >= 1 (0 is invalid).
FILTER_PRIORITY_BASE = MAX_FILTER_ID + 2

FILTER_KEY_FIELDS = ("meta_if", "dst_addr", "src_addr", "protocol", "src_port", "dst_port")
FILTER_KEY_BITS = {"meta_if": 16, "dst_addr": 32, "src_addr": 32, "protocol": 8,
                   "src_port": 16, "dst_port": 16}
FILTER_WORD_BITS = sum(FILTER_KEY_BITS.values())    # the SPP fields; above them type, fastpath


@dataclass(frozen=True)
class FilterResult:
    """What a filter does with a match (the SPP's filter result)."""

    action: str                 # "forward", "local" or "drop"
    stats: int = 0              # local stats index
    meta_if: int = 0            # forward: output meta-interface
    nh_addr: str = "0.0.0.0"    # forward: next hop's tunnel endpoint
    nh_port: int = 0
    queue: int = 0              # forward: local queue id


@dataclass(frozen=True)
class MetaIfEncap:
    """The outer header a meta-interface sends with: from its own endpoint,
    and to its peer whatever the filter says if it is a peering one. npe.p4
    has it in each forwarding filter's entry (no meta-interface table)."""

    src_addr: str
    src_port: int
    peer_addr: str | None = None


def _route(table, prefix, plen, port, src_mac, dst_mac):
    return Entry.make(table, {"dst_addr": (prefix, plen)}, table.rsplit(".", 1)[0] + ".forward",
                      {"port": port, "src_mac": src_mac, "dst_mac": dst_mac})


def _local_addr(table, addr):
    return Entry.make(table, {"dst_addr": (addr, 32)}, table.rsplit(".", 1)[0] + ".local_addr")


# ---- NPE -----------------------------------------------------------------

@dataclass(frozen=True)
class Partition:
    """A fastpath and its share of the NPE's stats and queues: [base, base + count).

    Every tunnel entry of the fastpath carries it (npe.p4 looks up tunnel
    and partition at once), so it is fixed while the fastpath exists."""

    fastpath: int               # global fastpath id (gid)
    stats_base: int
    stats_count: int
    queue_base: int
    queue_count: int

    def params(self) -> dict:
        return {"fastpath": self.fastpath, "stats_base": self.stats_base,
                "stats_count": self.stats_count, "queue_base": self.queue_base,
                "queue_count": self.queue_count}


def tunnel_endpoint(addr, port) -> int:
    """npe.p4's tunnel key (endpoint_t, define.p4): address ++ UDP port."""
    return int(ipaddress.IPv4Address(addr)) << 16 | port


def npe_meta_if_tunnel(part: Partition, meta_if, addr, port, peer_addr=0) -> Entry:
    """Decap: tunnel packets to (addr, port) [only from peer_addr, if given]
    are on this meta-interface of the fastpath."""
    return Entry.make(Npe.TUNNEL, {"endpoint": tunnel_endpoint(addr, port)},
                      "NpeIngress.tunnel.from_meta_if",
                      {**part.params(), "meta_if": meta_if, "peer_addr": peer_addr})


def npe_slice_tunnel(part: Partition, npe_addr, port, slice_addr, lc_port) -> Entry:
    """Decap: the slice host sends its packets back to (npe_addr, port), from
    its address and through its own LC port (the LC's stamp)."""
    return Entry.make(Npe.TUNNEL, {"endpoint": tunnel_endpoint(npe_addr, port)},
                      "NpeIngress.tunnel.from_slice",
                      {**part.params(), "slice_addr": slice_addr,
                       "lc_stamp": lc_port_stamp(lc_port)})


def npe_fastpath(fastpath, local_id, slice_addr, ld_port, exc_port, npe_addr, ret_port) -> Entry:
    """The fastpath's own entry: its number in the slice, and where local
    delivery (ld_port) and exceptions (exc_port) go, from (npe_addr, ret_port)."""
    return Entry.make(Npe.FASTPATH, {"fastpath": fastpath}, "NpeIngress.encap.to_slice",
                      {"local_id": local_id, "slice_addr": slice_addr, "ld_port": ld_port,
                       "exc_port": exc_port, "npe_addr": npe_addr, "ret_port": ret_port})


def filter_word(fields: dict) -> int:
    """FILTER_KEY_FIELDS packed into one word, first field most significant:
    the low FILTER_WORD_BITS of npe.p4's one ternary key field (filter_key_t,
    define.p4; npe_filter adds fastpath and type). Values are ints or, for
    addresses, dotted quads."""
    word = 0
    for f in FILTER_KEY_FIELDS:
        v = fields.get(f, 0)
        v = int(ipaddress.IPv4Address(v)) if isinstance(v, str) else int(v)
        if not 0 <= v < 1 << FILTER_KEY_BITS[f]:
            raise ValueError(f"filter {f} {v} does not fit {FILTER_KEY_BITS[f]} bits")
        word = word << FILTER_KEY_BITS[f] | v
    return word


def npe_filter(fastpath, fid, lookup_type, key: dict, mask: dict, result: FilterResult,
               encap: MetaIfEncap | None = None) -> Entry:
    """A general-match filter. ``key``/``mask`` map FILTER_KEY_FIELDS to values;
    fields absent from ``mask`` are don't-care. A forwarding result needs
    ``encap``, its meta-interface's (result.meta_if) outer header."""
    if not 0 <= fid <= MAX_FILTER_ID:
        raise ValueError(f"filter id {fid} out of range 0..{MAX_FILTER_ID}")
    exact = ((fastpath << 1 | lookup_type) << FILTER_WORD_BITS,
             0x1FFFF << FILTER_WORD_BITS)                # fastpath and type: exact
    match = {"key": (exact[0] | filter_word(key), exact[1] | filter_word(mask))}
    if result.action == "forward":
        if encap is None:
            raise ValueError(f"forwarding filter {fid} without its meta-interface's encap")
        action, params = "NpeIngress.filter.forward", {
            "src_addr": encap.src_addr, "src_port": encap.src_port,
            "nh_addr": encap.peer_addr or result.nh_addr, "nh_port": result.nh_port,
            "queue": result.queue, "stats": result.stats}
    elif result.action == "local":
        action, params = "NpeIngress.filter.local", {"stats": result.stats}
    elif result.action == "drop":
        action, params = "NpeIngress.filter.discard", {"stats": result.stats}
    else:
        raise ValueError(f"unknown filter action {result.action!r}")
    return Entry.make(Npe.FILTER, match, action, params, FILTER_PRIORITY_BASE - 1 - fid)


def npe_queue_params(queue_global, threshold) -> Entry:
    return Entry.make(Npe.QUEUE_PARAMS, {"queue": queue_global},
                      "NpeEgress.queue.set_threshold", {"threshold": threshold})


def npe_route(prefix, plen, port, src_mac, dst_mac) -> Entry:
    return _route(Npe.ROUTE, prefix, plen, port, src_mac, dst_mac)


def npe_local_addr(addr) -> Entry:
    return _local_addr(Npe.ROUTE, addr)


# ---- LC ------------------------------------------------------------------

def lc_arp(addr, mac) -> Entry:
    return Entry.make(Lc.ARP, {"target_ip": addr}, "LcIngress.arp.reply", {"mac": mac})


def lc_slice_port(port, addr) -> Entry:
    return Entry.make(Lc.SLICE_PORT, {"port": port}, "LcIngress.guard.slice_host",
                      {"addr": addr})


def lc_src_owner(addr, port) -> Entry:
    """An internal source address (a slice host's, an NPE's) and the one LC
    port it may arrive on: from any other it is spoofed."""
    return Entry.make(Lc.SRC_OWNER, {"src_addr": addr}, "LcIngress.guard.owned_by",
                      {"port": port})


def lc_npe_addr(addr) -> Entry:
    """An NPE's internal address: reachable only from slice hosts' ports."""
    return Entry.make(Lc.NPE_ADDR, {"dst_addr": addr}, "LcIngress.guard.npe_internal")


def lc_meta_if(addr, udp_port, npe_port, src_mac, npe_mac, police) -> Entry:
    """Demux: tunnel packets for (addr, udp_port) go to the NPE on npe_port,
    through packet meter ``police`` (their fastpath's, Lc.POLICE)."""
    return Entry.make(Lc.META_IF, {"dst_addr": addr, "dst_port": udp_port},
                      "LcIngress.demux.to_npe",
                      {"port": npe_port, "src_mac": src_mac, "dst_mac": npe_mac,
                       "police": police})


def lc_endpoint(pub_addr, protocol, pub_port, slice_addr, slice_port) -> tuple[Entry, Entry]:
    """NAT entries (in, out) of an allocated endpoint."""
    return (Entry.make(Lc.ENDPOINT_IN, {"dst_addr": pub_addr, "protocol": protocol,
                                        "dst_port": pub_port},
                       "LcIngress.nat.rewrite", {"addr": slice_addr, "port": slice_port}),
            Entry.make(Lc.ENDPOINT_OUT, {"src_addr": slice_addr, "protocol": protocol,
                                         "src_port": slice_port},
                       "LcIngress.nat.rewrite", {"addr": pub_addr, "port": pub_port}))


def lc_route(prefix, plen, port, src_mac, dst_mac) -> Entry:
    return _route(Lc.ROUTE, prefix, plen, port, src_mac, dst_mac)


def lc_local_addr(addr) -> Entry:
    return _local_addr(Lc.ROUTE, addr)
