"""PTF tests of npe.p4: one test per feature, negative cases included.

Scenario: NPE port 0 leads to the line card (default route), port 1 to the
slice hosts' network (10.0.2.0/24), so the tests see which path a packet took.
"""

import time

from base import SwitchTest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller.pipeline import (
    LOOKUP_META_IF,
    LOOKUP_SUBSTRATE,
    NPE_DROP,
    FilterResult,
    MetaIfEncap,
    Npe,
    Partition,
    lc_port_stamp,
    npe_fastpath,
    npe_filter,
    npe_local_addr,
    npe_meta_if_tunnel,
    npe_queue_params,
    npe_route,
    npe_slice_tunnel,
)
from slices import metanet as mn

NPE_MAC, LC_MAC, LC_SLICE_MAC = "00:00:00:00:01:01", "00:00:00:00:01:00", "00:00:00:00:01:02"
NPE_ADDR = "10.0.1.2"
IF1 = "192.168.1.1"                       # a non-peering interface of the node
IF2, PEER2 = "192.168.2.1", "192.168.2.2"  # a peering interface and its peer
END1, NH = "192.168.1.100", "192.168.1.200"
SLICE = "10.0.2.10"
LD_PORT, EXC_PORT, RET_PORT = 5000, 5001, 40000
TO_LC, TO_SLICES = 0, 1
SLICE_LC_PORT = 2                         # the slice host's port on the LC


class Fastpath:
    """A fastpath as the SCD installs it: partition, tunnels, endpoints; its
    filters carry their output meta-interface's encapsulation."""

    def __init__(self, fp=7, local=1, stats_base=100, stats_count=16, queue_base=20,
                 queue_count=4, mi_ports=None, slice_addr=SLICE, ret_port=RET_PORT,
                 ld_port=LD_PORT, exc_port=EXC_PORT, lc_port=SLICE_LC_PORT):
        self.fp, self.local = fp, local
        self.stats_base, self.queue_base = stats_base, queue_base
        self.mi_ports = mi_ports or {1: 20001, 2: 20002}
        self.slice_addr, self.ret_port = slice_addr, ret_port
        self.ld_port, self.exc_port = ld_port, exc_port
        self.part = Partition(fp, stats_base, stats_count, queue_base, queue_count)
        self.entries = [npe_fastpath(fp, local, slice_addr, ld_port, exc_port, NPE_ADDR, ret_port),
                        npe_slice_tunnel(self.part, NPE_ADDR, ret_port, slice_addr, lc_port)]
        self.encaps = {}
        self.entries += [self.meta_if(mi, IF1, port) for mi, port in self.mi_ports.items()]

    def meta_if(self, mi, addr, port, peer_addr=None):
        """A meta-interface's tunnel entry; the filters forwarding to it carry
        its encapsulation (as the controller copies it, translate.meta_if_encap)."""
        self.encaps[mi] = MetaIfEncap(addr, port, peer_addr)
        return npe_meta_if_tunnel(self.part, mi, addr, port, peer_addr or 0)

    def filter(self, fid, result, lookup=LOOKUP_META_IF, **key_masks):
        """A filter; keyword args are field=(value, mask)."""
        key = {f: v for f, (v, _) in key_masks.items()}
        mask = {f: m for f, (_, m) in key_masks.items()}
        return npe_filter(self.fp, fid, lookup, key, mask, result,
                          self.encaps.get(result.meta_if))


def fwd(mi=2, nh=NH, port=30000, queue=0, stats=0):
    return FilterResult("forward", stats=stats, meta_if=mi, nh_addr=nh, nh_port=port, queue=queue)


ALL = 0xFFFFFFFF


def inner(dst="10.1.2.3", src="10.9.0.1", ttl=64, payload=b"x" * 32, **kw):
    return IP(src=src, dst=dst, ttl=ttl, id=77, **kw) / UDP(sport=1111, dport=2222) / Raw(payload)


def tunnel(datagram, dport=20001, src=END1, dst=IF1, sport=45000, ident=9):
    return (Ether(dst=NPE_MAC, src=LC_MAC) / IP(src=src, dst=dst, id=ident)
            / UDP(sport=sport, dport=dport, chksum=0) / datagram)


