"""PTF tests of lc.p4: ARP, demux to the NPE, endpoint NAT both ways,
routing, source guard, and counted drops.

Scenario: LC port 0 is an external interface (192.168.1.1, towards end
hosts), port 1 leads to the NPE, port 2 to a slice host (10.0.2.10), port 3
to a second slice host (10.0.2.11), port 4 is a peering interface
(192.168.2.1, peer 192.168.2.2).
"""

from base import SwitchTest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from controller.pipeline import (
    LC_DROP,
    Lc,
    lc_arp,
    lc_endpoint,
    lc_local_addr,
    lc_meta_if,
    lc_npe_addr,
    lc_port_stamp,
    lc_route,
    lc_slice_port,
    lc_src_owner,
)
from slices import metanet as mn

EXT, NPE, SLICE_A, SLICE_B, PEERING = 0, 1, 2, 3, 4
LC_MAC = "00:00:00:00:00:aa"
HOST_MAC, NPE_MAC = "00:00:00:00:00:01", "00:00:00:00:01:01"
SLICE_A_MAC, SLICE_B_MAC = "00:00:00:00:02:0a", "00:00:00:00:02:0b"
IF1, GW = "192.168.1.1", "10.0.2.1"
HOST = "192.168.1.100"
NPE_ADDR = "10.0.1.2"
SLICE_A_ADDR, SLICE_B_ADDR = "10.0.2.10", "10.0.2.11"
IF2, PEER2, PEER_MAC = "192.168.2.1", "192.168.2.2", "00:00:00:00:00:02"


def mac(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


class LcTest(SwitchTest):
    program = "lc"
    device = 1

    def setUp(self):
        super().setUp()
        self.sw.insert([
            lc_arp(IF1, LC_MAC), lc_arp(GW, LC_MAC),
            lc_local_addr(IF1), lc_local_addr(GW),
            lc_route("192.168.1.0", 24, EXT, LC_MAC, HOST_MAC),
            lc_route(NPE_ADDR, 32, NPE, LC_MAC, NPE_MAC),
            lc_route(SLICE_A_ADDR, 32, SLICE_A, LC_MAC, SLICE_A_MAC),
            lc_route(SLICE_B_ADDR, 32, SLICE_B, LC_MAC, SLICE_B_MAC),
            lc_slice_port(SLICE_A, SLICE_A_ADDR), lc_slice_port(SLICE_B, SLICE_B_ADDR),
            lc_arp(IF2, LC_MAC), lc_local_addr(IF2),
            lc_route("192.168.2.0", 24, PEERING, LC_MAC, PEER_MAC),
            lc_src_owner(SLICE_A_ADDR, SLICE_A), lc_src_owner(SLICE_B_ADDR, SLICE_B),
            lc_npe_addr(NPE_ADDR), lc_src_owner(NPE_ADDR, NPE),
        ])

    def drop_count(self, reason):
        return self.drops(Lc.DROPS, LC_DROP[reason])


def from_host(l4, dst=IF1, src=HOST):
    return Ether(src=HOST_MAC, dst=LC_MAC) / IP(src=src, dst=dst, ttl=30, id=4) / l4


class ArpReply(LcTest):
    """The LC answers ARP for its own addresses, and only for them."""

    def runTest(self):
        req = Ether(src=HOST_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=HOST_MAC, psrc=HOST, pdst=IF1)
        rep = Ether(src=LC_MAC, dst=HOST_MAC) / ARP(
            op=2, hwsrc=LC_MAC, psrc=IF1, hwdst=HOST_MAC, pdst=HOST)
        self.send(EXT, req)
        self.expect(rep, EXT)
        self.send(EXT, Ether(src=HOST_MAC, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(op=1, hwsrc=HOST_MAC, psrc=HOST, pdst="192.168.1.77"))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("arp"), 1)


class DemuxToNpe(LcTest):
    """Tunnel packets for a meta-interface endpoint go to the NPE unchanged
    but for the MACs; the same address on another port is not a tunnel."""

    def runTest(self):
        self.sw.insert([lc_meta_if(IF1, 20001, NPE, LC_MAC, NPE_MAC, police=1)])
        pkt = from_host(UDP(sport=45000, dport=20001) / Raw(b"\x45" + b"t" * 40))
        exp = pkt.copy()
        exp[Ether].src, exp[Ether].dst = LC_MAC, NPE_MAC
        self.send(EXT, pkt)
        self.expect(exp, NPE)
        self.send(EXT, from_host(UDP(sport=45000, dport=20002) / Raw(b"t" * 41)))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("local"), 1)


