"""The LC's source guard for an NPE's internal address, through the
controller on live BMv2 switches (adversarial review F11).

An NPE's address is the source of the exceptions and local deliveries it
sends slice hosts, and a slice's slow path takes exceptions only from its
fastpath's return endpoint (NPE address, return port). Both are known to the
slice's peers, so the LC must let that source in only from the NPE's own port.
"""

from __future__ import annotations

from conftest import needs_bmv2
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from controller import pipeline as pl
from mininet_topo.livenode import END_HOST, IF1, LC_IF1_MAC, LC_IF2_MAC, NPE_ADDR, SLICE_A
from slices import metanet as mn

pytestmark = needs_bmv2


def from_npe_addr(out) -> list[Ether]:
    return [Ether(p) for p in out if IP in Ether(p) and Ether(p)[IP].src == NPE_ADDR]


def test_only_the_npe_sends_from_its_address(controller, slices, live_node):
    """An exception "from the NPE" to slice A's exception endpoint, forged by an
    end host (external port) or by the peer node (peering port), does not
    reach slice host A: the LC drops and counts it as spoofed. A real
    exception, sent by the NPE for a packet no filter matches, does."""
    a, _ = slices
    fp = a.alloc_fastpath(bw=10_000, filters=4, queues=1, buffers=8, stats=2, sram=0)
    f = fp["fpid"]
    a.resrv_fpath_ifbw(f, ifn=1, bw=2_000)
    mi = a.alloc_udp_tunnel(f, ifn=1, bw=1_000)
    ret, exc = fp["ret_endpoint"]["port"], fp["exc_endpoint"]["port"]
    inner = IP(src="10.9.9.9", dst="10.1.2.3", ttl=1) / ICMP()
    forged = (IP(src=NPE_ADDR, dst=SLICE_A) / UDP(sport=ret, dport=exc)
              / mn.MetaNet(kind=mn.EXCEPTION, reason=mn.TTL_EXPIRED, fastpath=f,
                           meta_if=mi["mi"], tunnel_src_addr="192.168.1.55",
                           tunnel_src_port=4444) / inner)

    def spoofed():
        return controller.ctl.scds["lc"].conn.read_counter(
            pl.Lc.DROPS, pl.LC_DROP["spoofed"]).packets

    before = spoofed()
    out = live_node.send_and_capture("ext0t", [bytes(Ether(dst=LC_IF1_MAC) / forged)], "sliceA")
    out += live_node.send_and_capture("ext1t", [bytes(Ether(dst=LC_IF2_MAC) / forged)],
                                      "sliceA")
    assert from_npe_addr(out) == []
    assert spoofed() - before == 2
    # The NPE's own exception: a meta-interface packet no filter matches.
    tunnel = (Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
              / UDP(sport=45000, dport=mi["port"], chksum=0) / inner)
    got = from_npe_addr(live_node.send_and_capture("ext0t", [bytes(tunnel)], "sliceA"))
    assert [(p[UDP].sport, p[UDP].dport, mn.MetaNet(bytes(p[UDP].payload)).kind)
            for p in got] == [(ret, exc, mn.EXCEPTION)]
    assert spoofed() - before == 2