def forwarded(datagram, src_port=20002, dst=NH, dport=30000, src=IF1, ident=9):
    """What the NPE sends: new outer header, inner TTL - 1 and checksum recomputed."""
    d = IP(bytes(datagram))
    d.ttl -= 1
    del d.chksum
    return (Ether(dst=LC_MAC, src=NPE_MAC) / IP(src=src, dst=dst, id=ident)
            / UDP(sport=src_port, dport=dport, chksum=0) / IP(bytes(d)))


def to_slice(datagram, kind, reason, meta_if=1, tsrc=END1, tsport=45000, dport=EXC_PORT,
             local=1, ident=9, raw=False):
    payload = Raw(bytes(datagram)) if raw else datagram
    return (Ether(dst=LC_SLICE_MAC, src=NPE_MAC) / IP(src=NPE_ADDR, dst=SLICE, id=ident)
            / UDP(sport=RET_PORT, dport=dport, chksum=0)
            / mn.MetaNet(kind=kind, reason=reason, fastpath=local, meta_if=meta_if,
                         tunnel_src_addr=tsrc, tunnel_src_port=tsport) / payload)


def from_slice_frame(datagram, md=None, src=SLICE, key=True, lc_port=SLICE_LC_PORT,
                     ret_port=RET_PORT, stamp=None):
    """A datagram the slice host sends back to its fastpath, as the LC hands
    it to the NPE: source MAC stamped with the slice host's LC port."""
    md = md if md is not None else mn.MetaNet(kind=mn.FROM_SLICE)
    key_hdr = mn.FwdKey(dst_addr=NH, src_port=20002, dst_port=30000) if key else Raw(b"")
    mac = stamp or ":".join(f"{b:02x}" for b in lc_port_stamp(lc_port).to_bytes(6, "big"))
    return (Ether(dst=NPE_MAC, src=mac) / IP(src=src, dst=NPE_ADDR, id=9)
            / UDP(sport=6000, dport=ret_port, chksum=0) / md / key_hdr / datagram)


class NpeTest(SwitchTest):
    program = "npe"
    device = 0

    def setUp(self):
        super().setUp()
        self.sw.insert([npe_route("0.0.0.0", 0, TO_LC, NPE_MAC, LC_MAC),
                        npe_route("10.0.2.0", 24, TO_SLICES, NPE_MAC, LC_SLICE_MAC),
                        npe_local_addr(NPE_ADDR)])

    def install(self, *entries):
        self.sw.insert([e for group in entries for e in (group if isinstance(group, list)
                                                          else [group])])

    def drop_count(self, reason):
        counter = Npe.DROPS_OUT if reason == "queue_full" else Npe.DROPS_IN
        return self.drops(counter, NPE_DROP[reason])


class UnknownTunnel(NpeTest):
    """A packet for an endpoint no meta-interface has is dropped and counted;
    so is anything that is not a tunnel packet."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd()))
        self.send(TO_LC, tunnel(inner(), dport=29999))
        self.send(TO_LC, tunnel(inner(), dst="192.168.9.9"))
        self.send(TO_LC, Ether(dst=NPE_MAC) / IP(src=END1, dst=IF1) / ICMP())
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("unknown_tunnel"), 2)
        self.assertEqual(self.drop_count("not_tunnel"), 1)


class Forward(NpeTest):
    """Decap, filter, IPv4 option (TTL, incremental checksum), encap, route."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(), dst_addr=("10.1.0.0", 0xFFFF0000)))
        for d in (inner(), inner(ttl=2, payload=b"y" * 300),
                  inner(options=[IPOption_NOP()] * 4),        # IHL 6: options kept
                  IP(src="10.9.0.1", dst="10.1.0.9", id=5) / TCP(sport=80, dport=8080)):
            self.send(TO_LC, tunnel(d))
            self.expect(forwarded(d), TO_LC)
        self.expect_nothing_else()


