"""Topology files and the address plan derived from them.

A topology file (JSON, in mininet_topo/topologies/) names SPP nodes (with
"npes": how many NPEs each has, default 1), the peering links between them,
end hosts behind them, and slices. A slice runs on the nodes it names
("nodes", default every node; one slice host per node) and builds an IPv4
meta-router there; every end host behind one of those nodes gets one tunnel
for it. From that, ``plan()`` derives everything else, deterministically:
substrate addresses, LC/NPE ports and MACs, gRPC/Thrift ports,
meta-interface UDP ports, overlay addresses, and each meta-router's
configuration (its meta-interfaces and its routes along shortest paths
through the slice's nodes). Nothing here needs Mininet or root.

Every slice has a slot S (0 <= S < MAX_SLICES; its position in the file
unless it says "slot"), and everything of the slice is derived from S
alone, so a slice added while the testbed runs (SppNet.add_slice) or
removed changes no other slice's addresses or ports.

Address plan (substrate), node N, NPE J (1-based), slice slot S:
    172.16.H.0/24   access link of end host H   (LC .1, host .2)
    172.31.L.0/24   peering link L              (node a .1, node b .2)
    172.20.N.0/24   slice hosts of node N       (LC .1, slice S: .10+S)
    172.21.N.1+J    NPE J of node N (LC port J)
    172.30.0.0/16   management: controller .0.1, slice host N/S: .N.(10+S)
UDP ports: meta-interface of slice S on an access link 20000+S, on a
peering link 21000+S (one of each per slice and interface address); end
hosts' tunnel source port 30000+S.
Overlay of a slice: a /16, by default 10.(S+1).0.0/16 (so up to 200 slices
in 10.1-10.200, none overlapping); end host H is P.H.1 on P.H.0/24, the
meta-router of node N answers as P.255.N.
"""

from __future__ import annotations

import ipaddress
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from controller.limits import SLICE_IF_SHARE

from .capacity import npe_budget

TOPOLOGIES = Path(__file__).resolve().parent / "topologies"

CONTROLLER_ADDR = "172.30.0.1"
CONTROLLER_PORT = 8080
MGMT_PLEN = 16
# The controller's own network namespace reaches the switches' gRPC and Thrift
# servers over a link to the root namespace: switch side, controller side.
SWITCH_CTL_ADDR, CONTROLLER_CTL_ADDR, CTL_PLEN = "172.29.0.1", "172.29.0.2", 30
# Below Linux's ephemeral range (32768-60999), where an outgoing connection
# could hold a switch's port before the switch binds it.
GRPC_BASE, THRIFT_BASE = 11000, 12000   # + 10 * node index (+J for NPE J)
LC_NPE_PORT = 1                          # LC port towards NPE 1 (NPE J: port J); an NPE
                                         # uses its port 1 towards the LC
MAX_NPES = 9                             # per node (gRPC/Thrift ports: 10 per node)
MAX_SLICES = 200                         # slots 0..199: overlays 10.1-10.200, .10+S < 255
HOST_TUNNEL_PORT = 30000                 # + slot: end hosts' tunnel source port
META_IF_HOST_PORT = 20000                # + slot: meta-interface on an access link
META_IF_PEER_PORT = 21000                # + slot: meta-interface on a peering link


class TopologyError(ValueError):
    """The topology file is not usable; the message says why."""


@dataclass(kw_only=True)
class LinkParams:
    """What a Mininet link is given: bandwidth always, delay and loss with netem."""

    bw_mbps: float = 100
    delay_ms: float = 0
    loss_pct: float = 0


@dataclass
class LinkSpec(LinkParams):
    """A peering link between two nodes."""

    a: str
    b: str


@dataclass
class HostSpec(LinkParams):
    """An end host and the access link to its node."""

    name: str
    node: str


@dataclass
class SliceSpec:
    name: str
    overlay: str = ""                # a /16; default 10.(slot+1).0.0/16
    mi_bw_kbps: int = 20_000         # per meta-interface
    nodes: list[str] | None = None   # the nodes it runs on; default every node
    slot: int = -1                   # default: its position in the file


def default_overlay(slot: int) -> str:
    return f"10.{slot + 1}.0.0/16"


