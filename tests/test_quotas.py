"""Per-slice quotas and table room (issue: one slice must not exhaust what all
slices share). On live BMv2: one slice takes everything it may, and the other
slice keeps working; a slice allowed more than a switch table holds gets
ENORES from the SRM before the table is full, and the controller never hangs.
"""

from __future__ import annotations

import time

import pytest
from conftest import SLICE_A_MGMT, SLICE_B_MGMT, needs_bmv2

from controller import limits
from controller import pipeline as pl
from controller.p4rt import P4Type
from controller.srm import HELD_PORTS
from mininet_topo.livenode import SLICE_A, SLICE_B
from slices.client import Slice, SppError

pytestmark = needs_bmv2


def fastpath(s: Slice, bw=10_000, **kw):
    fp = s.alloc_fastpath(bw=bw, filters=kw.get("filters", 4), queues=1, buffers=8, stats=1)
    s.resrv_fpath_ifbw(fp["fpid"], ifn=1, bw=kw.get("reserve", 1000))
    return fp["fpid"]


def errors(results) -> list[str]:
    return [r.name for r in results if isinstance(r, SppError)]


def test_one_slice_cannot_take_what_all_share(controller, slices):
    a, b = slices
    # Fastpaths: a has its quota, then EQUOTA; b still gets one.
    fps = [fastpath(a) for _ in range(limits.SLICE_FASTPATHS)]
    with pytest.raises(SppError) as e:
        fastpath(a)
    assert e.value.name == "EQUOTA"
    fb = fastpath(b)
    # Meta-interfaces (zero-bandwidth ones too): the quota, then EQUOTA.
    out = a.batch(("alloc_udp_tunnel", {"fpid": fps[0], "ifn": 1, "bw": 0})
                  for _ in range(limits.SLICE_META_IFS + 5))
    assert errors(out) == ["EQUOTA"] * 5
    assert b.alloc_udp_tunnel(fb, ifn=1, bw=0)["mi"] == 1
    # Endpoints on the LC.
    out = a.batch(("alloc_endpoint", {"ifn": 1}) for _ in range(limits.SLICE_ENDPOINTS + 3))
    assert errors(out) == ["EQUOTA"] * 3
    assert b.alloc_endpoint(ifn=1)["eid"] == 1
    # Periodic jobs.
    out = a.batch(("create_periodic", {"fpid": fps[0], "index": 0, "interval": 1000,
                                       "size": 1}) for _ in range(limits.SLICE_PERIODIC + 2))
    assert errors(out) == ["EQUOTA"] * 2
    assert b.create_periodic(fb, index=0, interval=1000, size=1)["pid"] == 1
    # Freeing gives the quota back.
    a.free_fastpath(fps[-1])
    fastpath(a)


@pytest.mark.parametrize("resource", ["filters", "stats", "queues", "buffers", "sram", "dram",
                                      "bw"])
def test_one_slice_cannot_take_an_npe(controller, slices, resource):
    """No slice holds more than its share (half, by default) of any NPE
    resource, in one fastpath or in several: the other slice still gets its
    own half. (With the share at 100 %, the first slice's fastpath takes
    everything and the other gets ENORES.)"""
    a, b = slices
    cap = controller.ctl.srm.capacity["npe"]
    full = {"filters": cap.filters, "stats": cap.stats, "queues": cap.queues,
            "buffers": cap.buffers, "sram": cap.sram_words, "dram": cap.dram_bytes,
            "bw": cap.bandwidth_kbps}[resource]
    small = dict(bw=1_000, filters=1, queues=1, buffers=1, stats=1, sram=0, dram=0)
    half = full * limits.SLICE_NPE_SHARE // 100
    with pytest.raises(SppError) as e:
        a.alloc_fastpath(**{**small, resource: full})
    assert e.value.name == "EQUOTA", e.value
    # Two fastpaths cannot add up to more either.
    a.alloc_fastpath(**{**small, resource: half - 1})
    with pytest.raises(SppError) as e:
        a.alloc_fastpath(**{**small, resource: 2})
    assert e.value.name == "EQUOTA", e.value
    b.alloc_fastpath(**{**small, resource: full - half - 1})


def test_one_slice_cannot_reserve_an_interface(controller, slices):
    """Reservations: a slice may take its share (half, by default) of an
    interface's bandwidth, in one fastpath or several, and the other slice
    the rest."""
    a, b = slices
    link = a.get_ifattrs(1)["linkbw"]
    share = link * limits.SLICE_IF_SHARE // 100
    fa = [a.alloc_fastpath(bw=link, filters=1, queues=1, buffers=1, stats=1)["fpid"]
          for _ in range(2)]
    with pytest.raises(SppError) as e:
        a.resrv_fpath_ifbw(fa[0], ifn=1, bw=share + 1)
    assert e.value.name == "EQUOTA", e.value
    a.resrv_fpath_ifbw(fa[0], ifn=1, bw=share - 10)
    with pytest.raises(SppError) as e:
        a.resrv_fpath_ifbw(fa[1], ifn=1, bw=11)
    assert e.value.name == "EQUOTA", e.value
    fb = b.alloc_fastpath(bw=link, filters=1, queues=1, buffers=1, stats=1)["fpid"]
    b.resrv_fpath_ifbw(fb, ifn=1, bw=share)