class FilterPrecedence(NpeTest):
    """Overlapping filters: the lower filter ID wins, whatever the prefix length
    or the order of installation."""

    def runTest(self):
        fp = Fastpath(mi_ports={1: 20001, 2: 20002, 3: 20003})
        # /24 with ID 3 beats /16 with ID 5; then /8 with ID 1 beats both.
        self.install(fp.entries,
                     fp.filter(5, fwd(mi=2), dst_addr=("10.1.0.0", 0xFFFF0000)),
                     fp.filter(3, fwd(mi=3), dst_addr=("10.1.2.0", 0xFFFFFF00)))
        d1, d2 = inner(dst="10.1.2.1"), inner(dst="10.1.3.1")
        self.send(TO_LC, tunnel(d1))
        self.expect(forwarded(d1, src_port=20003), TO_LC)
        self.send(TO_LC, tunnel(d2))
        self.expect(forwarded(d2, src_port=20002), TO_LC)
        self.install(fp.filter(1, fwd(mi=1), dst_addr=("10.0.0.0", 0xFF000000)))
        self.send(TO_LC, tunnel(d1))
        self.expect(forwarded(d1, src_port=20001), TO_LC)
        self.expect_nothing_else()


class FastpathIsolation(NpeTest):
    """Two fastpaths with identical filters, queue and stats numbers, on
    different meta-interfaces: neither sees the other's packets or counts."""

    def runTest(self):
        a = Fastpath(fp=7, local=1, stats_base=100, queue_base=20,
                     mi_ports={1: 20001, 2: 20002})
        b = Fastpath(fp=8, local=1, stats_base=116, queue_base=24,
                     mi_ports={1: 21001, 2: 21002}, ret_port=40001)
        same_filter = dict(dst_addr=("10.1.0.0", 0xFFFF0000))
        self.install(a.entries, b.entries,
                     a.filter(1, fwd(stats=2), **same_filter),
                     b.filter(1, fwd(stats=2), **same_filter))
        d = inner()
        for _ in range(3):
            self.send(TO_LC, tunnel(d, dport=20001))
            self.expect(forwarded(d, src_port=20002), TO_LC)
        self.send(TO_LC, tunnel(d, dport=21001))
        self.expect(forwarded(d, src_port=21002), TO_LC)
        self.expect_nothing_else()
        self.assertEqual(self.sw.read_counter(Npe.STATS_PRE, 100 + 2).packets, 3)
        self.assertEqual(self.sw.read_counter(Npe.STATS_PRE, 116 + 2).packets, 1)
        # A's filter key with B's meta-interface number gives B nothing of A's.
        self.assertEqual(sum(c.packets for c in self.sw.read_counters(Npe.STATS_PRE).values()), 4)


class CountersExact(NpeTest):
    """N packets of known size: the four counters of the stats index are exact
    (bytes are BMv2's: the frame as the NPE received it)."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(stats=5)),
                     fp.filter(2, FilterResult("local", stats=6), protocol=(6, 0xFF)))
        n, d = 7, inner(payload=b"z" * 100)
        frame = tunnel(d)
        for _ in range(n):
            self.send(TO_LC, frame)
            self.expect(forwarded(d), TO_LC)
        self.expect_nothing_else()
        pre = self.sw.read_counter(Npe.STATS_PRE, 100 + 5)
        post = self.sw.read_counter(Npe.STATS_POST, 100 + 5)
        self.assertEqual((pre.packets, pre.bytes), (n, n * len(frame)))
        self.assertEqual((post.packets, post.bytes), (n, n * len(frame)))
        self.assertEqual(self.sw.read_counter(Npe.STATS_PRE, 100 + 6).packets, 0)


class TtlExpiry(NpeTest):
    """TTL 1 (or 0) on a forwarding match goes to the exception endpoint with a
    meta-net header naming fastpath, meta-interface, reason and tunnel source."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(stats=3)))
        for ttl in (1, 0):
            d = inner(ttl=ttl)
            self.send(TO_LC, tunnel(d, sport=45123))
            self.expect(to_slice(d, mn.EXCEPTION, mn.TTL_EXPIRED, tsport=45123), TO_SLICES)
        self.expect_nothing_else()
        # Counted as a filter hit, never as having left a queue.
        self.assertEqual(self.sw.read_counter(Npe.STATS_PRE, 103).packets, 2)
        self.assertEqual(self.sw.read_counter(Npe.STATS_POST, 103).packets, 0)