@dataclass
class TopologySpec:
    name: str
    nodes: list[str]
    links: list[LinkSpec]
    hosts: list[HostSpec]
    slices: list[SliceSpec]
    description: str = ""
    npes: dict[str, int] = field(default_factory=dict)   # node -> NPE count (default 1)

    @classmethod
    def load(cls, path) -> TopologySpec:
        path = Path(path)
        if not path.exists() and (TOPOLOGIES / f"{path}.json").exists():
            path = TOPOLOGIES / f"{path}.json"
        try:
            d = json.loads(path.read_text())
            nodes = [n if isinstance(n, str) else n["name"] for n in d["nodes"]]
            npes = {n["name"]: int(n.get("npes", 1)) for n in d["nodes"] if isinstance(n, dict)}
            default_npes = int(d.get("npes", 1))
            spec = cls(name=d["name"], nodes=nodes,
                       npes={n: npes.get(n, default_npes) for n in nodes},
                       links=[LinkSpec(**x) for x in d.get("links", [])],
                       hosts=[HostSpec(**x) for x in d.get("hosts", [])],
                       slices=[SliceSpec(**x) for x in d.get("slices", [])],
                       description=d.get("description", ""))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TopologyError(f"{path}: {e}") from None
        spec.validate()
        return spec

    def npes_of(self, node: str) -> int:
        return self.npes.get(node, 1)

    def free_slot(self) -> int:
        used = {s.slot for s in self.slices}
        slot = next((k for k in range(MAX_SLICES) if k not in used), None)
        if slot is None:
            raise TopologyError(f"at most {MAX_SLICES} slices")
        return slot

    def validate(self):
        names = set(self.nodes)
        if len(names) != len(self.nodes) or not self.nodes:
            raise TopologyError("node names must be unique and at least one")
        for n in self.nodes + [h.name for h in self.hosts]:
            if not n.isalnum() or len(n) > 5:
                raise TopologyError(f"name {n!r}: up to 5 letters or digits (Mininet "
                                    "interface names are short)")
        for link in self.links:
            if link.a not in names or link.b not in names or link.a == link.b:
                raise TopologyError(f"link {link.a}-{link.b}: unknown or identical nodes")
        for h in self.hosts:
            if h.node not in names:
                raise TopologyError(f"host {h.name}: unknown node {h.node}")
        for n, count in self.npes.items():
            if n not in names or not 1 <= count <= MAX_NPES:
                raise TopologyError(f"node {n}: 1 to {MAX_NPES} NPEs")
        if len(self.nodes) > 99 or len(self.hosts) > 200 or len(self.slices) > MAX_SLICES:
            raise TopologyError(f"at most 99 nodes, 200 hosts and {MAX_SLICES} slices")
        used = {s.slot for s in self.slices if s.slot >= 0}
        free = (k for k in range(MAX_SLICES) if k not in used)
        for s in self.slices:
            if s.slot < 0:
                s.slot = next(free)
            if not s.overlay:
                s.overlay = default_overlay(s.slot)
        seen: dict[str, SliceSpec] = {}
        slots: set[int] = set()
        for s in self.slices:
            try:
                net = ipaddress.IPv4Network(s.overlay)
            except ValueError as e:
                raise TopologyError(f"slice {s.name}: {e}") from None
            if net.prefixlen != 16 or not s.name.isalnum() or len(s.name) > 4:
                raise TopologyError(f"slice {s.name}: a name of up to 4 letters or digits "
                                    "and a /16 overlay prefix")
            if net.overlaps(ipaddress.IPv4Network("172.16.0.0/12")):
                raise TopologyError(f"slice {s.name}: overlay {net} overlaps the substrate "
                                    "(172.16.0.0/12)")
            if s.name in seen or not 0 <= s.slot < MAX_SLICES or s.slot in slots:
                raise TopologyError(f"slice {s.name}: names and slots (0 to "
                                    f"{MAX_SLICES - 1}) must be unique")
            for other in seen.values():
                if net.overlaps(ipaddress.IPv4Network(other.overlay)):
                    raise TopologyError(f"slices {other.name} and {s.name}: overlays overlap")
            if s.nodes is not None and (not s.nodes or not set(s.nodes) <= names):
                raise TopologyError(f"slice {s.name}: nodes {s.nodes}: unknown or none")
            # Its router reserves mi_bw_kbps on each interface of its nodes;
            # the controller grants a slice SLICE_IF_SHARE % of an interface.
            on = set(s.nodes or names)
            links = ([(f"{lk.a}-{lk.b}", lk.bw_mbps) for lk in self.links
                      if {lk.a, lk.b} & on]
                     + [(f"{h.node}-{h.name}", h.bw_mbps) for h in self.hosts if h.node in on])
            for link, bw in links:
                if s.mi_bw_kbps > bw * 1000 * SLICE_IF_SHARE // 100:
                    raise TopologyError(f"slice {s.name}: mi_bw_kbps {s.mi_bw_kbps} is more "
                                        f"than the {SLICE_IF_SHARE}% of link {link} "
                                        f"({bw} Mb/s) a slice may reserve")
            seen[s.name] = s
            slots.add(s.slot)


