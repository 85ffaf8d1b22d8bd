"""Topology files and the address plan derived from them.

A topology file (JSON, in mininet_topo/topologies/) names SPP nodes, the
peering links between them, end hosts behind them, and slices. Every slice
runs on every node (one slice host per node) and builds an IPv4 meta-router
there; every end host gets one tunnel per slice. From that, ``plan()``
derives everything else, deterministically: substrate addresses, LC/NPE
ports and MACs, gRPC/Thrift ports, meta-interface UDP ports, overlay
addresses, and each meta-router's configuration (its meta-interfaces and
its routes along shortest paths). Nothing here needs Mininet or root.

Address plan (substrate):
    172.16.H.0/24   access link of end host H   (LC .1, host .2)
    172.31.L.0/24   peering link L              (node a .1, node b .2)
    172.20.N.0/24   slice hosts of node N       (LC .1, slice S: .10+S)
    172.21.N.2      the NPE of node N
    172.30.0.0/16   management: controller .0.1, slice host N/S: .N.(10+S)
Overlay of a slice with prefix P (a /16): end host H is P.H.1 on P.H.0/24,
the meta-router of node N answers as P.255.N.
"""

from __future__ import annotations

import ipaddress
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

TOPOLOGIES = Path(__file__).resolve().parent / "topologies"

CONTROLLER_ADDR = "172.30.0.1"
CONTROLLER_PORT = 8080
MGMT_PLEN = 16
# The controller's own network namespace reaches the switches' gRPC and Thrift
# servers over a link to the root namespace: switch side, controller side.
SWITCH_CTL_ADDR, CONTROLLER_CTL_ADDR, CTL_PLEN = "172.29.0.1", "172.29.0.2", 30
# Below Linux's ephemeral range (32768-60999), where an outgoing connection
# could hold a switch's port before the switch binds it.
GRPC_BASE, THRIFT_BASE = 11000, 12000   # + 10 * node index (+1 for the NPE)
LC_NPE_PORT = 1                          # LC port towards its NPE (the NPE uses port 1 too)
HOST_TUNNEL_PORT = 30000                 # + slice index: end hosts' tunnel source port
META_IF_HOST_PORT = 20000                # + 100 * slice + host index
META_IF_PEER_PORT = 21000                # + 100 * slice + link index


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
    overlay: str                     # a /16
    mi_bw_kbps: int = 20_000         # per meta-interface