class NatBothWays(LcTest):
    """An allocated endpoint: traffic to (IF1, proto, port) reaches the slice
    host's (address, port) and its replies leave from the endpoint; TCP and UDP
    checksums stay valid (compared with scapy's from-scratch checksums)."""

    def runTest(self):
        self.sw.insert(list(lc_endpoint(IF1, 17, 8053, SLICE_A_ADDR, 53))
                       + list(lc_endpoint(IF1, 6, 8080, SLICE_A_ADDR, 80)))
        cases = [(UDP, 8053, 53, b"query"), (TCP, 8080, 80, b"GET / HTTP/1.0\r\n")]
        for proto, pub, priv, data in cases:
            inbound = from_host(proto(sport=33333, dport=pub) / Raw(data))
            exp_in = (Ether(src=LC_MAC, dst=SLICE_A_MAC)
                      / IP(src=HOST, dst=SLICE_A_ADDR, ttl=30, id=4)
                      / proto(sport=33333, dport=priv) / Raw(data))
            self.send(EXT, inbound)
            self.expect(exp_in, SLICE_A)
            reply = (Ether(src=SLICE_A_MAC, dst=LC_MAC) / IP(src=SLICE_A_ADDR, dst=HOST, id=5)
                     / proto(sport=priv, dport=33333) / Raw(data[::-1]))
            exp_out = (Ether(src=LC_MAC, dst=HOST_MAC) / IP(src=IF1, dst=HOST, id=5)
                       / proto(sport=pub, dport=33333) / Raw(data[::-1]))
            self.send(SLICE_A, reply)
            self.expect(exp_out, EXT)
        # A UDP datagram without a checksum keeps none.
        self.send(EXT, from_host(UDP(sport=1, dport=8053, chksum=0) / Raw(b"n")))
        self.expect(Ether(src=LC_MAC, dst=SLICE_A_MAC)
                    / IP(src=HOST, dst=SLICE_A_ADDR, ttl=30, id=4)
                    / UDP(sport=1, dport=53, chksum=0) / Raw(b"n"), SLICE_A)
        # Other protocols and ports are not forwarded to the slice.
        self.send(EXT, from_host(UDP(sport=1, dport=8054)))
        self.send(EXT, from_host(TCP(sport=1, dport=8053)))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("local"), 2)


class Routing(LcTest):
    """Outbound traffic from the NPE and slice hosts is routed by destination;
    an unroutable packet, a non-IP frame are dropped and counted."""

    def runTest(self):
        out = (Ether(src=NPE_MAC, dst=LC_MAC) / IP(src=IF1, dst="192.168.1.200", id=1)
               / UDP(sport=20002, dport=30000) / Raw(b"o" * 30))
        exp = out.copy()
        exp[Ether].src, exp[Ether].dst = LC_MAC, HOST_MAC
        self.send(NPE, out)
        self.expect(exp, EXT)
        back = (Ether(src=SLICE_A_MAC, dst=LC_MAC) / IP(src=SLICE_A_ADDR, dst=NPE_ADDR, id=2)
                / UDP(sport=6000, dport=40000) / Raw(b"b" * 30))
        exp = back.copy()
        exp[Ether].src, exp[Ether].dst = mac(lc_port_stamp(SLICE_A)), NPE_MAC
        self.send(SLICE_A, back)
        self.expect(exp, NPE)
        self.send(NPE, Ether(src=NPE_MAC, dst=LC_MAC) / IP(src=IF1, dst="8.8.8.8") / ICMP())
        self.send(EXT, Ether(src=HOST_MAC, dst=LC_MAC, type=0x86DD) / Raw(b"\x60" + b"\0" * 40))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("no_route"), 1)
        self.assertEqual(self.drop_count("not_ipv4"), 1)


