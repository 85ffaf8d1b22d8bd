"""Slice API semantics found on review, on live BMv2: periodic push as the SPP
does it (entries to the slice's port, dispatched to the callable named by
the callback), lookup_fltr answering exactly what the NPE matches for
substrate-only keys, free_udp_tunnel refusing while filters are keyed on the
meta-interface, and the fastpath's two sockets."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import SLICE_A_MGMT, needs_bmv2
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from test_controller_live import router

from mininet_topo.livenode import END_HOST, IF1, LC_IF1_MAC
from slices.client import PushReceiver, SppError, fastpath_sockets

pytestmark = needs_bmv2


def frames(mi_port: int, n: int) -> list[bytes]:
    inner = IP(src="10.9.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"p" * 64)
    return [bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                  / UDP(sport=45000, dport=mi_port, chksum=0) / inner)] * n


def test_periodic_push_calls_the_registered_callable(controller, slices, live_node):
    a, _ = slices
    fp, mi1, _ = router(a)
    got: dict[str, list] = {"first": [], "second": []}
    with PushReceiver(port=0, address=SLICE_A_MGMT, controller=controller.url) as rx:
        rx.register("first", got["first"].append)
        rx.register("second", got["second"].append)
        stop = threading.Event()
        t = threading.Thread(target=rx.serve, args=(stop, 0.1), daemon=True)
        t.start()
        try:
            pid = a.create_periodic(fp["fpid"], index=1, interval=100, size=4, model="push",
                                    port=rx.port, callback="first")["pid"]
            n = 7
            live_node.send_and_capture("ext0t", frames(mi1["port"], n), "ext0t")
            deadline = time.monotonic() + 5
            while not any(e.get("pre_packets") == n for e in got["first"]):
                assert time.monotonic() < deadline, got["first"][-3:]
                time.sleep(0.05)
            # What the callable got is what the switch counted.
            assert a.read_stats(fp["fpid"], 1)["pre_packets"] == n
            e = got["first"][-1]
            assert (e["pid"], e["fpid"], e["index"], e["callback"]) == (pid, fp["fpid"], 1,
                                                                        "first")
            seqs = [x["seq"] for x in got["first"]]
            assert seqs == sorted(seqs)
            # set_callback: later entries go to the other callable.
            a.set_callback(pid, "second")
            deadline = time.monotonic() + 5
            while not got["second"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert got["second"][-1]["pre_packets"] == n
            # An unknown name is reported, not ignored.
            a.set_callback(pid, "nobody")
            deadline = time.monotonic() + 5
            while not rx.unknown:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert rx.unknown[-1]["callback"] == "nobody"
        finally:
            stop.set()
            t.join(5)
    with PushReceiver(port=0, address=SLICE_A_MGMT, controller=controller.url) as rx:
        a.create_periodic(fp["fpid"], index=1, interval=100, size=1, model="push",
                          port=rx.port, callback="unregistered")
        with pytest.raises(SppError) as e:
            rx.poll(5)
        assert e.value.name == "ENOENT" and "unregistered" in e.value.message


def test_lookup_fltr_answers_what_the_npe_matches_for_substrate_keys(controller, slices):
    a, _ = slices
    fp, mi1, _ = router(a)
    f = fp["fpid"]
    # A substrate-only filter keyed on fields the NPE never sets for slice
    # packets (source address, protocol, meta-interface) matches nothing...
    a.write_fltr(f, 1, type=1, key={"dst_addr": "10.7.0.0", "src_addr": "10.8.0.1"},
                 mask={"dst_addr": "255.255.0.0", "src_addr": "255.255.255.255"},
                 result={"action": "drop"})
    a.write_fltr(f, 2, type=1, key={"dst_addr": "10.7.0.0"}, mask={"dst_addr": "255.255.0.0"},
                 result={"action": "local"})
    key = {"dst_addr": "10.7.1.1", "src_addr": "10.8.0.1", "protocol": 17, "meta_if": 1}
    # ... so the lookup skips filter 1, whatever key fields the caller gives.
    assert a.lookup_fltr(f, key, type=1)["fid"] == 2
    # A meta-interface lookup uses them all.
    a.write_fltr(f, 3, key={"dst_addr": "10.7.0.0", "src_addr": "10.8.0.1"},
                 mask={"dst_addr": "255.255.0.0", "src_addr": "255.255.255.255"},
                 result={"action": "drop"})
    assert a.lookup_fltr(f, key, type=0)["fid"] == 3


def test_free_udp_tunnel_refuses_while_filters_are_keyed_on_it(controller, slices):
    a, _ = slices
    fp, mi1, _ = router(a)
    f = fp["fpid"]
    a.write_fltr(f, 5, key={"meta_if": mi1["mi"]}, mask={"meta_if": 0xFFFF},
                 result={"action": "drop"})
    with pytest.raises(SppError) as e:
        a.free_udp_tunnel(f, mi1["mi"])
    assert e.value.name == "EBUSY" and "filter 5" in e.value.message
    a.rem_fltr_byfid(f, 5)
    a.free_udp_tunnel(f, mi1["mi"])
    # The next tunnel given that number starts with no filter of the old one.
    again = a.alloc_udp_tunnel(f, ifn=1, bw=100)
    assert again["mi"] == mi1["mi"]
    with pytest.raises(SppError):
        a.lookup_fltr(f, {"meta_if": again["mi"], "dst_addr": "10.99.0.1"})


def test_fastpath_sockets_are_the_fastpath_endpoints(controller, slices, live_node):
    a, _ = slices
    fp, _, _ = router(a)
    # The slice host's data address lives in the test namespace: bind checks
    # the endpoints' shape from the root namespace on loopback instead.
    fake = {k: {**fp[k], "addr": "127.0.0.1"} for k in ("ld_endpoint", "exc_endpoint")}
    ld, exc = fastpath_sockets(fake)
    try:
        assert ld.getsockname() == ("127.0.0.1", fp["ld_endpoint"]["port"])
        assert exc.getsockname() == ("127.0.0.1", fp["exc_endpoint"]["port"])
    finally:
        ld.close()
        exc.close()
