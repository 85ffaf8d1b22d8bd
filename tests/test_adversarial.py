"""Attacks from the adversarial review of the isolation promises: what one
slice could do to another through the slice API, and the checks that stop it.
Each test fails with its protection switched off."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import uvicorn
from conftest import SLICE_A_MGMT, SLICE_B_MGMT, free_port, needs_bmv2, slice_specs
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from bench.controlplane import ControllerProcess
from controller import pipeline as pl
from controller.api import server_config
from controller.conns import CONNECTIONS_PER_HOST, peer_limited
from controller.errors import SppError as CtlError
from controller.executor import PATIENCE, NodeExecutor
from controller.store import Store
from mininet_topo.livenode import (
    END_HOST,
    GW,
    IF1,
    IF2,
    LC_IF1_MAC,
    LC_IF2_MAC,
    NPE_ADDR,
    PEER2,
    SLICE_B,
)
from slices.client import Slice, SppError

NH = "192.168.1.200"


class BusySwitch:
    """A switch that answers every probe but takes ``seconds`` to write
    registers, as BMv2 does with a few hundred thousand cells."""

    name = "npe"

    def __init__(self, seconds: float, deadline: float):
        self.seconds, self.deadline, self.up, self.probes = seconds, deadline, True, 0

    def alive(self, deadline: float = 1.0) -> bool:
        self.probes += 1
        return True

    def mark_down(self, why: str):
        self.up = False

    def write(self, updates, force=False):
        pass

    def encode_ahead(self, updates):            # Scd's encoder (never used here)
        pass

    def ahead_reset(self):
        pass

    def register_write(self, name, cells, force=False):
        if not (self.up or force):                  # as Scd: a switch marked down
            raise CtlError("ESWITCH", "down")
        time.sleep(self.seconds)


def test_a_busy_switch_that_answers_is_not_marked_down(tmp_path):
    """One slice's large register writes (a batch of mem_write calls) keep
    the NPE busy longer than a request's deadline while it answers every
    probe: the group is waited for and succeeds, and the switch stays up.
    Marked down, every slice's calls on the NPE would fail (ESWITCH) and
    the rolled-back SRAM could not be restored."""
    store = Store(tmp_path / "db")
    sw = BusySwitch(seconds=1.5, deadline=0.3)
    ex = NodeExecutor("n", store, {"npe": sw}, repair=lambda switches: None)
    try:
        fut = ex.submit(lambda ch: ch.register_write("npe", "sram", {1: 5}, {1: 0}) or "ok")
        assert fut.result(timeout=10) == "ok"
        assert sw.up and sw.probes >= int(1.5 / PATIENCE) - 1
    finally:
        ex.stop()
        store.close()


class StalledSwitch(BusySwitch):
    def alive(self, deadline: float = 1.0) -> bool:
        self.probes += 1
        return False


def test_a_stalled_switch_is_still_marked_down_at_once(tmp_path):
    store = Store(tmp_path / "db")
    sw = StalledSwitch(seconds=3.0, deadline=5.0)
    ex = NodeExecutor("n", store, {"npe": sw}, repair=lambda switches: None)
    try:
        t = time.monotonic()
        fut = ex.submit(lambda ch: ch.register_write("npe", "sram", {1: 5}, {1: 0}))
        with pytest.raises(CtlError) as e:
            fut.result(timeout=10)
        assert e.value.error.name == "ESWITCH" and not sw.up
        assert time.monotonic() - t < 2.0
    finally:
        ex.stop()
        store.close()


# ---- connections -----------------------------------------------------------

def idle_connections(port: int, source: str, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        out.append(s)
    return out


def reset(s: socket.socket, wait: float = 2.0) -> bool:
    """Did the controller close or reset this connection (nothing else to read)?"""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def get(port: int, source: str, path: str = "/health") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return s.recv(100)


async def health(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(port: int, protocol: type, app=health, timeout_keep_alive: float = 1):
    server = uvicorn.Server(server_config(app, "127.0.0.1", port,
                                          timeout_keep_alive=timeout_keep_alive, http=protocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread


@pytest.fixture
def limited_server():
    port = free_port()
    server, thread = serve(port, peer_limited(per_host=4))
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def test_the_operator_listener_serves_only_its_peers():
    """A slice host routing the controller's control address through its own
    management link reaches the operator listener (web view, /metrics): the
    app answers it 403, but each connection it opens there would be held.
    The listener resets any peer but the operator's at once."""
    port = free_port()
    server, thread = serve(port, peer_limited(allowed=frozenset({"127.0.0.1"})))
    try:
        held = idle_connections(port, SLICE_A_MGMT, 3)
        assert all(reset(s, wait=0.5) for s in held)         # before the 1 s keep-alive
        assert get(port, "127.0.0.1").startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_one_host_cannot_hold_every_connection(limited_server):
    """Slow-loris from one slice host: idle connections beyond its share are
    reset at once; another host is served meanwhile; an idle connection is
    closed after the keep-alive timeout even before its first request. (One
    host's 21,000 idle connections took all 20,000 descriptors of `python -m
    controller`, and the other slice's call failed.)"""
    port = limited_server
    held = idle_connections(port, SLICE_A_MGMT, 4)
    extra = idle_connections(port, SLICE_A_MGMT, 3)
    try:
        assert all(reset(s, wait=0.5) for s in extra)        # before the 1 s keep-alive
        assert not any(reset(s, wait=0.1) for s in held)
        assert get(port, SLICE_B_MGMT).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)                                  # the keep-alive timeout: 1 s
        assert all(reset(s, wait=0.5) for s in held)
        assert get(port, SLICE_A_MGMT).startswith(b"HTTP/1.1 200")
    finally:
        for s in held + extra:
            s.close()


