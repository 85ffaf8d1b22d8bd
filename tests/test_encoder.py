"""The encoder process (controller/encoder.py): it encodes a group's updates
exactly as the executor's thread would, and when it dies, stalls or cannot
encode, the executor encodes them itself: a group is never lost or held
longer than the switch deadline because of it."""

from __future__ import annotations

import logging
import os
import resource
import signal
import time

import pytest
from conftest import needs_bmv2
from p4.v1 import p4runtime_pb2

from controller import encoder as encoder_mod
from controller import pipeline as pl
from controller import scd as scd_mod
from controller.encoder import Encoder, EncoderError, EncodingRefused
from controller.executor import NodeExecutor
from controller.p4rt import DELETE, INSERT, MODIFY, CounterCell, Entry, MeterCell
from controller.scd import Scd
from controller.store import Store
from controller.testbed import Switch


def _updates(n: int, base: int = 0) -> list:
    out = []
    for f in range(base, base + n):
        key = {"dst_addr": f"10.{f >> 8 & 255}.{f & 255}.1", "dst_port": f & 0xFFFF}
        mask = {"dst_addr": "255.255.255.255", "dst_port": 0xFFFF}
        out.append((INSERT, pl.npe_filter(3, f, 0, key, mask,
                                          pl.FilterResult(action="drop", stats=f % 4))))
    out.append((MODIFY, MeterCell(pl.Npe.QUEUE_RATE, 7, 125_000, 1500)))
    out.append((MODIFY, MeterCell(pl.Npe.QUEUE_RATE, 8)))
    out.append((MODIFY, CounterCell(pl.Npe.STATS_PRE, 9)))
    out.append((DELETE, pl.npe_filter(3, base, 0, {"dst_addr": "10.0.0.1"},
                                      {"dst_addr": "255.255.255.255"},
                                      pl.FilterResult(action="drop"))))
    return out


@pytest.fixture
def encoder():
    p = pl.npe_pipeline()
    enc = Encoder(p.p4info_path, p.json_path, p.cookie, timeout=2.0)
    yield p, enc
    enc.close(wait=0)


def _encodes_as_the_parent(p, enc):
    ups = _updates(70)
    for at in range(0, len(ups), 32):
        enc.add(ups[at:at + 32])
    body = enc.take()
    head = p4runtime_pb2.WriteRequest(device_id=4)
    head.election_id.low = 1
    whole = p4runtime_pb2.WriteRequest(device_id=4)
    whole.election_id.low = 1
    for op, item in ups:
        p.entity(item, whole.updates.add(type=op).entity)
    assert head.SerializeToString() + body == whole.SerializeToString()
    # and it starts afresh after a take
    enc.add(ups[:3])
    again = p4runtime_pb2.WriteRequest.FromString(enc.take())
    assert len(again.updates) == 3 and again.updates[0] == whole.updates[0]
    assert enc.take() == b""


def test_the_encoder_encodes_as_the_executors_thread_would(encoder):
    _encodes_as_the_parent(*encoder)


@pytest.mark.parametrize("protobuf", ["compiled", "none", "unusable"])
def test_the_encoder_uses_the_compiled_protobuf_where_it_can(protobuf, monkeypatch, tmp_path):
    """``make venv`` installs a compiled protobuf for the encoder; without
    one, or with one that does not load, the child encodes with the
    controller's pure-Python protobuf: the same bytes either way."""
    if protobuf == "compiled" and not os.path.isdir(encoder_mod.COMPILED_DIR):
        pytest.skip(f"no compiled protobuf in {encoder_mod.COMPILED_DIR}: run `make venv`")
    if protobuf == "none":
        monkeypatch.setenv(encoder_mod.COMPILED_ENV, "")
    elif protobuf == "unusable":
        broken = tmp_path / "google" / "protobuf"
        broken.mkdir(parents=True)
        (broken / "__init__.py").write_text("raise ImportError('a broken install')\n")
        monkeypatch.setenv(encoder_mod.COMPILED_ENV, str(tmp_path))
    p = pl.npe_pipeline()
    enc = Encoder(p.p4info_path, p.json_path, p.cookie, timeout=5.0)
    try:
        _encodes_as_the_parent(p, enc)
        assert enc.compiled is (protobuf == "compiled")
    finally:
        enc.close(wait=0)