class SourceGuard(LcTest):
    """A slice host cannot send as another slice host (nor as anyone else)."""

    def runTest(self):
        self.sw.insert(list(lc_endpoint(IF1, 17, 8053, SLICE_A_ADDR, 53)))
        spoof = (Ether(src=SLICE_B_MAC, dst=LC_MAC) / IP(src=SLICE_A_ADDR, dst=HOST)
                 / UDP(sport=53, dport=33333))
        self.send(SLICE_B, spoof)
        self.send(SLICE_B, Ether(src=SLICE_B_MAC, dst=LC_MAC) / IP(src=NPE_ADDR, dst=NPE_ADDR)
                  / UDP(sport=1, dport=40000))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("spoofed"), 2)


class ReturnPathGuard(LcTest):
    """Only a slice host, from its own port, reaches the NPE's internal address
    (the slices' return path): the frame a slice host sends there leaves
    stamped with its port. The same frame from the external port or from the
    peering port, with the slice host's source or any other, is dropped and
    counted; so is a slice host's source address on any port but its own."""

    def runTest(self):
        def ret(src, port_mac=HOST_MAC):
            return (Ether(src=port_mac, dst=LC_MAC) / IP(src=src, dst=NPE_ADDR, id=3)
                    / UDP(sport=6000, dport=40000) / Raw(b"\x53\x03" + b"r" * 40))
        legit = ret(SLICE_A_ADDR, SLICE_A_MAC)
        exp = legit.copy()
        exp[Ether].src, exp[Ether].dst = mac(lc_port_stamp(SLICE_A)), NPE_MAC
        self.send(SLICE_A, legit)
        self.expect(exp, NPE)
        # Spoofed return frames: the slice host's address from outside ...
        self.send(EXT, ret(SLICE_A_ADDR))
        self.send(PEERING, ret(SLICE_A_ADDR, PEER_MAC))
        self.send(NPE, ret(SLICE_A_ADDR, NPE_MAC))
        # ... and any other source, for the NPE's address, from outside.
        self.send(EXT, ret(HOST))
        self.send(PEERING, ret(PEER2, PEER_MAC))
        # A slice host's address elsewhere: not even to an end host.
        self.send(EXT, from_host(UDP(sport=1, dport=2), dst="192.168.1.200", src=SLICE_B_ADDR))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("spoofed"), 4)
        self.assertEqual(self.drop_count("internal"), 2)
        # Slice B from its own port reaches the NPE too, stamped with its port
        # (the NPE keys A's return path on A's address and A's port).
        b = ret(SLICE_B_ADDR, SLICE_B_MAC)
        exp = b.copy()
        exp[Ether].src, exp[Ether].dst = mac(lc_port_stamp(SLICE_B)), NPE_MAC
        self.send(SLICE_B, b)
        self.expect(exp, NPE)
        self.expect_nothing_else()


