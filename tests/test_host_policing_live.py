"""A slice host's own traffic is policed at the LC to its slice's quota
(host_pps, host_kbps), through the controller on live BMv2 switches
(adversarial review F17, F18).

A slice host is root in its own namespace: it can send anything down its
link, not only through its fastpaths, to end hosts or to any port of an
NPE's address. The LC meters every packet from its port; the excess is
dropped there and counted (`host_rate`), before it takes a link or costs
the NPE anything, and the meters come back when the LC restarts.
"""

from __future__ import annotations

import json

from conftest import SLICE_A_MGMT, SLICE_B_MGMT, monitor_until_back, needs_bmv2
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from controller import pipeline as pl
from mininet_topo.livenode import END_HOST, GPE_MAC, GW, NPE_ADDR, SLICE_A, SLICE_B

pytestmark = needs_bmv2

A_PPS = 100                     # slice A's packets/s (its bytes: the default 10 Mb/s)
B_KBPS = 400                    # slice B's kb/s (its packets: the default 2,000/s)


def flood(live_node, send_if, frames, pps, extra=(), repeat=1) -> dict:
    """Send ``frames`` from a slice host's end at ``pps`` (one socket; paced,
    so that the LC's software switch receives them all), and ``extra``
    (another slice host's frames, (iface, frame)) halfway; what arrived at
    the end host and at the NPE, and how long the sending took. ``frames`` are
    sent ``repeat`` times over."""
    code = f"""
        import json, time
        from scapy.arch.linux import L2Socket
        frames = [bytes.fromhex(h) for h in {json.dumps([f.hex() for f in frames])}] * {repeat}
        extra = [(i, bytes.fromhex(h)) for i, h in {json.dumps([(i, f.hex()) for i, f in extra])}]
        sniffers = [AsyncSniffer(iface=i, store=True) for i in ("ext0t", "npe0")]
        for x in sniffers:
            x.start()
        time.sleep(0.3)
        s = L2Socket(iface={send_if!r})
        t0 = time.monotonic()
        for n, f in enumerate(frames):
            while time.monotonic() < t0 + n / {pps}:
                pass
            s.send(Raw(f))
            if n == len(frames) // 2:
                for i, x in extra:
                    sendp(Raw(x), iface=i)
        took = time.monotonic() - t0
        time.sleep(1.0)
        got = [p for x in sniffers for p in x.stop()]
        print(json.dumps({{"took": took, "got": [bytes(p).hex() for p in got]}}))
    """
    out = json.loads(live_node.scapy(code, timeout=60).strip().splitlines()[-1])
    got = [Ether(bytes.fromhex(h)) for h in out["got"]]
    return {"took": out["took"], "got": [p for p in got if IP in p and p[IP].dst in
                                         (END_HOST, NPE_ADDR) and UDP in p]}


def quota_slices(controller, live_node):
    controller.create_slice("a", SLICE_A_MGMT, SLICE_A, 2, live_node.slice_macs["A"],
                            quota={"host_pps": A_PPS})
    controller.create_slice("b", SLICE_B_MGMT, SLICE_B, 3, live_node.slice_macs["B"],
                            quota={"host_kbps": B_KBPS})


def lc_drops(controller, reason) -> int:
    return controller.ctl.scds["lc"].conn.read_counter(pl.Lc.DROPS, pl.LC_DROP[reason]).packets


def npe_unknown(controller) -> int:
    return controller.ctl.scds["npe"].conn.read_counter(
        pl.Npe.DROPS_IN, pl.NPE_DROP["unknown_tunnel"]).packets


def frame(mac, src, dst, dport, size) -> bytes:
    return bytes(Ether(src=mac, dst=GPE_MAC) / IP(src=src, dst=dst) / UDP(sport=7000, dport=dport)
                 / Raw(b"x" * size))