def test_an_update_it_cannot_encode_fails_the_take_not_the_next(encoder):
    p, enc = encoder
    enc.add([(INSERT, Entry.make("NpeIngress.no_such_table", {}, "NoAction"))])
    enc.add(_updates(2))
    with pytest.raises(EncodingRefused, match="could not encode"):
        enc.take()
    enc.add(_updates(2))
    assert len(p4runtime_pb2.WriteRequest.FromString(enc.take()).updates) == 6


def test_a_stalled_encoder_is_given_up_within_its_timeout(encoder):
    p, enc = encoder
    enc.timeout = 0.5
    os.kill(enc.proc.pid, signal.SIGSTOP)
    t = time.monotonic()
    with pytest.raises(EncoderError):
        for _ in range(1000):                # until the pipe is full
            enc.add(_updates(64))
        enc.take()
    assert time.monotonic() - t < 0.5 + 1.0


@needs_bmv2
@pytest.mark.parametrize("fault", ["killed", "stalled", "none"])
def test_a_batch_is_written_whole_whatever_happens_to_the_encoder(controller, slices,
                                                                  monkeypatch, caplog, fault):
    """The fault strikes the encoder after it took the group's first updates;
    every filter is answered OK, and the NPE holds exactly the database's
    filters. No group fails because of it (the executor would then redo
    each change alone: correct, but a group's worth of round trips): the
    executor's thread encodes the group itself. With no fault, the group
    really went through the encoder."""
    caplog.set_level(logging.WARNING)
    ctl = controller.ctl
    npe = ctl.testbed.nodes[0].npes[0].name
    a, _ = slices
    monkeypatch.setattr(scd_mod, "DEADLINE", 1.0)
    ctl.scds[npe].deadline = 1.0
    used = []
    real_add, real_take = Encoder.add, Encoder.take

    def add(self, updates):
        real_add(self, updates)
        if not used:
            used.append(self.proc.pid)
            if fault == "killed":
                os.kill(self.proc.pid, signal.SIGKILL)
            elif fault == "stalled":
                os.kill(self.proc.pid, signal.SIGSTOP)

    def take(self):
        out = real_take(self)
        used.append("took")
        return out
    monkeypatch.setattr(Encoder, "add", add)
    monkeypatch.setattr(Encoder, "take", take)
    n = 300
    fp = a.alloc_fastpath(bw=1000, filters=n, queues=1, buffers=1, stats=1)["fpid"]
    t = time.monotonic()
    out = a.batch(("write_fltr", {"fpid": fp, "fid": f, "type": 0,
                                  "key": {"dst_addr": f"10.9.{f >> 8}.{f & 255}"},
                                  "mask": {"dst_addr": "255.255.255.255"},
                                  "result": {"action": "drop"}}) for f in range(n))
    elapsed = time.monotonic() - t
    assert [r for r in out if not isinstance(r, dict)] == []
    assert used, "no group went through the encoder"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    lost = [r for r in caplog.records if "encoder process lost" in r.getMessage()]
    if fault == "none":
        assert "took" in used and not lost
    else:
        assert lost
        try:
            os.kill(used[0], signal.SIGKILL)
        except ProcessLookupError:
            pass
        assert elapsed < 10
    on_switch = [e for e in ctl.scds[npe].conn.read_entries() if e.table == pl.Npe.FILTER]
    assert len(on_switch) == n
    assert ctl.store.scalar("SELECT COUNT(*) FROM filters") == n


@needs_bmv2
def test_the_encoder_stops_with_the_controller(live_node, tmp_path):
    from controller.core import Controller
    ctl = Controller(live_node.testbed, tmp_path / "spp.db", monitor_interval=0.3)
    ctl.start(monitor=False)
    npe = ctl.scds[live_node.testbed.nodes[0].npes[0].name]
    try:
        npe.encode_ahead(_updates(40))
        pid = npe._encoder.proc.pid
        npe.ahead_reset()
    finally:
        ctl.stop()
    deadline = time.monotonic() + 3
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def test_an_update_the_encoder_refuses_costs_the_group_not_the_encoder():
    """A group the child cannot encode is encoded by the executor (which
    fails it, saying why); the child stays, and serves the next group."""
    sw = Scd(Switch("npe", "127.0.0.1:1", 1), pl.npe_pipeline(), "npe")
    sw.start_encoder()
    try:
        enc = sw._encoder
        deadline = time.monotonic() + 10
        while not enc.ready():
            assert time.monotonic() < deadline, "the encoder did not start"
            time.sleep(0.02)
        bad = [(INSERT, Entry.make("NpeIngress.no_such_table", {}, "NoAction"))] + _updates(40)
        sw.encode_ahead(bad)
        assert sw._take_ahead(bad) is None
        good = _updates(40)
        sw.encode_ahead(good)
        body = sw._take_ahead(good)
        assert sw._encoder is enc and enc.alive()
        assert len(p4runtime_pb2.WriteRequest.FromString(body).updates) == len(good)
    finally:
        sw.stop_encoder()