class NpeSourceGuard(LcTest):
    """An NPE's internal address is a source only from that NPE's port: it is
    the source of the exceptions and local deliveries the NPE sends a slice
    host, which the slice's slow path trusts. The same exception "from the
    NPE" sent by an end host (external port), the peer (peering port) or
    another slice host is dropped and counted as spoofed; the NPE's own
    reaches the slice host."""

    def runTest(self):
        def exc(port_mac):
            inner = IP(src="10.9.9.9", dst="10.1.2.3", ttl=1) / ICMP()
            return (Ether(src=port_mac, dst=LC_MAC) / IP(src=NPE_ADDR, dst=SLICE_A_ADDR, id=6)
                    / UDP(sport=40000, dport=50001)
                    / mn.MetaNet(kind=mn.EXCEPTION, reason=mn.TTL_EXPIRED, fastpath=1,
                                 meta_if=1, tunnel_src_addr="192.168.1.55",
                                 tunnel_src_port=4444) / inner)
        self.send(EXT, exc(HOST_MAC))
        self.send(PEERING, exc(PEER_MAC))
        self.send(SLICE_B, exc(SLICE_B_MAC))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("spoofed"), 3)
        self.assertEqual(self.drop_count("internal"), 0)
        real = exc(NPE_MAC)
        exp = real.copy()
        exp[Ether].src, exp[Ether].dst = LC_MAC, SLICE_A_MAC
        self.send(NPE, real)
        self.expect(exp, SLICE_A)
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("spoofed"), 3)


class PolicePerFastpath(LcTest):
    """Meta-interface traffic is policed at the LC, before the NPE, by its
    fastpath's packet meter: two meta-interfaces of one fastpath share one
    meter, another fastpath's meta-interface has its own. Exact pass counts
    (the bursts); the excess is dropped and counted."""

    def runTest(self):
        self.sw.insert([lc_meta_if(IF1, 20001, NPE, LC_MAC, NPE_MAC, police=3),
                        lc_meta_if(IF1, 20002, NPE, LC_MAC, NPE_MAC, police=3),
                        lc_meta_if(IF1, 21001, NPE, LC_MAC, NPE_MAC, police=4)])
        self.sw.set_meter(Lc.POLICE, 3, rate=1, burst=4)      # packets/s, packets
        self.sw.set_meter(Lc.POLICE, 4, rate=1, burst=6)

        def tun(dport):
            return from_host(UDP(sport=45000, dport=dport) / Raw(b"\x45" + b"p" * 40))
        for dport in (20001, 20002, 21001):
            self.send(EXT, tun(dport), count=5)
        got = [UDP(p[34:]).dport for port, p in self.receive_all() if port == NPE]
        self.assertEqual(got.count(20001) + got.count(20002), 4)
        self.assertEqual(got.count(21001), 5)
        self.assertEqual(self.drop_count("policed"), 15 - 9)


class HostPolicing(LcTest):
    """Everything a slice host sends is policed at the LC by its port's two
    meters (quota host_pps, host_kbps), whatever the destination: an end
    host, or an NPE's address (its return path). Over the packet meter or
    the byte meter, dropped and counted `host_rate`; within, forwarded; the
    other slice host's port has meters of its own. Exact pass counts (the
    bursts); the meters refill at 1 packet/s, 1 byte/s."""

    def runTest(self):
        def from_slice(port_mac, src, dst, n=40):
            return (Ether(src=port_mac, dst=LC_MAC) / IP(src=src, dst=dst, id=9)
                    / UDP(sport=7000, dport=9) / Raw(b"h" * n))
        frame = len(from_slice(SLICE_B_MAC, SLICE_B_ADDR, HOST, 100))
        self.sw.set_meter(Lc.HOST_PACKETS, SLICE_A, rate=1, burst=4)     # packets/s, packets
        self.sw.set_meter(Lc.HOST_BYTES, SLICE_B, rate=1, burst=3 * frame + 10)  # bytes
        # A: 4 of 6 to an end host pass, then nothing, to an end host or the NPE.
        self.send(SLICE_A, from_slice(SLICE_A_MAC, SLICE_A_ADDR, HOST), count=6)
        self.send(SLICE_A, from_slice(SLICE_A_MAC, SLICE_A_ADDR, NPE_ADDR), count=3)
        got = self.receive_all()
        self.assertEqual([port for port, _ in got], [EXT] * 4)
        self.assertEqual(self.drop_count("host_rate"), 5)
        # B meanwhile: its own byte meter, 3 full frames of 5 (A's red changes nothing).
        self.send(SLICE_B, from_slice(SLICE_B_MAC, SLICE_B_ADDR, HOST, 100), count=5)
        got = self.receive_all()
        self.assertEqual([port for port, _ in got], [EXT] * 3)
        self.assertEqual(self.drop_count("host_rate"), 7)
        # Traffic to the slice hosts is not theirs: not policed here.
        self.send(EXT, from_host(UDP(sport=1, dport=2), dst=SLICE_A_ADDR), count=10)
        got = self.receive_all()
        self.assertEqual([port for port, _ in got], [SLICE_A] * 10)
        self.assertEqual(self.drop_count("host_rate"), 7)
        self.assertEqual(self.drop_count("spoofed"), 0)


