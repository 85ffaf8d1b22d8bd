"""The address plan (mininet_topo/topology.py) at scale, without Mininet:
64 (and 200) slices, several NPEs per node, slices added and removed."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json

import pytest

from controller.srm import HELD_PORTS
from mininet_topo import topology
from mininet_topo.topology import (
    MAX_SLICES,
    SliceSpec,
    TopologyError,
    TopologySpec,
    add_slice,
    plan,
    remove_slice,
)


def spec_with(tmp_path, n_slices: int, npes=1, topo="geni5"):
    base = TopologySpec.load(topo)
    d = {"name": base.name, "nodes": [{"name": n, "npes": npes} for n in base.nodes],
         "links": [dataclasses.asdict(x) for x in base.links],
         "hosts": [dataclasses.asdict(x) for x in base.hosts],
         "slices": [{"name": f"s{k}"} for k in range(n_slices)]}
    f = tmp_path / "big.json"
    f.write_text(json.dumps(d))
    return TopologySpec.load(f)


def assert_no_overlap(p):
    """Every address, port, MAC and name the plan hands out is handed out once."""
    nets = [ipaddress.IPv4Network(s.overlay) for s in p.spec.slices]
    for a, b in itertools.combinations(nets, 2):
        assert not a.overlaps(b), (a, b)
    substrate = ipaddress.IPv4Network("172.16.0.0/12")
    assert not any(n.overlaps(substrate) for n in nets)

    def unique(items, what):
        items = list(items)
        dup = [x for x in set(items) if items.count(x) > 1]
        assert not dup, f"{what} given twice: {dup[:5]}"

    shs = p.slice_hosts
    unique((sh.name for sh in shs), "slice host name")
    unique((sh.data_addr for sh in shs), "data address")
    unique((sh.mgmt_addr for sh in shs), "management address")
    unique([sh.mac for sh in shs] + [h.mac for h in p.hosts.values()]
           + [i.mac for n in p.nodes.values() for i in n.interfaces]
           + [m for n in p.nodes.values() for x in n.npes for m in (x.mac, x.lc_mac)], "MAC")
    for node in p.nodes.values():
        unique([x.lc_port for x in node.npes] + [i.lc_port for i in node.interfaces]
               + [sh.lc_port for sh in shs if sh.node == node.name], f"{node.name} LC port")
        # meta-interface endpoints: (interface address, UDP port) once per node
        addr = {i.ifn: i.addr for i in node.interfaces}
        unique(((addr[m["ifn"]], m["port"]) for sh in shs if sh.node == node.name
                for m in sh.router["meta_ifs"]), f"{node.name} meta-interface endpoint")
    unique([x.grpc for n in p.nodes.values() for x in n.npes]
           + [n.lc_grpc for n in p.nodes.values()]
           + [x.thrift for n in p.nodes.values() for x in n.npes]
           + [n.lc_thrift for n in p.nodes.values()], "switch port")
    unique([x.addr for n in p.nodes.values() for x in n.npes], "NPE address")
    for h in p.hosts.values():
        unique((t["dev"] for t in h.tunnels), f"{h.name} tunnel device")
        unique((t["local_port"] for t in h.tunnels), f"{h.name} tunnel port")
        unique((t["overlay_addr"] for t in h.tunnels), f"{h.name} overlay address")
    for sh in shs:
        ov = ipaddress.IPv4Network(sh.router["overlay"])
        assert ipaddress.IPv4Address(sh.router["router_addr"]) in ov
        assert all(ipaddress.IPv4Network(r["prefix"]).subnet_of(ov) for r in sh.router["routes"])
        for m in sh.router["meta_ifs"]:
            assert m["port"] in HELD_PORTS          # held for the slice, nobody else's


@pytest.mark.parametrize("n", [64, MAX_SLICES])
def test_many_slices_plan_without_overlap(tmp_path, n):
    p = plan(spec_with(tmp_path, n))
    assert len(p.spec.slices) == n and len(p.slice_hosts) == 5 * n
    assert_no_overlap(p)
    # every meta-router routes to every end host and every other meta-router
    for sh in p.slice_hosts:
        assert len(sh.router["routes"]) == 5 + 4


def test_too_many_slices(tmp_path):
    with pytest.raises(TopologyError, match=f"{MAX_SLICES} slices"):
        spec_with(tmp_path, MAX_SLICES + 1)


def test_overlay_overlap_refused(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"name": "t", "nodes": ["a"], "slices": [
        {"name": "x", "overlay": "10.1.0.0/16"}, {"name": "y"}]}))   # y: slot 1, 10.2
    assert [s.overlay for s in TopologySpec.load(f).slices] == ["10.1.0.0/16", "10.2.0.0/16"]
    f.write_text(json.dumps({"name": "t", "nodes": ["a"], "slices": [
        {"name": "x", "overlay": "10.2.0.0/16"}, {"name": "y"}]}))
    with pytest.raises(TopologyError, match="overlap"):
        TopologySpec.load(f)
    f.write_text(json.dumps({"name": "t", "nodes": ["a"], "slices": [
        {"name": "x", "overlay": "172.20.0.0/16"}]}))
    with pytest.raises(TopologyError, match="substrate"):
        TopologySpec.load(f)


def test_a_slice_reserving_more_than_its_share_of_a_link_is_refused(tmp_path):
    """The controller grants a slice half of an interface's bandwidth: a
    topology whose routers would ask for more is refused at load, saying so."""
    f = tmp_path / "t.json"
    topo = {"name": "t", "nodes": ["a", "b"], "links": [{"a": "a", "b": "b", "bw_mbps": 30}],
            "slices": [{"name": "x", "mi_bw_kbps": 15_000}]}
    f.write_text(json.dumps(topo))
    TopologySpec.load(f)
    topo["slices"][0]["mi_bw_kbps"] = 15_001
    f.write_text(json.dumps(topo))
    with pytest.raises(TopologyError, match="link a-b"):
        TopologySpec.load(f)


def test_shipped_topologies_keep_their_addresses():
    """The README's tour: h1 is 10.1.1.1 and 10.2.1.1, h2 10.1.2.1 and 10.2.2.1;
    slice hosts as before (slot S at .10+S)."""
    p = plan(TopologySpec.load("default"))
    assert [t["overlay_addr"] for t in p.hosts["h1"].tunnels] == ["10.1.1.1", "10.2.1.1"]
    assert [t["overlay_addr"] for t in p.hosts["h2"].tunnels] == ["10.1.2.1", "10.2.2.1"]
    assert [t["dev"] for t in p.hosts["h1"].tunnels] == ["ovl0", "ovl1"]
    assert {sh.name: sh.data_addr for sh in p.slice_hosts} == {
        "spp1rtr": "172.20.1.10", "spp2rtr": "172.20.2.10",
        "spp1rtr2": "172.20.1.11", "spp2rtr2": "172.20.2.11"}
    assert [len(n.npes) for n in p.nodes.values()] == [1, 1]
    assert_no_overlap(p)
    g = plan(TopologySpec.load("geni5"))
    assert [t["overlay_addr"] for h in g.hosts.values() for t in h.tunnels] == [
        f"10.1.{i}.1" for i in range(1, 6)]
    assert_no_overlap(g)


def test_geni5_two_npes_per_node():
    g = plan(TopologySpec.load("geni5"))
    tb = topology.testbed_dict(g)
    for node in tb["nodes"]:
        npes = node["npes"]
        assert len(npes) == 2
        assert [x["name"] for x in npes] == [node["name"] + "npe", node["name"] + "npe2"]
        assert [x["lc_port"] for x in npes] == [1, 2]
        # the LC's own ports: NPEs first, then interfaces
        assert min(i["lc_port"] for i in node["interfaces"]) == 3


def test_slice_added_and_removed_changes_no_other(tmp_path):
    p = plan(spec_with(tmp_path, 3, topo="default"))
    before = [dataclasses.asdict(sh) for sh in p.slice_hosts]
    tunnels = {h: list(x.tunnels) for h, x in p.hosts.items()}
    remove_slice(p, "s1")
    assert {sh.slice for sh in p.slice_hosts} == {"s0", "s2"}
    new = add_slice(p, SliceSpec(name="web", nodes=["spp1"]))
    assert [sh.name for sh in new] == ["spp1web"]
    assert new[0].router["overlay"] == "10.2.0.0/16"    # the freed slot 1
    assert new[0].data_addr == "172.20.1.11"
    # a slice on one node: a meta-interface to h1 only, no peering
    assert [m["name"] for m in new[0].router["meta_ifs"]] == ["host:h1"]
    assert [t["slice"] for t in p.hosts["h2"].tunnels] == ["s0", "s2"]
    # the others as they were, and the whole as if planned from the file
    kept = [dataclasses.asdict(sh) for sh in p.slice_hosts if sh.slice != "web"]
    assert kept == [b for b in before if b["slice"] != "s1"]
    assert [t for t in p.hosts["h1"].tunnels if t["slice"] != "web"] == [
        t for t in tunnels["h1"] if t["slice"] != "s1"]
    assert_no_overlap(p)
    with pytest.raises(TopologyError):
        add_slice(p, SliceSpec(name="web"))              # the name is taken
    assert [s.name for s in p.spec.slices] == ["s0", "s2", "web"]