@dataclass
class Interface:
    """A physical interface of a node (an LC port with an address)."""

    ifn: int
    lc_port: int
    addr: str
    mac: str
    bw_kbps: int
    peering: bool
    peer: str = ""               # peering: the other node's address
    peer_mac: str = ""           # MAC of the neighbour on this link (host or other LC)
    neighbor: str = ""           # host name or node name
    link: int = 0                # peering link index


@dataclass
class NpePlan:
    name: str
    grpc: int
    thrift: int
    addr: str
    mac: str                     # the NPE's MAC towards the LC
    lc_port: int                 # LC port towards it (the NPE's own port is LC_NPE_PORT)
    lc_mac: str                  # the LC's MAC on that link


@dataclass
class NodePlan:
    name: str
    index: int
    lc: str
    lc_grpc: int
    lc_thrift: int
    npes: list[NpePlan]
    gpe_gateway: str
    gpe_mac: str
    interfaces: list[Interface] = field(default_factory=list)
    slice_port_base: int = 0     # LC port of the slice host of slot S: base + S

    # NPE 1, as before a node could have several
    @property
    def npe(self) -> str:
        return self.npes[0].name

    @property
    def npe_grpc(self) -> int:
        return self.npes[0].grpc

    @property
    def npe_thrift(self) -> int:
        return self.npes[0].thrift

    @property
    def npe_addr(self) -> str:
        return self.npes[0].addr


@dataclass
class HostPlan:
    name: str
    node: str
    index: int
    addr: str
    gateway: str
    mac: str
    lc_port: int
    tunnels: list[dict] = field(default_factory=list)


@dataclass
class SliceHostPlan:
    name: str                    # Mininet host name
    slice: str
    node: str
    data_addr: str
    mgmt_addr: str
    mac: str
    lc_port: int
    router: dict                 # the meta-router's configuration (router.json)


@dataclass
class Plan:
    spec: TopologySpec
    nodes: dict[str, NodePlan]
    hosts: dict[str, HostPlan]
    slice_hosts: list[SliceHostPlan]

    def slice_hosts_of(self, slice_name: str) -> list[SliceHostPlan]:
        return [sh for sh in self.slice_hosts if sh.slice == slice_name]


def mac(*parts: int) -> str:
    return "02:" + ":".join(f"{p & 0xFF:02x}" for p in parts)


def shortest_next_hops(nodes: list[str], links: list[LinkSpec]) -> dict[str, dict[str, str]]:
    """next[n][m]: the neighbour of n on a shortest path from n to m (BFS,
    ties broken by the order of links in the file)."""
    adj = {n: [] for n in nodes}
    for link in links:
        adj[link.a].append(link.b)
        adj[link.b].append(link.a)
    nxt = {}
    for src in nodes:
        first = {src: None}
        q = deque([src])
        while q:
            u = q.popleft()
            for v in adj[u]:
                if v not in first:
                    first[v] = v if u == src else first[u]
                    q.append(v)
        nxt[src] = {m: h for m, h in first.items() if h is not None}
    return nxt


