"""Data-plane isolation through the controller (issues 9 and 11.3), on live
BMv2 switches: who may use a slice's return path, fastpaths without stats,
and bandwidth policed from the moment it exists. The rate translation itself
is checked without switches."""

from __future__ import annotations

import pytest
from conftest import needs_bmv2
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller import pipeline as pl
from controller import translate as tr
from controller.testbed import Npe
from mininet_topo.livenode import (
    END_HOST,
    GPE_MAC,
    IF1,
    LC_IF1_MAC,
    LC_IF2_MAC,
    NPE_ADDR,
    PEER2,
    SLICE_A,
)
from slices import metanet as mn
from slices.client import SppError

NH, NH_PORT = "192.168.1.200", 30000


def fwd(mi, stats=1, queue=0):
    return {"action": "forward", "meta_if": mi, "nh_addr": NH, "nh_port": NH_PORT,
            "queue": queue, "stats": stats}


def fastpath(s, stats=4, queues=4, bw=10_000):
    fp = s.alloc_fastpath(bw=bw, filters=8, queues=queues, buffers=64, stats=stats, sram=0)
    f = fp["fpid"]
    s.resrv_fpath_ifbw(f, ifn=1, bw=4_000)
    mi1 = s.alloc_udp_tunnel(f, ifn=1, bw=1_000)
    mi2 = s.alloc_udp_tunnel(f, ifn=1, bw=2_000)
    return fp, mi1, mi2


def tunnelled(out) -> list[Ether]:
    """Frames the NPE sent into an output tunnel (outer source: the interface)."""
    return [Ether(p) for p in out if IP in Ether(p) and Ether(p)[IP].src == IF1]


# ---- rate translation (no switches) --------------------------------------

def test_queue_rates_share_what_the_meta_interface_has_left():
    fp = {"n_queues": 5}
    mis = [{"mi": 1, "bw_kbps": 1_000}, {"mi": 2, "bw_kbps": 0}]
    queues = [{"qid": 0, "mi": 1, "bw_kbps": 400}, {"qid": 1, "mi": 1, "bw_kbps": 0},
              {"qid": 2, "mi": 1, "bw_kbps": 0}, {"qid": 3, "mi": 2, "bw_kbps": 0}]
    # Queue 4 is bound to nothing: closed. A 0 kb/s meta-interface cannot send.
    assert tr.queue_rates(fp, queues, mis) == {0: 400, 1: 300, 2: 300, 3: 0, 4: 0}
    assert tr.queue_meter_rate(0) == (0, 1)
    assert tr.queue_meter_rate(800) == (100_000, 2 * tr.ETHERNET_MTU_FRAME)


def test_police_rates_share_the_npe_packet_budget_by_bandwidth():
    npe = Npe("npe", "", 0, pps=6_000)
    fps = [{"gid": 1, "bw_kbps": 10_000}, {"gid": 2, "bw_kbps": 5_000},
           {"gid": 3, "bw_kbps": 15_000}]
    rates = tr.police_rates(npe, fps)
    assert {g: r[0] for g, r in rates.items()} == {1: 2_000, 2: 1_000, 3: 3_000}
    assert sum(r[0] for r in rates.values()) <= npe.pps
    assert tr.police_rates(Npe("npe", "", 0), fps) == {1: None, 2: None, 3: None}


# ---- live switches --------------------------------------------------------

