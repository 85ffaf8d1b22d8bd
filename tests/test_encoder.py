"""The encoder process (controller/encoder.py): it encodes a group's updates
exactly as the executor's thread would, and when it dies, stalls or cannot
encode, the executor encodes them itself: a group is never lost or held
longer than the switch deadline because of it."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from conftest import needs_bmv2
from p4.v1 import p4runtime_pb2

from controller import pipeline as pl
from controller import scd as scd_mod
from controller.encoder import Encoder, EncoderError, EncodingRefused
from controller.p4rt import DELETE, INSERT, MODIFY, CounterCell, Entry, MeterCell


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
    enc = Encoder(p.p4info_path, p.json_path, timeout=2.0)
    yield p, enc
    enc.close(wait=0)


def test_the_encoder_encodes_as_the_executors_thread_would(encoder):
    p, enc = encoder
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
    from controller.scd import Scd
    from controller.testbed import Switch
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