class NoFilter(NpeTest):
    """A miss goes to the exception endpoint (reason no_filter)."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(), dst_addr=("10.1.0.0", 0xFFFF0000)))
        d = inner(dst="172.16.0.1")
        self.send(TO_LC, tunnel(d, dport=20002))
        self.expect(to_slice(d, mn.EXCEPTION, mn.NO_FILTER, meta_if=2), TO_SLICES)
        self.expect_nothing_else()


class Malformed(NpeTest):
    """Malformed inner datagrams are exceptions (reason malformed), passed on
    byte for byte: bad checksum, bad IHL, truncated, not IPv4, and a meta-net
    header arriving from outside."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd()))
        good = bytes(inner())
        bad_csum = bytearray(good)
        bad_csum[10] ^= 0xFF
        bad_ihl = bytearray(good)
        bad_ihl[0] = 0x44
        truncated = good[:40]                         # total_len says 60
        ipv6ish = b"\x60" + good[1:]
        spoofed = bytes(mn.MetaNet(kind=mn.FROM_SLICE) / mn.FwdKey(dst_addr=NH) / inner())
        for raw in (bytes(bad_csum), bytes(bad_ihl), truncated, ipv6ish, spoofed):
            self.send(TO_LC, tunnel(Raw(raw)))
            self.expect(to_slice(Raw(raw), mn.EXCEPTION, mn.MALFORMED, raw=True), TO_SLICES)
        self.expect_nothing_else()


class LocalDelivery(NpeTest):
    """A local-delivery result goes to the slice's local-delivery endpoint."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, FilterResult("local", stats=1),
                                           dst_addr=("10.1.2.3", ALL)))
        d = inner()
        self.send(TO_LC, tunnel(d))
        self.expect(to_slice(d, mn.LOCAL_DELIVERY, mn.NONE, dport=LD_PORT), TO_SLICES)
        self.expect_nothing_else()
        self.assertEqual(self.sw.read_counter(Npe.STATS_POST, 101).packets, 1)


class SubstrateFilter(NpeTest):
    """A datagram the slice sends back with a forwarding key is forwarded by a
    substrate-only filter (lookup type 1) matching the key; meta-net fields do
    not matter. Without a key, from another host, or without a matching
    substrate-only filter it is dropped and counted."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries,
                     # A general filter matching everything must not be used.
                     fp.filter(1, FilterResult("drop")),
                     fp.filter(2, fwd(mi=2, nh="0.0.0.0", port=0), lookup=LOOKUP_SUBSTRATE,
                               src_port=(20002, 0xFFFF)))
        # The result's next hop comes from the filter; the key chose the filter.
        self.sw.modify([fp.filter(2, fwd(mi=2, nh=NH, port=30000), lookup=LOOKUP_SUBSTRATE,
                                  src_port=(20002, 0xFFFF))])
        d = inner()

        def from_slice(md, src=SLICE, key=True):
            return from_slice_frame(d, md, src=src, key=key)

        self.send(TO_SLICES, from_slice(mn.MetaNet(kind=mn.FROM_SLICE, fastpath=999, meta_if=77)))
        self.expect(forwarded(d), TO_LC)
        self.send(TO_SLICES, from_slice(mn.MetaNet(kind=mn.FROM_SLICE), src="10.0.2.11"))
        self.send(TO_SLICES, from_slice(mn.MetaNet(kind=mn.LOCAL_DELIVERY), key=False))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("unknown_tunnel"), 1)
        self.assertEqual(self.drop_count("bad_slice_packet"), 1)
        self.sw.delete([fp.filter(2, fwd(mi=2, nh=NH, port=30000), lookup=LOOKUP_SUBSTRATE,
                                  src_port=(20002, 0xFFFF))])
        self.send(TO_SLICES, from_slice(mn.MetaNet(kind=mn.FROM_SLICE)))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("no_substrate_filter"), 1)