def plan(spec: TopologySpec) -> Plan:
    nodes: dict[str, NodePlan] = {}
    for i, name in enumerate(spec.nodes, start=1):
        npes = [NpePlan(name=f"{name}npe" + (str(j) if j > 1 else ""),
                        grpc=GRPC_BASE + 10 * i + j, thrift=THRIFT_BASE + 10 * i + j,
                        addr=f"172.21.{i}.{1 + j}", mac=mac(0, i, 1, j - 1, 2),
                        lc_port=LC_NPE_PORT + j - 1, lc_mac=mac(0, i, 1, j - 1, 1))
                for j in range(1, spec.npes_of(name) + 1)]
        nodes[name] = NodePlan(
            name=name, index=i, lc=f"{name}lc",
            lc_grpc=GRPC_BASE + 10 * i, lc_thrift=THRIFT_BASE + 10 * i, npes=npes,
            gpe_gateway=f"172.20.{i}.1", gpe_mac=mac(0, i, 2, 0, 1))
    next_port = {n: LC_NPE_PORT + len(nodes[n].npes) for n in nodes}

    def port(node):
        p = next_port[node]
        next_port[node] += 1
        return p

    hosts: dict[str, HostPlan] = {}
    for j, h in enumerate(spec.hosts, start=1):
        node = nodes[h.node]
        p = port(h.node)
        node.interfaces.append(Interface(
            ifn=len(node.interfaces) + 1, lc_port=p, addr=f"172.16.{j}.1",
            mac=mac(0, node.index, 3, p, 1), bw_kbps=int(h.bw_mbps * 1000), peering=False,
            peer_mac=mac(0, 0, 0x10, 0, j), neighbor=h.name))
        hosts[h.name] = HostPlan(h.name, h.node, j, f"172.16.{j}.2", f"172.16.{j}.1",
                                 mac(0, 0, 0x10, 0, j), p)
    for li, link in enumerate(spec.links, start=1):
        pa, pb = port(link.a), port(link.b)
        na, nb = nodes[link.a], nodes[link.b]
        ma, mb = mac(0, na.index, 3, pa, 1), mac(0, nb.index, 3, pb, 1)
        bw = int(link.bw_mbps * 1000)
        na.interfaces.append(Interface(len(na.interfaces) + 1, pa, f"172.31.{li}.1", ma, bw,
                                       True, f"172.31.{li}.2", mb, link.b, li))
        nb.interfaces.append(Interface(len(nb.interfaces) + 1, pb, f"172.31.{li}.2", mb, bw,
                                       True, f"172.31.{li}.1", ma, link.a, li))
    for n in nodes.values():
        n.slice_port_base = next_port[n.name]

    slice_hosts = []
    for sl in sorted(spec.slices, key=lambda x: x.slot):
        slice_hosts += plan_slice(spec, nodes, hosts, sl)
    return Plan(spec, nodes, hosts, slice_hosts)


def plan_slice(spec: TopologySpec, nodes: dict[str, NodePlan], hosts: dict[str, HostPlan],
               sl: SliceSpec) -> list[SliceHostPlan]:
    """A slice's hosts and meta-routers, from its slot alone; appends the end
    hosts' tunnels for it."""
    k = sl.slot
    on = [n for n in spec.nodes if sl.nodes is None or n in sl.nodes]
    # Shortest paths through the slice's own nodes: its meta-routers forward only
    # to meta-routers of the same slice.
    nxt = shortest_next_hops(on, [x for x in spec.links if x.a in on and x.b in on])
    net = ipaddress.IPv4Network(sl.overlay)
    base = int(net.network_address)

    def ov(third, fourth):
        return str(ipaddress.IPv4Address(base + (third << 8) + fourth))

    for h in hosts.values():
        if h.node not in on:
            continue
        node = nodes[h.node]
        iface = next(i for i in node.interfaces if i.neighbor == h.name)
        h.tunnels.append({
            "slice": sl.name, "dev": f"ovl{k}", "overlay_addr": ov(h.index, 1),
            "overlay_prefix": sl.overlay, "local_addr": h.addr,
            "local_port": HOST_TUNNEL_PORT + k, "remote_addr": iface.addr,
            "remote_port": META_IF_HOST_PORT + k})
    out = []
    for node in (nodes[n] for n in on):
        meta_ifs, mi_of = [], {}
        for iface in node.interfaces:
            if iface.peering:
                if iface.neighbor not in on:
                    continue
                mi_name = f"node:{iface.neighbor}"
                mi_port = META_IF_PEER_PORT + k
                meta_ifs.append({"name": mi_name, "ifn": iface.ifn, "port": mi_port,
                                 "bw": sl.mi_bw_kbps, "nh_addr": iface.peer,
                                 "nh_port": mi_port})
            else:
                h = hosts[iface.neighbor]
                mi_name = f"host:{h.name}"
                meta_ifs.append({"name": mi_name, "ifn": iface.ifn,
                                 "port": META_IF_HOST_PORT + k,
                                 "bw": sl.mi_bw_kbps, "nh_addr": h.addr,
                                 "nh_port": HOST_TUNNEL_PORT + k})
            mi_of[iface.neighbor] = mi_name
        routes = []
        for h in hosts.values():
            if h.node not in on:
                continue
            via = (mi_of[h.name] if h.node == node.name
                   else mi_of.get(nxt[node.name].get(h.node, ""), None))
            if via:
                routes.append({"prefix": f"{ov(h.index, 0)}/24", "via": via})
        for other in (nodes[n] for n in on):
            via = mi_of.get(nxt[node.name].get(other.name, ""))
            if other is not node and via:
                routes.append({"prefix": f"{ov(255, other.index)}/32", "via": via})
        router = {"slice": sl.name, "node": node.name, "router_addr": ov(255, node.index),
                  "overlay": sl.overlay, "meta_ifs": meta_ifs, "routes": routes,
                  "fastpath": {"bw": sl.mi_bw_kbps * max(1, len(meta_ifs)),
                               "filters": 4 * (len(routes) + len(meta_ifs)) + 8,
                               "queues": max(1, len(meta_ifs)), "buffers": 64,
                               "stats": len(routes) + len(meta_ifs) + 2,
                               "sram": 64, "dram": 0}}
        out.append(SliceHostPlan(
            name=f"{node.name}{sl.name}", slice=sl.name, node=node.name,
            data_addr=f"172.20.{node.index}.{10 + k}",
            mgmt_addr=f"172.30.{node.index}.{10 + k}", mac=mac(0, node.index, 0x20, 0, k),
            lc_port=node.slice_port_base + k, router=router))
    return out