@needs_bmv2
def test_spoofed_return_frames_are_dropped(controller, slices, live_node):
    """Issue 11.3: a frame carrying slice A's address and forwarding key, sent to
    A's return port from an end host (external port) or from the peer node
    (peering port), is dropped and counted by the LC; A's own host, on its own
    port, uses its return path."""
    a, _ = slices
    ctl = controller.ctl
    fp, _, mi2 = fastpath(a)
    f = fp["fpid"]
    a.bind_queue(f, mi2["mi"], [0])
    a.write_fltr(f, 1000, type=1,
                 key={"src_port": mi2["port"], "dst_addr": NH, "dst_port": NH_PORT},
                 mask={"src_port": 0xFFFF, "dst_addr": "255.255.255.255", "dst_port": 0xFFFF},
                 result=fwd(mi2["mi"], stats=2))
    ret = fp["ret_endpoint"]["port"]
    inner = IP(src="10.1.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"r" * 40)
    key = mn.MetaNet(kind=mn.FROM_SLICE) / mn.FwdKey(dst_addr=NH, src_port=mi2["port"],
                                                     dst_port=NH_PORT)

    def frame(dst_mac, src):
        return bytes(Ether(dst=dst_mac) / IP(src=src, dst=NPE_ADDR)
                     / UDP(sport=6000, dport=ret) / key / inner)

    def drops(reason):
        return ctl.scds["lc"].conn.read_counter(pl.Lc.DROPS, pl.LC_DROP[reason]).packets

    before = {r: drops(r) for r in ("spoofed", "internal")}
    out = live_node.send_and_capture("ext0t", [frame(LC_IF1_MAC, SLICE_A),
                                               frame(LC_IF1_MAC, END_HOST)], "ext0t")
    out += live_node.send_and_capture("ext1t", [frame(LC_IF2_MAC, SLICE_A),
                                                frame(LC_IF2_MAC, PEER2)], "ext0t")
    assert tunnelled(out) == []
    assert drops("spoofed") - before["spoofed"] == 2
    assert drops("internal") - before["internal"] == 2
    assert a.read_stats(f, 2)["pre_packets"] == 0
    out = live_node.send_and_capture("sliceA", [frame(GPE_MAC, SLICE_A)] * 3, "ext0t")
    assert len(tunnelled(out)) == 3
    assert a.read_stats(f, 2)["pre_packets"] == 3


@needs_bmv2
def test_fastpath_without_stats_forwards(controller, slices, live_node):
    """Issue 9.4: stats=0 is accepted, its filters name stats index 0, and the
    fastpath forwards (uncounted); read_stats has nothing to read."""
    a, _ = slices
    fp, mi1, mi2 = fastpath(a, stats=0)
    f = fp["fpid"]
    a.bind_queue(f, mi2["mi"], [0])
    a.write_fltr(f, 10, key={"dst_addr": "10.1.0.0"}, mask={"dst_addr": "255.255.0.0"},
                 result=fwd(mi2["mi"], stats=0))
    inner = IP(src="10.9.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"s" * 100)
    frame = bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                  / UDP(sport=45000, dport=mi1["port"], chksum=0) / inner)
    out = live_node.send_and_capture("ext0t", [frame] * 4, "ext0t")
    assert len(tunnelled(out)) == 4
    with pytest.raises(SppError) as e:
        a.read_stats(f, 0)
    assert e.value.name == "ERANGE"


@needs_bmv2
def test_bandwidth_is_policed_from_the_moment_it_exists(controller, slices):
    """Issue 9.1: every queue meter of a new fastpath is closed; a bound queue
    without a rate of its own is policed at its share of what its
    meta-interface has left; the fastpath's meter holds its bw."""
    a, _ = slices
    ctl = controller.ctl
    fp, _, mi2 = fastpath(a, bw=10_000)
    f = fp["fpid"]
    row = ctl.store.one("SELECT gid, queue_base FROM fastpaths")
    qb = row["queue_base"]

    def meter(q):
        return ctl.scds["npe"].conn.read_meter(pl.Npe.QUEUE_RATE, qb + q)
    assert [meter(q)[0] for q in range(4)] == [0, 0, 0, 0]           # closed
    assert ctl.scds["npe"].conn.read_meter(pl.Npe.FASTPATH_RATE, row["gid"])[0] == 1_250_000
    a.bind_queue(f, mi2["mi"], [0, 1])                                  # 2,000 kb/s to share
    assert [meter(q)[0] for q in range(4)] == [125_000, 125_000, 0, 0]
    a.set_queue_params(f, 0, threshold=0, bw=1_500)
    assert [meter(q)[0] for q in range(4)] == [187_500, 62_500, 0, 0]
    a.set_queue_params(f, 1, threshold=0, bw=500)
    a.set_queue_params(f, 0, threshold=0, bw=0)                         # back to the share
    assert [meter(q)[0] for q in range(4)] == [187_500, 62_500, 0, 0]