class MeterOverRate(NpeTest):
    """Traffic over a queue's rate is dropped by the queue's meter; another
    queue of the same fastpath is not affected."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(queue=1), protocol=(17, 0xFF)),
                     fp.filter(2, fwd(queue=2), protocol=(6, 0xFF)))
        d = inner(payload=b"m" * 150)
        size = len(tunnel(d))
        # 100 bytes/s, one packet of burst: the first passes, the next ones,
        # sent within a second, are red.
        self.sw.set_meter(Npe.QUEUE_RATE, 20 + 1, rate=100, burst=size)
        self.assertEqual(self.sw.read_meter(Npe.QUEUE_RATE, 20 + 1)[0], 100)
        self.send(TO_LC, tunnel(d), count=10)
        got = [p for port, p in self.receive_all() if port == TO_LC]
        self.assertEqual(len(got), 1)
        self.assertEqual(self.drop_count("meter"), 9)
        t = IP(src="10.9.0.1", dst="10.1.2.3", id=5) / TCP(sport=80, dport=8080)
        for _ in range(5):
            self.send(TO_LC, tunnel(t))
            self.expect(forwarded(t), TO_LC)
        self.expect_nothing_else()


class PartitionBounds(NpeTest):
    """A result naming a stats index or queue outside the fastpath's partition
    is refused by the data plane (the packet is dropped, and counted), so it
    can never touch the next fastpath's counters or meters."""

    def runTest(self):
        fp = Fastpath(stats_count=16, queue_count=4)
        self.install(fp.entries, fp.filter(1, fwd(stats=16), protocol=(17, 0xFF)),
                     fp.filter(2, fwd(queue=4), protocol=(6, 0xFF)))
        self.send(TO_LC, tunnel(inner()))
        self.send(TO_LC, tunnel(IP(src="10.9.0.1", dst="10.1.2.3") / TCP()))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("bad_stats"), 1)
        self.assertEqual(self.drop_count("bad_queue"), 1)
        self.assertEqual(self.sw.read_counter(Npe.STATS_PRE, 116).packets, 0)


class PeeringMetaIf(NpeTest):
    """A peering meta-interface only accepts its peer, and always sends to it."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries,
                     fp.meta_if(3, IF2, 20003, peer_addr=PEER2),
                     fp.filter(1, fwd(mi=3, nh="1.2.3.4", port=30003), meta_if=(1, 0xFFFF)),
                     fp.filter(2, fwd(mi=1, port=30001), meta_if=(3, 0xFFFF)))
        d = inner()
        self.send(TO_LC, tunnel(d, dport=20001))
        self.expect(forwarded(d, src=IF2, src_port=20003, dst=PEER2, dport=30003), TO_LC)
        self.send(TO_LC, tunnel(d, src=PEER2, dst=IF2, dport=20003))
        self.expect(forwarded(d, src_port=20001, dport=30001), TO_LC)
        self.send(TO_LC, tunnel(d, src="192.168.2.99", dst=IF2, dport=20003))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("unknown_tunnel"), 1)


class QueueThreshold(NpeTest):
    """Queue occupancy is observable (queue_len register) and a queue over its
    threshold drops. The port FIFO is slowed down over Thrift so that a
    backlog builds."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(queue=2, stats=4)),
                     npe_queue_params(20 + 2, 3))
        self.thrift.set_queue_rate(TO_LC, 20)
        try:
            d = inner()
            self.send(TO_LC, tunnel(d), count=12)
            time.sleep(0.2)
            depth = self.thrift.register_read(Npe.QUEUE_LEN, 20 + 2)
            got = [p for port, p in self.receive_all(timeout=2) if port == TO_LC]
        finally:
            self.thrift.set_queue_rate(TO_LC, 0)
        full = self.drop_count("queue_full")
        self.assertGreater(depth, 0)
        self.assertGreater(full, 0)
        self.assertEqual(len(got) + full, 12)
        post = self.sw.read_counter(Npe.STATS_POST, 104).packets
        self.assertEqual(post, len(got))
        self.assertEqual(self.sw.read_counter(Npe.STATS_PRE, 104).packets, 12)