def add_slice(p: Plan, sl: SliceSpec) -> list[SliceHostPlan]:
    """Add a slice to a plan (and its spec) without changing anything of the
    others: the slot is the lowest free one unless the slice names one."""
    if sl.slot < 0:
        sl.slot = p.spec.free_slot()
    if not sl.overlay:
        sl.overlay = default_overlay(sl.slot)
    p.spec.slices.append(sl)
    try:
        p.spec.validate()
    except TopologyError:
        p.spec.slices.remove(sl)
        raise
    new = plan_slice(p.spec, p.nodes, p.hosts, sl)
    p.slice_hosts += new
    return new


def remove_slice(p: Plan, name: str) -> list[SliceHostPlan]:
    """Remove a slice from a plan: its slice hosts and the end hosts' tunnels."""
    gone = p.slice_hosts_of(name)
    p.spec.slices = [s for s in p.spec.slices if s.name != name]
    p.slice_hosts = [sh for sh in p.slice_hosts if sh.slice != name]
    for h in p.hosts.values():
        h.tunnels = [t for t in h.tunnels if t["slice"] != name]
    return gone


def testbed_dict(p: Plan) -> dict:
    """The controller's testbed description (controller/testbed.py)."""
    out = {"name": p.spec.name, "nodes": []}
    for node in p.nodes.values():
        routes = []
        for i in node.interfaces:
            net = ipaddress.IPv4Network(f"{i.addr}/24", strict=False)
            routes.append({"prefix": str(net), "lc_port": i.lc_port, "dst_mac": i.peer_mac})
        out["nodes"].append({
            "name": node.name,
            "lc": {"name": node.lc, "grpc_addr": f"{SWITCH_CTL_ADDR}:{node.lc_grpc}",
                   "thrift_port": node.lc_thrift},
            "npes": [{"name": n.name, "grpc_addr": f"{SWITCH_CTL_ADDR}:{n.grpc}",
                      "thrift_port": n.thrift, "addr": n.addr, "port": LC_NPE_PORT,
                      "mac": n.mac, "lc_port": n.lc_port, "lc_mac": n.lc_mac,
                      "pps": npe_budget()}
                     for n in node.npes],
            "interfaces": [{"ifn": i.ifn, "addr": i.addr, "lc_port": i.lc_port, "mac": i.mac,
                            "bandwidth_kbps": i.bw_kbps, "peering": i.peering, "peer": i.peer}
                           for i in node.interfaces],
            "routes": routes,
            "gpe_gateway": node.gpe_gateway, "gpe_mac": node.gpe_mac})
    return out