BIG = 4 << 20


async def big_answer(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"x" * BIG})


def test_an_answer_its_peer_does_not_read_is_not_kept():
    """A slice host that asks for large answers (a batch's reads: 4 MiB) on
    many connections and reads none of them: each answer stays in the
    controller's memory until its peer reads it, past the keep-alive timeout
    (60 such connections held 274 MB of `python -m controller` until the
    host closed them; 256 are allowed). A connection whose peer has not
    read its answer within the write-stall time is reset, and its answer
    dropped; a peer that reads gets all of it (review 19, R19-2)."""
    port = free_port()
    protocol = peer_limited(write_stall=0.5)
    server, thread = serve(port, protocol, app=big_answer)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        stalled = []
        for _ in range(3):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((SLICE_A_MGMT, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(request)
            stalled.append(s)
        time.sleep(0.3)
        assert protocol.open_by_host.get(SLICE_A_MGMT) == 3     # answers pending
        deadline = time.monotonic() + 5
        while protocol.open_by_host.get(SLICE_A_MGMT) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert protocol.open_by_host.get(SLICE_A_MGMT) is None, "unread answers are kept"
        with socket.create_connection(("127.0.0.1", port), source_address=(SLICE_B_MGMT, 0)) \
                as s:
            s.sendall(request)
            got = b""
            while len(got) < BIG:
                chunk = s.recv(1 << 20)
                assert chunk, "the answer of a peer that reads was cut"
                got += chunk
                time.sleep(0.05)                # a reader, if not a fast one
        for s in stalled:
            s.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def small_answer(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"code":0}'})


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


@contextlib.contextmanager
def small_server():
    """``small_answer`` served as ``python -m controller`` serves the API
    (server_config, peer_limited connections); its port."""
    port = free_port()
    server, thread = serve(port, peer_limited(), app=small_answer, timeout_keep_alive=5)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_pipelined_requests_are_not_queued_without_bound():
    """HTTP/1.1 pipelining: uvicorn queues every request it parses behind the
    one being answered, and reads on after each answer however many wait. One
    slice host's connection sending tiny requests without waiting (and
    reading the answers) grew `python -m controller` by 150 MB/s (2.3 GB in
    15 s). A connection with more than conns.PIPELINED requests waiting is
    reset; a few pipelined requests are all answered (review 19b, R19b-3)."""
    from controller.conns import PIPELINED
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with small_server() as port:
        with socket.create_connection(("127.0.0.1", port), source_address=(SLICE_B_MGMT, 0),
                                      timeout=5) as s:
            s.sendall(request * PIPELINED)
            got = b""
            while got.count(b"HTTP/1.1 200") < PIPELINED:
                chunk = s.recv(65536)
                assert chunk, "a few pipelined requests were not all answered"
                got += chunk
        before = _rss_mb()
        s = socket.socket()
        s.bind((SLICE_A_MGMT, 0))
        s.connect(("127.0.0.1", port))
        def read_all():
            try:
                while s.recv(1 << 20):
                    pass
            except OSError:
                pass
        threading.Thread(target=read_all, daemon=True).start()
        reset, t0 = False, time.monotonic()
        try:
            while time.monotonic() - t0 < 3:
                s.sendall(request * 2000)
        except OSError:
            reset = True
        grown = _rss_mb() - before
        s.close()
        assert reset and grown < 50, f"pipelining not stopped: reset {reset}, +{grown:.0f} MB"


def test_malformed_requests_cannot_fill_the_disk_with_the_log(tmp_path, monkeypatch):
    """uvicorn warns once per malformed request. Those warnings go to the
    controller's log file (not to an unbounded stderr file next to the
    databases), which is rotated at LOG_FILE_BYTES with one old file kept:
    a caller sending nothing but malformed requests takes at most twice that
    of the disk (review 19b, R19b-5: 364 KB/s from one client)."""
    import logging

    from controller import limits
    from controller.__main__ import log_to
    monkeypatch.setattr(limits, "LOG_FILE_BYTES", 8 << 10)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    log = tmp_path / "controller.log"
    log_to(log, logging.INFO)
    try:
        with small_server() as port:
            for _ in range(400):
                with socket.create_connection(("127.0.0.1", port),
                                              source_address=(SLICE_A_MGMT, 0), timeout=5) as a:
                    a.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                    a.recv(1024)
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:], root.level = saved
    files = [log, log.with_name(log.name + ".1")]
    assert all(f.exists() for f in files), "rotated once at least"
    assert "Invalid HTTP request" in log.read_text() + files[1].read_text()
    assert sum(f.stat().st_size for f in files) <= 2 * (8 << 10) + 1024
    assert not log.with_name(log.name + ".2").exists()


def test_an_endless_request_head_is_cut_short():
    """A request head has no limit in uvicorn's parser, which joins a long
    header's pieces again and again: one slice host's connection sending an
    endless header held the event loop (another host's calls took 1-2 s) and
    grew the controller without end. A head past conns.HEAD_BYTES is reset;
    a request with a large body is still answered (review 19b, R19b-4)."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with small_server() as port:
        with socket.create_connection(("127.0.0.1", port), source_address=(SLICE_B_MGMT, 0),
                                      timeout=10) as b:
            body = b"x" * 900_000
            b.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            assert b.recv(65536).startswith(b"HTTP/1.1 200"), "a large body was refused"
            s = socket.socket()
            s.bind((SLICE_A_MGMT, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
            outcome = []

            def endless():
                try:
                    while time.monotonic() - t0 < 4:
                        s.sendall(b"a" * (1 << 20))
                    outcome.append("not reset")
                except OSError:
                    outcome.append("reset")
            t0 = time.monotonic()
            attacker = threading.Thread(target=endless, daemon=True)
            attacker.start()
            slowest = 0.0
            while attacker.is_alive() and time.monotonic() - t0 < 4:
                time.sleep(0.3)
                t1 = time.monotonic()
                b.sendall(request)
                assert b.recv(65536).startswith(b"HTTP/1.1 200")
                slowest = max(slowest, time.monotonic() - t1)
            attacker.join(timeout=10)
            s.close()
        assert outcome == ["reset"] and slowest < 0.5, (outcome, slowest)


# ---- live switches --------------------------------------------------------

@needs_bmv2
def test_a_queue_cannot_carry_another_interfaces_rate(controller, slices, live_node):
    """A filter forwards to meta-interface X (interface 1, 100 kb/s reserved)
    through queue 0, bound to X. Moving queue 0 to meta-interface Y
    (interface 2, 9,000 kb/s) would police X's traffic at Y's rate: 90 times
    the slice's reservation on interface 1, taken from what other slices
    reserved there. bind_queue refuses (EBUSY) while such a filter exists,
    and X's traffic stays at X's rate."""
    a, _ = slices
    ctl = controller.ctl
    f = a.alloc_fastpath(bw=10_000, filters=8, queues=2, buffers=64, stats=4)["fpid"]
    a.resrv_fpath_ifbw(f, ifn=1, bw=100)
    a.resrv_fpath_ifbw(f, ifn=2, bw=9_000)
    z = a.alloc_udp_tunnel(f, ifn=1, bw=0)                  # where packets come in
    x = a.alloc_udp_tunnel(f, ifn=1, bw=100)
    y = a.alloc_udp_tunnel(f, ifn=2, bw=9_000)
    a.bind_queue(f, x["mi"], [0])
    fwd = {"action": "forward", "meta_if": x["mi"], "nh_addr": NH, "nh_port": 30000,
           "queue": 0, "stats": 1}
    a.write_fltr(f, 1, key={"meta_if": z["mi"]}, mask={"meta_if": 0xFFFF}, result=fwd)
    with pytest.raises(SppError) as e:
        a.bind_queue(f, y["mi"], [1, 0])
    assert e.value.name == "EBUSY"
    assert a.get_queue_params(f, 0)["mi"] == x["mi"]
    qb = ctl.store.one("SELECT queue_base FROM fastpaths")["queue_base"]
    assert ctl.scds["npe"].conn.read_meter(pl.Npe.QUEUE_RATE, qb)[0] == 100 * 1000 // 8
    # The data plane: a burst of 40 1-KB datagrams leaves through X at X's
    # rate (the meter's burst is two frames), not at Y's (24 KB of burst).
    inner = IP(src="10.9.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"s" * 1000)
    frame = bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                  / UDP(sport=45000, dport=z["port"], chksum=0) / inner)
    out = live_node.send_and_capture("ext0t", [frame] * 40, "ext0t", wait=0.5)
    sent = [p for p in map(Ether, out) if IP in p and p[IP].src == IF1
            and p[UDP].sport == x["port"]]
    assert 0 < len(sent) < 30
    # Without the filter, the queue may move (its rate with it).
    a.rem_fltr_byfid(f, 1)
    a.bind_queue(f, y["mi"], [0])
    assert a.get_queue_params(f, 0)["mi"] == y["mi"]


@needs_bmv2
def test_a_meta_interface_sends_out_its_own_interface_only(controller, slices, live_node):
    """The LC routes a forwarded packet by its next hop, whatever interface
    its meta-interface is on. A slice with bandwidth reserved on interface 1
    only wrote a filter forwarding through a meta-interface of interface 1
    to the peer of interface 2: its packets left by the peering link (5 of
    5), where it reserved nothing and others did. Other next hops off the
    link reached a slice host, or came back into the NPE (the node's own
    address). All are refused (EINVAL), by write_fltr and by update_result;
    a next hop on the link is taken, and its packets leave by interface 1
    (review 19, R19-1)."""
    a, _ = slices
    f = a.alloc_fastpath(bw=10_000, filters=8, queues=2, buffers=64, stats=4)["fpid"]
    a.resrv_fpath_ifbw(f, ifn=1, bw=5_000)
    z = a.alloc_udp_tunnel(f, ifn=1, bw=0)                  # where packets come in
    x = a.alloc_udp_tunnel(f, ifn=1, bw=5_000)
    a.bind_queue(f, x["mi"], [0])
    key, mask = {"meta_if": z["mi"]}, {"meta_if": 0xFFFF}

    def fwd(nh):
        return {"action": "forward", "meta_if": x["mi"], "nh_addr": nh, "nh_port": 30000,
                "queue": 0, "stats": 1}
    off_link = (PEER2, IF1, NPE_ADDR, SLICE_B, GW, "10.77.0.1")
    for nh in off_link:
        with pytest.raises(SppError) as e:
            a.write_fltr(f, 1, key=key, mask=mask, result=fwd(nh))
        assert e.value.name == "EINVAL", nh
    a.write_fltr(f, 1, key=key, mask=mask, result=fwd(NH))
    for nh in off_link:
        with pytest.raises(SppError) as e:
            a.update_result(f, 1, fwd(nh))
        assert e.value.name == "EINVAL", nh
    assert a.get_fltr_byfid(f, 1)["result"]["nh_addr"] == NH
    inner = IP(src="10.9.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"s" * 100)
    frame = bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                  / UDP(sport=45000, dport=z["port"], chksum=0) / inner)
    out = live_node.send_and_capture("ext0t", [frame] * 5, "ext0t", wait=0.5)
    assert len([p for p in map(Ether, out) if IP in p and p[IP].src == IF1
                and p[IP].dst == NH]) == 5


@needs_bmv2
def test_a_new_fastpath_does_not_see_its_queues_previous_occupancy(controller, slices):
    """get_queue_len reads the occupancy register the data plane leaves
    behind. A fastpath given the queues another slice's fastpath had reads
    0, not what that slice's traffic left there."""
    a, b = slices
    ctl = controller.ctl
    fa = a.alloc_fastpath(bw=1_000, filters=1, queues=4, buffers=8, stats=1)["fpid"]
    qb = ctl.store.one("SELECT queue_base FROM fastpaths")["queue_base"]
    # As A's traffic left it: 7 packets ahead of its last one in queue 2.
    ctl.scds["npe"].register_write(pl.Npe.QUEUE_LEN, {qb + 2: 7})
    a.resrv_fpath_ifbw(fa, ifn=1, bw=100)
    mi = a.alloc_udp_tunnel(fa, ifn=1, bw=100)["mi"]
    a.bind_queue(fa, mi, [2])
    assert a.get_queue_len(fa, 2)["length"] == 7
    a.free_fastpath(fa)
    fb = b.alloc_fastpath(bw=1_000, filters=1, queues=4, buffers=8, stats=1)["fpid"]
    assert ctl.store.one("SELECT queue_base FROM fastpaths")["queue_base"] == qb
    b.resrv_fpath_ifbw(fb, ifn=1, bw=100)
    b.bind_queue(fb, b.alloc_udp_tunnel(fb, ifn=1, bw=100)["mi"], [2])
    assert b.get_queue_len(fb, 2)["length"] == 0


@needs_bmv2
def test_one_slices_batches_of_mem_write_leave_the_npe_up(controller, slices):
    """Slice A sends two batches of 70 mem_write calls of 4,096 words each
    at once (570,000 register cells: seconds of Thrift writes, longer than
    a switch request's deadline, here 1 s): the NPE is busy, not down. B's calls
    meanwhile succeed (none ESWITCH), and so do all of A's."""
    a, b = slices
    ctl = controller.ctl
    ctl.scds["npe"].deadline = 1.0       # what a request may take; the flood takes seconds
    patient = Slice(controller.url, a.secret, timeout=60, local_address=SLICE_A_MGMT)
    fa = a.alloc_fastpath(bw=1_000, filters=1, queues=1, buffers=8, stats=1,
                          sram=8192)["fpid"]
    fb = b.alloc_fastpath(bw=1_000, filters=64, queues=1, buffers=8, stats=1)["fpid"]
    calls = [("mem_write", {"fpid": fa, "offset": (i % 2) * 4096, "values": [i % 10] * 4096})
             for i in range(70)]
    out = []
    threads = [threading.Thread(target=lambda: out.append(patient.batch(calls)))
               for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    errors = []
    for fid in range(3):
        try:
            b.write_fltr(fb, fid, key={"dst_addr": "10.9.0.0"},
                         mask={"dst_addr": "255.255.0.0"}, result={"action": "drop"})
        except SppError as e:
            errors.append(e.name)
    for t in threads:
        t.join()
    patient.close()
    assert ctl.scds["npe"].up
    assert "ESWITCH" not in errors
    assert len(out) == 2 and not [x for r in out for x in r if isinstance(x, SppError)]
    assert a.mem_read(fa, 0, 2) == [8, 8] and a.mem_read(fa, 4096, 2) == [9, 9]


@needs_bmv2
def test_the_controller_limits_each_hosts_connections(live_node, tmp_path):
    """`python -m controller` serves the slice API with the per-host limit:
    slice host A's connections past CONNECTIONS_PER_HOST are reset, and B's
    calls are served while A holds its share."""
    spec = {k: v for k, v in slice_specs(live_node)[1].items() if k != "mgmt_addr"}
    with ControllerProcess(live_node, tmp_path) as cp:
        b = Slice(cp.url, cp.create_slice(mgmt=SLICE_B_MGMT, **spec), local_address=SLICE_B_MGMT)
        held = idle_connections(cp.port, SLICE_A_MGMT, CONNECTIONS_PER_HOST)
        extra = idle_connections(cp.port, SLICE_A_MGMT, 5)
        try:
            assert all(reset(s) for s in extra)
            assert b.get_interfaces() == [1, 2]
            # The operator listener (default 127.0.0.1:8081) serves 127.0.0.1 only.
            assert all(reset(s) for s in idle_connections(8081, SLICE_A_MGMT, 2))
            assert get(8081, "127.0.0.1", "/metrics").startswith(b"HTTP/1.1 200")
        finally:
            for s in held + extra:
                s.close()
            b.close()


def test_the_slow_path_answers_only_its_fastpath():
    """The sample slow path answers a TTL-expired exception with ICMP time
    exceeded through the router's meta-interface, to the tunnel source the
    meta-net header names. Forged by anyone but the fastpath (another slice's
    host can reach the slice host's exception port), it would make the router
    send packets where the forger says; only datagrams from the fastpath's
    return endpoint (the NPE) are taken."""
    from slices import metanet as mn
    from slices.samples.slowpath import SlowPath
    npe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    npe.bind(("127.0.0.1", 0))
    npe.settimeout(1)
    ld, exc = free_port(), free_port()
    sp = SlowPath({"router_addr": "10.1.255.1",
                   "fpinfo": {"ld_endpoint": {"addr": "127.0.0.1", "port": ld},
                              "exc_endpoint": {"addr": "127.0.0.1", "port": exc},
                              "ret_endpoint": {"addr": "127.0.0.1",
                                               "port": npe.getsockname()[1]}},
                   "meta_ifs": {"node:b": {"mi": 2, "port": 21001, "nh_addr": "172.31.1.2",
                                           "nh_port": 21001}},
                   "routes": [{"prefix": "10.1.0.0/16", "via": "node:b"}]})
    stop = threading.Event()
    runner = threading.Thread(target=sp.run, args=(stop.is_set,))
    runner.start()
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    forger.bind(("127.0.0.1", 0))
    forged = bytes(mn.MetaNet(kind=mn.EXCEPTION, reason=mn.TTL_EXPIRED, meta_if=2,
                              tunnel_src_addr="192.0.2.99", tunnel_src_port=9)
                   / IP(src="10.1.2.1", dst="10.1.1.7", ttl=1) / UDP(sport=1, dport=2))
    try:
        forger.sendto(forged, ("127.0.0.1", exc))
        with pytest.raises(TimeoutError):
            npe.recv(4096)
        npe.sendto(forged, ("127.0.0.1", exc))           # the same, from the NPE
        key = mn.MetaNet(npe.recv(4096))[mn.FwdKey]
        assert (key.dst_addr, key.dst_port) == ("192.0.2.99", 9)
        assert sp.counts["dropped"] == 1 and sp.counts["time_exceeded"] == 1
    finally:
        stop.set()
        runner.join(timeout=5)
        for s in (npe, forger, sp.ld, sp.exc):
            s.close()


class FakeStandard:
    """BMv2's Thrift 'standard' client for one register array of ``size`` cells."""

    def __init__(self, size: int):
        self.cells = list(range(size))
        self.sent, self.read_all = [], 0

    def bm_register_read_all(self, cxt, name):
        self.read_all += 1
        return list(self.cells)

    def send_bm_register_read(self, cxt, name, index):
        self.sent.append(index)

    def recv_bm_register_read(self):
        from bm_runtime.standard.ttypes import InvalidRegisterOperation
        index = self.sent.pop(0)
        if index >= len(self.cells):
            raise InvalidRegisterOperation(code=1)
        return self.cells[index]


def test_a_short_mem_read_does_not_read_the_whole_sram():
    """mem_read of a few words read the NPE's whole SRAM (65,536 cells, about
    8 ms of the controller's CPU) to return them: a slice's batch of 1,000
    mem_read(count=2) cost 9.5 s. A few cells are read one by one (pipelined),
    and a refused read leaves the connection in step."""
    from controller.thrift_api import ThriftClient, ThriftError
    client = ThriftClient.__new__(ThriftClient)
    client.where, client._lock = "fake", threading.Lock()
    client._std = std = FakeStandard(65_536)
    assert client.register_read_range("sram", 1000, 2) == [1000, 1001]
    assert client.register_read_range("sram", 10, 600) == list(range(10, 610))
    assert std.read_all == 0
    assert client.register_read_range("sram", 0, 4096) == list(range(4096))
    assert std.read_all == 1
    with pytest.raises(ThriftError):
        client.register_read_range("sram", 65_530, 10)
    assert std.sent == []                             # every answer was read
    assert client.register_read_range("sram", 5, 1) == [5]


@needs_bmv2
def test_repair_puts_sram_back_to_what_was_acknowledged(controller, slices):
    """A mem_write answered ESWITCH ("nothing was changed") may still reach
    the switch: a stalled NPE applies the queued Thrift writes when it
    resumes, and the rollback cannot reach a switch marked down. Here the
    switch is written behind the controller's back, as such a late write
    would; the repair (after a failed group, or when the monitor brings the
    switch back) puts the fastpath's SRAM back to what the database says."""
    a, _ = slices
    ctl = controller.ctl
    f = a.alloc_fastpath(bw=1_000, filters=1, queues=1, buffers=8, stats=1, sram=8)["fpid"]
    a.mem_write(f, 0, [5, 6])
    base = ctl.store.one("SELECT sram_base FROM fastpaths")["sram_base"]
    ctl.scds["npe"].register_write(pl.Npe.SRAM, {base: 77, base + 3: 99})
    assert a.mem_read(f, 0, 4) == [77, 6, 0, 99]
    node = ctl.testbed.nodes[0]
    ctl.executors[node.name].exclusive(lambda: ctl.repair(node, {"npe"}))
    assert a.mem_read(f, 0, 4) == [5, 6, 0, 0]


@needs_bmv2
def test_a_read_never_sees_cells_given_to_another_slice_in_the_same_group(controller, slices,
                                                                          monkeypatch):
    """Slice a frees its fastpath while slice b's alloc_fastpath and mem_write
    land in the same group: b's fastpath gets the freed partition, and b's
    words reach the NPE's SRAM before the group commits. a's mem_read of the
    freed fastpath in that moment must not answer b's words (the fastpath
    still exists until the commit): the read waits for the group, then finds
    the fastpath gone (review F13)."""
    a, b = slices
    ctl = controller.ctl
    (node,) = ctl.executors
    ex = ctl.executors[node]
    fa = a.alloc_fastpath(bw=1000, filters=1, queues=1, buffers=1, stats=1, sram=16)["fpid"]
    a.mem_write(fa, 0, [0xA] * 16)
    sla, slb = (ctl.store.one("SELECT * FROM slices WHERE name = ?", n) for n in "ab")
    applied, release = threading.Event(), threading.Event()
    apply = ex._apply

    def slow_apply(changes):                # the group's switch writes done, not committed
        apply(changes)
        if any(c.frees for c in changes) or len(changes) == 3:
            applied.set()
            release.wait(5)
    monkeypatch.setattr(ex, "_apply", slow_apply)
    held = threading.Event()
    hold = ex.submit(lambda ch: (held.set(), time.sleep(0.3)))   # queue the three behind it
    assert held.wait(5)
    with ctl.rmp.deferred():
        group = [ctl.rmp.free_fastpath(sla, fa),
                 ctl.rmp.alloc_fastpath(slb, "ipv4", 1000, 1, 1, 1, 1, 16, 0),
                 ctl.rmp.mem_write(slb, 1, 0, [0xB] * 16)]
    hold.result(5)
    assert applied.wait(5)
    got = {}

    def read():
        try:
            got["words"] = a.mem_read(fa, 0, 16)
        except SppError as e:
            got["error"] = e.name
    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.5)                        # without the protection it answers here
    release.set()
    reader.join(5)
    for f in group:
        f.result(5)
    fb = ctl.store.one("SELECT * FROM fastpaths")
    assert fb["slice_id"] == slb["id"] and fb["sram_base"] == 0     # the same partition
    assert got == {"error": "ENOENT"}, got
    assert b.mem_read(1, 0, 16) == [0xB] * 16


@needs_bmv2
def test_a_partition_given_away_in_a_group_starts_clean(controller, slices):
    """Slice b writes its fastpath's SRAM and frees the fastpath (one batch),
    and slice a's alloc_fastpath lands in the same group, getting the freed
    partition. The group zeroed every fresh partition before any register
    write, so b's words were written over a's zeroed SRAM: a read b's last
    words, and its "clean" SRAM held what b put there (review 19, R19-3).
    Registers are now written in the group's order."""
    a, b = slices
    ctl = controller.ctl
    (ex,) = ctl.executors.values()
    fb = b.alloc_fastpath(bw=1000, filters=1, queues=1, buffers=1, stats=1, sram=16)["fpid"]
    held = threading.Event()
    hold = ex.submit(lambda ch: (held.set(), time.sleep(1.0)))     # the next group waits
    assert held.wait(5)
    out = {}

    def queued(n):
        deadline = time.monotonic() + 5
        while ex._q.qsize() < n:
            assert time.monotonic() < deadline, "the calls were not queued"
            time.sleep(0.01)
    tb = threading.Thread(target=lambda: out.setdefault("b", b.batch([
        ("mem_write", {"fpid": fb, "offset": 0, "values": [0xBAD] * 16}),
        ("free_fastpath", {"fpid": fb})])))
    tb.start()
    queued(2)
    ta = threading.Thread(target=lambda: out.setdefault("a", a.alloc_fastpath(
        bw=1000, filters=1, queues=1, buffers=1, stats=1, sram=16)))
    ta.start()
    queued(3)
    hold.result(5)
    tb.join(10)
    ta.join(10)
    assert out["b"] == [None, None]
    assert ctl.store.one("SELECT sram_base FROM fastpaths")["sram_base"] == 0   # b's partition
    assert a.mem_read(out["a"]["fpid"], 0, 16) == [0] * 16


def test_a_read_overlapped_by_a_group_freeing_its_fastpath_is_done_again(tmp_path):
    """The other half of the test above: a group freeing fastpath 7 starts
    while a read of its cells is in progress. That read may have seen the
    next owner's cells: it is thrown away and done again after the group
    (the executor itself never waits for it)."""
    store = Store(tmp_path / "db")
    ex = NodeExecutor("n", store, {}, repair=lambda switches: None)
    reads = []

    def read():
        reads.append(time.monotonic())
        if len(reads) == 1:                 # a group freeing 7 starts meanwhile
            ex._freeing_start({7})
            threading.Timer(0.3, ex._freeing_end).start()
            return "maybe the next owner's"
        return "after the group"
    try:
        assert ex.read_cells(8, lambda: "another fastpath") == "another fastpath"
        t0 = time.monotonic()
        assert ex.read_cells(7, read) == "after the group"
        assert len(reads) == 2 and reads[1] - t0 >= 0.25
    finally:
        ex.stop()
        store.close()


class _Payload(list):
    """Stands for a call's arguments (a mem_write's 4,096 values): a list
    that a weak reference can follow."""


@pytest.mark.parametrize("where", ["change", "switch"])
def test_a_failed_change_leaves_no_garbage_cycle(tmp_path, where):
    """A change refused by its own checks, or by a switch: its error reaches
    the caller without its traceback, whose frames held the group's jobs,
    their arguments and switch updates in a cycle with the error that only
    the cyclic GC frees; the controller runs it seldom (__main__.py), and a
    slice sending failing 4,096-word mem_writes grew it from 84 to 562 MB in
    45 s (review 18)."""
    import gc
    import weakref

    class Refusing:
        name = "sw"

        def write_send(self, ups):
            raise CtlError("ESWITCH", "refused")

        def encode_ahead(self, ups):
            pass

        def ahead_reset(self):
            pass
    store = Store(tmp_path / "db")
    ex = NodeExecutor("n", store, {"sw": Refusing()}, repair=lambda switches: None)
    gc.collect()
    gc.disable()
    try:
        payload = _Payload(range(4096))
        ref = weakref.ref(payload)

        def change(ch, values=payload):
            if where == "change":
                raise CtlError("ENOENT", f"no fastpath ({len(values)} words)")
            ch.write("sw", [("INSERT", values)])
        fut = ex.submit(change)
        with pytest.raises(CtlError):
            fut.result(5)
        del fut, change, payload
        ex.submit(lambda ch: None).result(5)        # the executor has moved on
        assert ref() is None, "the failed change's arguments outlive it (a cycle)"
    finally:
        gc.enable()
        ex.stop()
        store.close()


@needs_bmv2
def test_slice_hosts_that_take_no_push_do_not_stall_the_others_periodic_jobs(controller, slices,
                                                                             live_node):
    """Slices c and d each run 8 push jobs every 100 ms, then their hosts stop
    answering ARP on their management link: every datagram waits in the
    neighbour's queue, charged to the socket that sent it. With one blocking
    socket for all pushes, it filled and the node's periodic thread waited in
    sendto for seconds; slice a's pull job, sampled by that thread, missed
    half its samples (23 of 50 in 5 s, gaps of 1.5 s)."""
    import subprocess
    a, _ = slices
    specs = {s["name"]: s for s in slice_specs(live_node)}
    silent = ["10.251.77.2", "10.251.77.3"]
    ns, link = "sppadvsilent", "sppadvsl"

    def sh(cmd):
        subprocess.run(cmd, shell=True, check=True, capture_output=True)

    sh(f"ip link add {link}0 type veth peer name {link}1; ip netns add {ns}; "
       f"ip link set {link}1 netns {ns}; ip addr add 10.251.77.1/24 dev {link}0; "
       f"ip link set {link}0 up; ip -n {ns} link set {link}1 arp off up")
    try:
        for addr in silent:                 # the hosts' addresses, local while they call
            sh(f"ip addr add {addr}/32 dev lo")
        for name, addr in zip("cd", silent, strict=True):
            sp = specs[name]
            s = Slice(controller.url, controller.create_slice(name, addr, sp["data_addr"],
                                                              sp["lc_port"], sp["mac"]),
                      local_address=addr)
            f = s.alloc_fastpath(bw=1_000, filters=1, queues=1, buffers=8, stats=1)["fpid"]
            for _ in range(8):
                s.create_periodic(f, index=0, interval=100, size=1, model="push", port=9999)
            s.close()
        fa = a.alloc_fastpath(bw=1_000, filters=1, queues=1, buffers=8, stats=1)["fpid"]
        pid = a.create_periodic(fa, index=0, interval=100, size=64)["pid"]
        for addr in silent:                 # now behind the link, answering no ARP
            sh(f"ip addr del {addr}/32 dev lo")
        time.sleep(1)
        t0 = time.time()
        time.sleep(5)
        times = sorted(x["time"] for x in a.get_periodic(pid)["vector"] if x["time"] > t0)
        gaps = [y - x for x, y in zip(times, times[1:], strict=False)]
        assert len(times) >= 40 and max(gaps) < 0.5, (len(times), max(gaps))
    finally:
        subprocess.run(f"ip netns del {ns}", shell=True, capture_output=True)
        subprocess.run(f"ip link del {link}0", shell=True, capture_output=True)
        for addr in silent:
            subprocess.run(f"ip addr del {addr}/32 dev lo", shell=True, capture_output=True)


@needs_bmv2
def test_only_the_peer_sends_from_the_peers_address(controller, slices, live_node):
    """A peering meta-interface takes packets only from its peer (the NPE
    checks the outer source). An end host on interface 1's link sent "from
    the peer" to slice a's peering meta-interface (interface 2's address):
    the LC demultiplexed it to the NPE, whose check passed (5 of 5 taken by
    a's filter). The LC now takes the peer's address as a source only from
    the peering link (`spoofed`); the peer's own packets pass (review 20,
    R20-1)."""
    a, _ = slices
    f = a.alloc_fastpath(bw=10_000, filters=8, queues=2, buffers=64, stats=4)["fpid"]
    a.resrv_fpath_ifbw(f, ifn=2, bw=2_000)
    y = a.alloc_udp_tunnel(f, ifn=2, bw=1_000)
    a.write_fltr(f, 1, key={"meta_if": y["mi"]}, mask={"meta_if": 0xFFFF},
                 result={"action": "local", "stats": 1})
    inner = IP(src="10.9.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"s" * 50)
    forged = IP(src=PEER2, dst=IF2) / UDP(sport=y["port"], dport=y["port"], chksum=0) / inner
    out = live_node.send_and_capture("ext0t", [bytes(Ether(dst=LC_IF1_MAC) / forged)] * 5,
                                     "sliceA", wait=0.5)
    assert (len(out), a.read_stats(f, 1)["pre_packets"]) == (0, 0)
    out = live_node.send_and_capture("ext1t", [bytes(Ether(dst=LC_IF2_MAC) / forged)] * 5,
                                     "sliceA", wait=0.5)
    assert a.read_stats(f, 1)["pre_packets"] == 5


def test_a_reads_answer_is_encoded_off_the_event_loop(tmp_path, monkeypatch):
    """The event loop serves every slice's calls. A read's answer was encoded
    there: a full periodic vector (4,096 entries, ~550 KB) in 5-12 ms, and in
    25 ms more by FastAPI's encoder, which a caller reaches with any other
    Content-Type; slice b's get_interfaces p99 went 0.9 -> 23 ms (82 ms by
    FastAPI's path) while slice a fetched its vector in two threads. Reads'
    answers are encoded in their worker threads, by either path (review 20,
    R20-3)."""
    import asyncio

    from fastapi.testclient import TestClient
    from switchless import add_slice, switchless_testbed

    from controller import api
    from controller.core import Controller
    where = []
    encode = api._ok

    def ok(result):
        try:
            asyncio.get_running_loop()
            where.append("event loop")
        except RuntimeError:
            where.append("worker")
        return encode(result)
    monkeypatch.setattr(api, "_ok", ok)
    ctl = Controller(switchless_testbed(), tmp_path / "db")
    try:
        add_slice(ctl, "a", "sekret", "testclient", 2)
        with TestClient(api.create_app(ctl, "adm")) as c:
            for ctype in ("application/json", "application/json; charset=utf-8"):
                rep = c.post("/api/get_interfaces", content=b"{}",
                             headers={"Authorization": "Bearer sekret", "Content-Type": ctype})
                assert rep.json() == {"code": 0, "result": [1, 2]}
    finally:
        ctl.stop()
    assert where == ["worker", "worker"]


def test_a_body_of_many_small_arrays_is_refused_before_it_is_decoded(tmp_path):
    """The event loop, which serves every slice's calls, decodes each body
    before anything else. One slice host sending 0.9 MB bodies of small
    arrays from two threads held it for 30-110 ms a body: slice b's
    get_interfaces p50 0.5 -> 100 ms (36 ms by FastAPI's path). A body with
    more than MAX_BODY_CONTAINERS arrays and objects is refused (E2BIG)
    before it is decoded; a batch of 1,000 filters is not (review 20, R20-4)."""
    from fastapi.testclient import TestClient
    from switchless import add_slice, switchless_testbed

    from controller import api
    from controller import limits as L
    from controller.core import Controller
    ctl = Controller(switchless_testbed(), tmp_path / "db")
    decoded = []
    loads = api.json.loads
    try:
        add_slice(ctl, "a", "sekret", "testclient", 2)
        with TestClient(api.create_app(ctl, "adm")) as c:
            api.json.loads = lambda b, *a, **k: decoded.append(len(b)) or loads(b, *a, **k)
            arrays = b'{"x": [' + b",".join([b"[]"] * (L.MAX_BODY_CONTAINERS + 1)) + b"]}"
            for ctype in ("application/json", "application/json; charset=utf-8"):
                rep = c.post("/api/get_interfaces", content=arrays, headers={
                    "Authorization": "Bearer sekret", "Content-Type": ctype})
                assert rep.json()["error"] == "E2BIG", rep.text[:200]
            assert not [n for n in decoded if n > 10_000], "the body was decoded"
            fltr = {"fpid": 1, "fid": 0, "key": {"dst_addr": "10.0.0.1"},
                    "mask": {"dst_addr": "255.255.255.255"}, "result": {"action": "drop"}}
            rep = c.post("/api/batch", json={"calls": [{"fn": "write_fltr", "args": fltr}]
                                             * L.MAX_BATCH_CALLS},
                         headers={"Authorization": "Bearer sekret"})
            assert [r["error"] for r in rep.json()["result"]] == ["ENOENT"] * L.MAX_BATCH_CALLS
    finally:
        api.json.loads = loads
        ctl.stop()