# ---- review 19 of the encoder: the two ways it broke groups ----

class _Done:
    def result(self, timeout=None):
        return None


class _Conn:
    """A P4Runtime session that takes every write and records it (the
    encoder's plumbing is under test here, not a switch)."""

    def __init__(self):
        self.sent = []

    def write_send(self, updates):
        self.sent.append(("encoded-here", len(updates)))
        return _Done()

    def write_send_encoded(self, body):
        self.sent.append(("encoder", body))
        return _Done()

    def write_wait(self, call, updates, timeout=None):
        return call.result(timeout)


class _Npe(Scd):
    def _session(self, what, force=False):
        return self._fake, None


@pytest.fixture
def many_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip("hard RLIMIT_NOFILE < 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))    # as controller/__main__.py
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]  # slice hosts' connections
    yield
    for fd in fds:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _npe():
    sw = _Npe(Switch("npe", "127.0.0.1:1", 1), pl.npe_pipeline(), "npe")
    sw._fake = _Conn()
    sw.start_encoder()
    assert sw._encoder.proc.stdout.fileno() >= 1024
    time.sleep(1.5)                                 # the child has started
    return sw


def test_encode_ahead_never_fails_with_high_fds(many_fds):
    sw = _npe()
    try:
        ups = _updates(40)
        sw.encode_ahead(ups)                        # ValueError: filedescriptor out of range
        sw.write_send(ups)
    finally:
        sw.stop_encoder()


def test_a_group_of_filters_is_written_with_high_fds(many_fds, tmp_path):
    sw = _npe()
    store = Store(tmp_path / "db")
    ex = NodeExecutor("n", store, {"npe": sw}, repair=lambda switches: None)
    try:
        ex.submit(lambda ch: time.sleep(0.5))       # the next ones queue: one group
        ups = _updates(40)
        futs = [ex.submit(lambda ch, u=u: ch.write("npe", [u])) for u in ups]
        errors = []
        for f in futs:
            try:
                f.result(10)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        assert errors == [], f"{len(errors)} of {len(futs)} failed, e.g. {errors[0]}"
        assert sum(n if isinstance(n, int) else 1 for _, n in sw._fake.sent) >= 1
    finally:
        ex.stop()
        store.close()
        sw.stop_encoder()


def test_a_failed_hand_over_leaves_nothing_for_the_next_group(monkeypatch):
    sw = Scd(Switch("npe", "127.0.0.1:1", 1), pl.npe_pipeline(), "npe")
    sw.start_encoder()
    try:
        deadline = time.monotonic() + 10
        while not sw._encoder.ready():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first = _updates(40)                 # 44 updates: most handed over, the rest at the take
        for u in first:                      # one filter a change, as a group's jobs
            sw.encode_ahead([u])
        assert 0 < sw._sent < len(first)         # some handed over, the rest at the take
        real_add = Encoder.add

        def add(self, updates):
            monkeypatch.setattr(Encoder, "add", real_add)
            raise MemoryError("pickling the tail")
        monkeypatch.setattr(Encoder, "add", add)
        try:                                 # unfixed: the executor answers EINTERNAL,
            sw._take_ahead(first)            # and the group is rolled back
        except MemoryError:
            pass
        sw.ahead_reset()                     # the next group starts
        second = _updates(40, base=1000)
        for u in second:
            sw.encode_ahead([u])
        body = sw._take_ahead(second)
        sent = p4runtime_pb2.WriteRequest.FromString(body).updates if body else None
        assert body is None or len(sent) == len(second), \
            f"the switch would get {len(sent)} updates for a group of {len(second)}"
    finally:
        sw.stop_encoder()


def test_an_encoder_that_loaded_another_build_is_not_used():
    """The child reads the P4 files when it starts: if they were rebuilt
    since the controller read them, its IDs may differ, and it says so."""
    p = pl.npe_pipeline()
    enc = Encoder(p.p4info_path, p.json_path, p.cookie ^ 1, timeout=5.0)
    try:
        enc.add(_updates(2))
        with pytest.raises(EncoderError, match="another build"):
            enc.take()
    finally:
        enc.close(wait=0)
