"""The testbed description the controller starts from.

The topology builder (mininet_topo) writes it as JSON when it brings a
testbed up; tests write their own. It is the inventory of the SRM: nodes,
their line card and NPEs (how to reach each switch, its ports and MACs),
their physical interfaces, and the routes the line cards need. Slices are
not part of it: they are created through the admin API and kept in the
controller's database.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Switch:
    """How to reach one BMv2 switch."""

    name: str
    grpc_addr: str
    thrift_port: int
    device_id: int = 0


@dataclass
class Npe(Switch):
    """An NPE: its internal address (where slices send packets back), its
    port towards the LC and the MACs of that link."""

    addr: str = ""
    port: int = 0            # NPE port towards the LC
    mac: str = ""            # NPE's MAC on that link
    lc_port: int = 0         # LC port towards this NPE
    lc_mac: str = ""         # LC's MAC on that link
    dram_bytes: int = 64 << 20
    buffers: int = 4096
    bandwidth_kbps: int = 1_000_000
    # Packets per second the NPE can process (measured: make bench, case c); the
    # LC polices each fastpath's inbound packets to its share of it, in
    # proportion to its bw (translate.police_rates). 0: unknown, no packet
    # policing (the SRM warns).
    pps: int = 0


@dataclass
class Interface:
    """A physical interface of the node (on the LC)."""

    ifn: int                 # the SPP's 2-byte interface number
    addr: str
    lc_port: int
    mac: str                 # LC's MAC on this port
    bandwidth_kbps: int
    peering: bool = False
    peer: str = ""           # peer address of a peering interface


@dataclass
class Route:
    """An LC route: prefix -> port, with the next hop's MAC."""

    prefix: str
    lc_port: int
    dst_mac: str

    @property
    def network(self):
        return ipaddress.IPv4Network(self.prefix)


@dataclass
class Node:
    name: str
    lc: Switch
    npes: list[Npe]
    interfaces: list[Interface]
    routes: list[Route] = field(default_factory=list)
    gpe_gateway: str = ""    # the LC's address on the slice hosts' network
    gpe_mac: str = ""        # LC MAC on slice host ports

    def interface(self, ifn: int) -> Interface | None:
        return next((i for i in self.interfaces if i.ifn == ifn), None)

    def npe(self, name: str) -> Npe:
        return next(n for n in self.npes if n.name == name)


@dataclass
class Testbed:
    __test__ = False        # not a pytest class, whatever its name

    name: str
    nodes: list[Node]

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    @classmethod
    def from_dict(cls, d: dict) -> Testbed:
        nodes = []
        for n in d["nodes"]:
            nodes.append(Node(
                name=n["name"], lc=Switch(**n["lc"]),
                npes=[Npe(**x) for x in n["npes"]],
                interfaces=[Interface(**x) for x in n["interfaces"]],
                routes=[Route(**x) for x in n.get("routes", [])],
                gpe_gateway=n.get("gpe_gateway", ""), gpe_mac=n.get("gpe_mac", "")))
        return cls(d["name"], nodes)

    @classmethod
    def load(cls, path) -> Testbed:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