class ReturnPathPort(NpeTest):
    """A slice's return path takes only frames the LC stamped with the slice
    host's own LC port: the same datagram, key and source address stamped with
    another port (another slice host's), or not stamped at all (as from an
    interface or a peering link), is dropped and counted."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(2, fwd(mi=2, nh=NH, port=30000),
                                           lookup=LOOKUP_SUBSTRATE, src_port=(20002, 0xFFFF)))
        d = inner()
        self.send(TO_SLICES, from_slice_frame(d))
        self.expect(forwarded(d), TO_LC)
        self.send(TO_SLICES, from_slice_frame(d, lc_port=SLICE_LC_PORT + 1))
        self.send(TO_LC, from_slice_frame(d, stamp=LC_MAC))
        self.send(TO_SLICES, from_slice_frame(d, stamp=LC_SLICE_MAC))
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("not_slice_port"), 3)


class NoStats(NpeTest):
    """A fastpath allocated without stats (stats=0) forwards and delivers
    locally, uncounted: its filters' stats index 0 names no counter."""

    def runTest(self):
        fp = Fastpath(stats_count=0)
        self.install(fp.entries, fp.filter(1, fwd(stats=0), protocol=(17, 0xFF)),
                     fp.filter(2, FilterResult("local", stats=0), protocol=(6, 0xFF)))
        d = inner()
        t = IP(src="10.9.0.1", dst="10.1.2.3", id=5) / TCP(sport=80, dport=8080)
        for _ in range(3):
            self.send(TO_LC, tunnel(d))
            self.expect(forwarded(d), TO_LC)
        self.send(TO_LC, tunnel(t))
        self.expect(to_slice(t, mn.LOCAL_DELIVERY, mn.NONE, dport=LD_PORT), TO_SLICES)
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("bad_stats"), 0)
        for counter in (Npe.STATS_PRE, Npe.STATS_POST):
            self.assertEqual(sum(c.packets for c in self.sw.read_counters(counter).values()), 0)


def passed(test, port=TO_LC):
    return len([p for q, p in test.receive_all() if q == port])


class QueueRates(NpeTest):
    """Two fastpaths' queues leaving by the same egress port, each policed at
    its own rate: exact pass and drop counts, first the burst, then what each
    rate refills in 1.5 s. Neither queue's excess takes from the other."""

    def runTest(self):
        a = Fastpath(fp=7, stats_base=100, queue_base=20, mi_ports={1: 20001, 2: 20002})
        b = Fastpath(fp=8, stats_base=116, queue_base=24, mi_ports={1: 21001, 2: 21002},
                     ret_port=40001)
        self.install(a.entries, b.entries, a.filter(1, fwd(queue=1)),
                     b.filter(1, fwd(queue=3)))
        d = inner(payload=b"q" * 200)
        size = len(tunnel(d))
        # A: one packet per second, a burst of 3; B: two per second, a burst of 5.
        self.sw.set_meter(Npe.QUEUE_RATE, 20 + 1, rate=size, burst=3 * size)
        self.sw.set_meter(Npe.QUEUE_RATE, 24 + 3, rate=2 * size, burst=5 * size)
        got, t_sent = {}, 0.0
        for phase in (1, 2):
            time.sleep(max(0.0, t_sent + 1.5 - time.monotonic()))
            self.send(TO_LC, tunnel(d, dport=20001), count=10)
            self.send(TO_LC, tunnel(d, dport=21001), count=10)
            t_sent = time.monotonic()
            out = [UDP(p[34:]).sport for port, p in self.receive_all() if port == TO_LC]
            got[("a", phase)], got[("b", phase)] = out.count(20002), out.count(21002)
        self.assertEqual(got, {("a", 1): 3, ("b", 1): 5, ("a", 2): 1, ("b", 2): 3})
        self.assertEqual(self.drop_count("meter"), 40 - 12)


class FastpathBandwidth(NpeTest):
    """The fastpath's own meter bounds everything it sends, whatever its
    queues: forwarded traffic through a queue with no rate of its own, and
    traffic to the slice host (exceptions). Over it: dropped and counted."""

    def runTest(self):
        fp = Fastpath()
        self.install(fp.entries, fp.filter(1, fwd(queue=1), protocol=(17, 0xFF)))
        d = inner(payload=b"f" * 200)
        size = len(tunnel(d))
        self.assertIsNone(self.sw.read_meter(Npe.QUEUE_RATE, 20 + 1))
        self.sw.set_meter(Npe.FASTPATH_RATE, fp.fp, rate=size // 10, burst=4 * size)
        self.send(TO_LC, tunnel(d), count=10)
        self.assertEqual(passed(self), 4)
        # A miss goes to the slice host: the same meter, now empty.
        self.send(TO_LC, tunnel(IP(src="10.9.0.1", dst="10.1.2.3") / TCP()), count=3)
        self.expect_nothing_else()
        self.assertEqual(self.drop_count("fastpath_rate"), 6 + 3)
        self.assertEqual(self.drop_count("meter"), 0)