class HostPolicingAllFrames(LcTest):
    """A slice host's ARP and non-IPv4 frames are policed by its port's
    meters too: they cost the LC as much as any packet, and a flood of them
    went past the meters (review 19, R19-4). Within the burst an ARP request
    is answered; past it, dropped (`host_rate`), and a non-IPv4 frame is
    counted `host_rate` there rather than `not_ipv4`. ARP from an end host's
    port has no meter."""

    def runTest(self):
        self.sw.set_meter(Lc.HOST_PACKETS, SLICE_A, rate=1, burst=4)     # packets/s, packets
        req = Ether(src=SLICE_A_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=SLICE_A_MAC, psrc=SLICE_A_ADDR, pdst=GW)
        self.send(SLICE_A, req, count=6)
        got = self.receive_all()
        self.assertEqual([(port, Ether(p)[ARP].op) for port, p in got], [(SLICE_A, 2)] * 4)
        self.assertEqual(self.drop_count("host_rate"), 2)
        self.send(SLICE_A, Ether(src=SLICE_A_MAC, dst=LC_MAC, type=0x86DD) / Raw(b"6" * 46),
                  count=3)
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("host_rate"), 5)
        self.assertEqual(self.drop_count("not_ipv4"), 0)
        # An end host's port: no meter, every request answered.
        self.send(EXT, Ether(src=HOST_MAC, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(op=1, hwsrc=HOST_MAC, psrc=HOST, pdst=IF1), count=6)
        self.assertEqual([port for port, _ in self.receive_all()], [EXT] * 6)
        self.assertEqual(self.drop_count("host_rate"), 5)


class NoHairpin(LcTest):
    """Both ends of a peering link route its subnet out the link, and the LC
    keeps the TTL: a packet for an unused address there, sent back out the
    port it came in on, went back and forth between the two LCs for ever
    (one packet from an end host: ~13,500 copies/s on the link, review 20,
    R20-2). The LC sends nothing back out its ingress port; the same packet
    from another port is routed."""

    def runTest(self):
        pkt = (Ether(src=PEER_MAC, dst=LC_MAC) / IP(src=HOST, dst="192.168.2.77", id=7)
               / UDP(sport=1234, dport=9) / Raw(b"l" * 30))
        self.send(PEERING, pkt)
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("no_route"), 1)
        fwd = pkt.copy()
        fwd[Ether].src = HOST_MAC
        exp = pkt.copy()
        exp[Ether].src, exp[Ether].dst = LC_MAC, PEER_MAC
        self.send(EXT, fwd)
        self.expect(exp, PEERING)
        back = (Ether(src=PEER_MAC, dst=LC_MAC) / IP(src=PEER2, dst="192.168.1.200", id=8)
                / UDP(sport=1234, dport=9) / Raw(b"r" * 30))
        exp = back.copy()
        exp[Ether].src, exp[Ether].dst = LC_MAC, HOST_MAC
        self.send(PEERING, back)
        self.expect(exp, EXT)
        self.assertEqual(self.drop_count("no_route"), 1)