@dataclass
class TopologySpec:
    name: str
    nodes: list[str]
    links: list[LinkSpec]
    hosts: list[HostSpec]
    slices: list[SliceSpec]
    description: str = ""

    @classmethod
    def load(cls, path) -> TopologySpec:
        path = Path(path)
        if not path.exists() and (TOPOLOGIES / f"{path}.json").exists():
            path = TOPOLOGIES / f"{path}.json"
        try:
            d = json.loads(path.read_text())
            spec = cls(name=d["name"], nodes=list(d["nodes"]),
                       links=[LinkSpec(**x) for x in d.get("links", [])],
                       hosts=[HostSpec(**x) for x in d.get("hosts", [])],
                       slices=[SliceSpec(**x) for x in d.get("slices", [])],
                       description=d.get("description", ""))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TopologyError(f"{path}: {e}") from None
        spec.validate()
        return spec

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
        for s in self.slices:
            net = ipaddress.IPv4Network(s.overlay)
            if net.prefixlen != 16 or not s.name.isalnum() or len(s.name) > 4:
                raise TopologyError(f"slice {s.name}: a name of up to 4 letters or digits "
                                    "and a /16 overlay prefix")
        if len(self.nodes) > 99 or len(self.hosts) > 200 or len(self.slices) > 9:
            raise TopologyError("at most 99 nodes, 200 hosts and 9 slices")


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
class NodePlan:
    name: str
    index: int
    lc: str
    npe: str
    lc_grpc: int
    lc_thrift: int
    npe_grpc: int
    npe_thrift: int
    npe_addr: str
    npe_mac: str
    lc_npe_mac: str
    gpe_gateway: str
    gpe_mac: str
    interfaces: list[Interface] = field(default_factory=list)


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
        nodes[name] = NodePlan(
            name=name, index=i, lc=f"{name}lc", npe=f"{name}npe",
            lc_grpc=GRPC_BASE + 10 * i, lc_thrift=THRIFT_BASE + 10 * i,
            npe_grpc=GRPC_BASE + 10 * i + 1, npe_thrift=THRIFT_BASE + 10 * i + 1,
            npe_addr=f"172.21.{i}.2", npe_mac=mac(0, i, 1, 0, 2), lc_npe_mac=mac(0, i, 1, 0, 1),
            gpe_gateway=f"172.20.{i}.1", gpe_mac=mac(0, i, 2, 0, 1))
    next_port = {n: LC_NPE_PORT + 1 for n in nodes}

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

    nxt = shortest_next_hops(spec.nodes, spec.links)
    slice_hosts = []
    for k, sl in enumerate(spec.slices):
        net = ipaddress.IPv4Network(sl.overlay)
        base = int(net.network_address)

        def ov(third, fourth, base=base):
            return str(ipaddress.IPv4Address(base + (third << 8) + fourth))

        for h in hosts.values():
            node = nodes[h.node]
            iface = next(i for i in node.interfaces if i.neighbor == h.name)
            h.tunnels.append({
                "slice": sl.name, "dev": f"ovl{k}", "overlay_addr": ov(h.index, 1),
                "overlay_prefix": sl.overlay, "local_addr": h.addr,
                "local_port": HOST_TUNNEL_PORT + k, "remote_addr": iface.addr,
                "remote_port": META_IF_HOST_PORT + 100 * k + h.index})
        for node in nodes.values():
            meta_ifs, mi_of = [], {}
            for iface in node.interfaces:
                if iface.peering:
                    mi_name = f"node:{iface.neighbor}"
                    mi_port = META_IF_PEER_PORT + 100 * k + iface.link
                    meta_ifs.append({"name": mi_name, "ifn": iface.ifn, "port": mi_port,
                                     "bw": sl.mi_bw_kbps, "nh_addr": iface.peer,
                                     "nh_port": mi_port})
                else:
                    h = hosts[iface.neighbor]
                    mi_name = f"host:{h.name}"
                    meta_ifs.append({"name": mi_name, "ifn": iface.ifn,
                                     "port": META_IF_HOST_PORT + 100 * k + h.index,
                                     "bw": sl.mi_bw_kbps, "nh_addr": h.addr,
                                     "nh_port": HOST_TUNNEL_PORT + k})
                mi_of[iface.neighbor] = mi_name
            routes = []
            for h in hosts.values():
                via = (mi_of[h.name] if h.node == node.name
                       else mi_of.get(nxt[node.name].get(h.node, ""), None))
                if via:
                    routes.append({"prefix": f"{ov(h.index, 0)}/24", "via": via})
            for other in nodes.values():
                via = mi_of.get(nxt[node.name].get(other.name, ""))
                if other is not node and via:
                    routes.append({"prefix": f"{ov(255, other.index)}/32", "via": via})
            s = len([x for x in slice_hosts if x.node == node.name])
            router = {"slice": sl.name, "node": node.name, "router_addr": ov(255, node.index),
                      "overlay": sl.overlay, "meta_ifs": meta_ifs, "routes": routes,
                      "fastpath": {"bw": sl.mi_bw_kbps * max(1, len(meta_ifs)),
                                   "filters": 4 * (len(routes) + len(meta_ifs)) + 8,
                                   "queues": max(1, len(meta_ifs)), "buffers": 256,
                                   "stats": len(routes) + len(meta_ifs) + 2,
                                   "sram": 64, "dram": 0}}
            slice_hosts.append(SliceHostPlan(
                name=f"{node.name}{sl.name}", slice=sl.name, node=node.name,
                data_addr=f"172.20.{node.index}.{10 + s}",
                mgmt_addr=f"172.30.{node.index}.{10 + s}", mac=mac(0, node.index, 0x20, 0, s),
                lc_port=port(node.name), router=router))
    return Plan(spec, nodes, hosts, slice_hosts)


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
            "npes": [{"name": node.npe, "grpc_addr": f"{SWITCH_CTL_ADDR}:{node.npe_grpc}",
                      "thrift_port": node.npe_thrift, "addr": node.npe_addr,
                      "port": LC_NPE_PORT, "mac": node.npe_mac, "lc_port": LC_NPE_PORT,
                      "lc_mac": node.lc_npe_mac}],
            "interfaces": [{"ifn": i.ifn, "addr": i.addr, "lc_port": i.lc_port, "mac": i.mac,
                            "bandwidth_kbps": i.bw_kbps, "peering": i.peering, "peer": i.peer}
                           for i in node.interfaces],
            "routes": routes,
            "gpe_gateway": node.gpe_gateway, "gpe_mac": node.gpe_mac})
    return out