def test_a_slice_hosts_packet_flood_is_held_to_its_quota(controller, live_node):
    """Slice A floods small packets at an end host and at the NPE's address
    (any port: not a return endpoint of its): what passes is A's host_pps
    (and its burst), the rest is dropped at the LC, counted, and never
    reaches the NPE. Slice B's frames meanwhile all pass."""
    quota_slices(controller, live_node)
    n = 800
    frames = [frame(live_node.slice_macs["A"], SLICE_A, END_HOST if i % 2 else NPE_ADDR,
                    9000 + i % 50, 18) for i in range(n)]
    b_frames = [("sliceB", frame(live_node.slice_macs["B"], SLICE_B, END_HOST, 9, 18))] * 5
    drops0, npe0 = lc_drops(controller, "host_rate"), npe_unknown(controller)
    out = flood(live_node, "sliceA", frames, 2_000, b_frames)
    dropped = lc_drops(controller, "host_rate") - drops0
    # What passes: the burst (A_PPS // 10, at least 8) and the rate while it
    # lasted (0.5 s for the switch to catch up), with 20 % to spare.
    bound = 1.2 * (max(8, A_PPS // 10) + A_PPS * (out["took"] + 0.5))
    a_got = [p for p in out["got"] if p[IP].src == SLICE_A]
    b_got = [p for p in out["got"] if p[IP].src == SLICE_B]
    to_npe = [p for p in a_got if p[IP].dst == NPE_ADDR]
    assert 0 < len(to_npe) < len(a_got) <= bound, (len(a_got), bound, out["took"])
    assert len(a_got) + dropped <= n and dropped >= n // 2, (len(a_got), dropped)
    assert npe_unknown(controller) - npe0 == len(to_npe)
    assert len(b_got) == 5


def test_a_slice_hosts_byte_flood_is_held_to_its_quota(controller, live_node):
    """Slice B floods full frames, well within its packet quota: its byte
    quota (host_kbps) holds it."""
    quota_slices(controller, live_node)
    n, size = 400, 1400
    frames = [frame(live_node.slice_macs["B"], SLICE_B, END_HOST, 9, size)]
    drops0 = lc_drops(controller, "host_rate")
    out = flood(live_node, "sliceB", frames, 1_000, repeat=n)
    dropped = lc_drops(controller, "host_rate") - drops0
    length = len(frames[0])
    rate = B_KBPS * 1000 // 8
    bound = 1.2 * (max(2 * 1514, rate // 10) + rate * (out["took"] + 0.5)) / length
    got = [p for p in out["got"] if p[IP].src == SLICE_B]
    assert 0 < len(got) <= bound, (len(got), bound, out["took"])
    assert len(got) + dropped <= n and dropped >= n // 2, (len(got), dropped)


def test_a_slice_hosts_arp_and_non_ipv4_floods_are_held_to_its_quota(controller, live_node):
    """ARP requests and non-IPv4 frames cost the LC as much as any packet;
    they went past the host meters (review 19, R19-4: 400 of 400 non-IPv4
    frames processed, counted `not_ipv4`, with host_pps 50). Now slice A's
    are held to its host_pps like its IPv4 packets: the LC answers or
    drops as many as the quota lets through, the rest is `host_rate`."""
    quota_slices(controller, live_node)
    mac = live_node.slice_macs["A"]
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac)
                / ARP(op=1, hwsrc=mac, psrc=SLICE_A, pdst=GW))
    other = bytes(Ether(src=mac, dst=GPE_MAC, type=0x86DD) / Raw(b"6" * 46))
    n = 400
    before = {r: lc_drops(controller, r) for r in ("host_rate", "not_ipv4", "arp")}
    out = flood(live_node, "sliceA", [arp, other], 1_000, repeat=n // 2)
    seen = {r: lc_drops(controller, r) - before[r] for r in before}
    bound = 1.2 * (max(8, A_PPS // 10) + A_PPS * (out["took"] + 0.5))
    assert seen["host_rate"] >= n - bound and seen["not_ipv4"] <= bound / 2, (seen, bound)


def test_the_host_meters_come_back_when_the_lc_restarts(controller, live_node):
    """The slice ports' meters are part of what the controller puts back on
    a switch that restarted empty (translate.node_intent)."""
    quota_slices(controller, live_node)
    ctl = controller.ctl
    want = {(m, p): ctl.scds["lc"].conn.read_meter(m, p)
            for m in (pl.Lc.HOST_PACKETS, pl.Lc.HOST_BYTES) for p in (2, 3)}
    assert want == {(pl.Lc.HOST_PACKETS, 2): (A_PPS, 10),
                    (pl.Lc.HOST_PACKETS, 3): (2000, 200),
                    (pl.Lc.HOST_BYTES, 2): (1_250_000, 125_000),
                    (pl.Lc.HOST_BYTES, 3): (50_000, 5_000)}
    live_node.stop_switch("lc")
    live_node.start_switch("lc")
    monitor_until_back(ctl, "lc")
    assert {k: ctl.scds["lc"].conn.read_meter(*k) for k in want} == want