def test_full_tables_are_refused_by_the_srm_not_by_the_switch(controller, slices):
    """A slice allowed more tunnels than the NPE holds fills the table through
    the SRM's ENORES, never a switch error, in bounded time per call; the other
    slice keeps working."""
    ctl = controller.ctl
    _, b = slices
    big = controller.create_slice("big", SLICE_A_MGMT, "10.0.2.40", 5, "02:00:00:00:02:40",
                                  quota={"fastpaths": 4, "meta_ifs": 60_000, "endpoints": 4,
                                         "periodic": 1})
    assert SLICE_A  # (slice host A's management address is reused: its own secret)
    s = Slice(controller.url, big, local_address=SLICE_A_MGMT, timeout=60)
    try:
        tunnels = ctl.npe_pipeline.size(P4Type.table, pl.Npe.TUNNEL)
        fp = fastpath(s)
        fb = fastpath(b)
        results, worst = [], 0.0
        while len(results) < tunnels + 10:
            t0 = time.monotonic()
            results += s.batch(("alloc_udp_tunnel", {"fpid": fp, "ifn": 1, "bw": 0})
                               for _ in range(1000))
            worst = max(worst, time.monotonic() - t0)
            if isinstance(results[-1], SppError):
                break
        names = set(errors(results))
        assert names == {"ENORES"}, names
        made = sum(1 for r in results if not isinstance(r, SppError))
        assert made + 2 == tunnels           # with the two fastpaths' return tunnels
        assert worst < 30
        # The other slice is served, and the switch holds exactly the database.
        b.write_fltr(fb, 1, key={}, mask={}, result={"action": "drop"})
        with pytest.raises(SppError) as e:
            b.alloc_udp_tunnel(fb, ifn=1, bw=0)
        assert e.value.name == "ENORES"
        from controller.translate import node_intent
        want = {(c.table, c.match, c.priority) for c in
                (ctl.scds["npe"].pipeline.canonical(x) for x in
                 node_intent(ctl.store, ctl.testbed.nodes[0])["npe"].entries)}
        have = {(e.table, e.match, e.priority) for e in ctl.scds["npe"].conn.read_entries()}
        assert want == have
    finally:
        s.close()


def test_ports_held_for_a_slice(controller, live_node):
    """The ports the administrator holds for a slice (the testbed's plan gives
    each slice's routers fixed meta-interface ports): another slice asking
    for one by number gets EEXIST, the SRM never hands one out, the slice
    itself gets it; deleting the slice frees it. The whole held range (the
    plan's ports of slices not yet added too) is nobody's to ask for by
    number unless held for them. Before, any slice could take another's
    planned ports, and `slice add` then failed."""
    held = [{"ifn": 1, "port": 20000}, {"ifn": 1, "port": 20002}]
    sa = controller.create_slice("a", SLICE_A_MGMT, SLICE_A, 2, live_node.slice_macs["A"],
                                 ports=held)
    sb = controller.create_slice("b", SLICE_B_MGMT, SLICE_B, 3, live_node.slice_macs["B"])
    rep = controller.admin("POST", "/admin/slices", json={
        "name": "c", "node": "node1", "mgmt_addr": "10.0.9.9", "data_addr": "10.0.2.77",
        "lc_port": 7, "mac": "02:00:00:00:02:77", "ports": [{"ifn": 1, "port": 20002}]})
    assert rep.json()["error"] == "EEXIST"                 # held for a already
    a = Slice(controller.url, sa, local_address=SLICE_A_MGMT)
    b = Slice(controller.url, sb, local_address=SLICE_B_MGMT)
    try:
        fa, fb = fastpath(a), fastpath(b)
        with pytest.raises(SppError) as e:
            b.alloc_udp_tunnel(fb, ifn=1, bw=0, port=20002)
        assert e.value.name == "EEXIST" and "held" in e.value.message
        # Nor any other port of the held range (the plan's future slices'),
        # and the SRM hands out none of them.
        with pytest.raises(SppError) as e:
            b.alloc_udp_tunnel(fb, ifn=1, bw=0, port=20003)
        assert e.value.name == "EPERM"
        got = [b.alloc_udp_tunnel(fb, ifn=1, bw=0)["port"] for _ in range(4)]
        assert not set(got) & set(HELD_PORTS)
        assert a.alloc_udp_tunnel(fa, ifn=1, bw=0, port=20002)["port"] == 20002
        a.close()
        assert controller.admin("DELETE", "/admin/slices/node1/a").status_code == 200
        with pytest.raises(SppError) as e:                  # freed, but not b's
            b.alloc_udp_tunnel(fb, ifn=1, bw=0, port=20000)
        assert e.value.name == "EPERM"
    finally:
        a.close()
        b.close()
