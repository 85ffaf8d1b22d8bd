"""SCD, the substrate control daemon: one per switch.

The P4Runtime session (plus BMv2 Thrift for registers) that writes what
translate.py makes of the controller's records, with a deadline on every
call: a switch that does not answer in time is marked down at once, later
calls that need it fail fast with ESWITCH, and the controller's monitor
brings it back (re-pushing the pipeline and every entry after a restart).
Writes to a switch come only from its node's executor (one writer);
reads may come from any thread.
"""

from __future__ import annotations

import logging
import threading
import time

from . import pipeline as pl
from .encoder import Encoder, EncoderError, EncodingRefused
from .errors import SppError
from .p4rt import (
    DELETE,
    INSERT,
    MODIFY,
    MeterCell,
    P4RuntimeError,
    Pipeline,
    SwitchConnection,
    SwitchUnreachable,
    WriteError,
)
from .testbed import Switch
from .thrift_api import ThriftClient, ThriftError
from .translate import Intent

log = logging.getLogger(__name__)

#: seconds a switch has to answer one request
DEADLINE = 3.0

#: A group's updates for a switch are handed to the encoder process
#: (encoder.py) this many at a time, while the executor goes on with the
#: group; a group with fewer is encoded in the executor's thread (one
#: call's would wait for the round trip and gain nothing). 8, not 32: while
#: several slices load filters, each batch has 4 changes in flight
#: (limits.BATCH_WINDOW_SHARED) and groups are of 10-30 (4 slices loading:
#: 6,400-6,600 filters/s against 5,000-5,800 with 32; single calls' groups
#: are too small either way).
AHEAD_CHUNK = 8
#: seconds after an encoder failed before another is started (meanwhile the
#: executor's thread encodes)
ENCODER_RETRY_S = 10.0


def _key(item):
    """What a switch identifies an update's target by."""
    if hasattr(item, "table"):
        return ("t", item.table, item.match, item.priority)
    if hasattr(item, "meter"):
        return ("m", item.meter, item.index)
    return ("c", item.counter, item.index)


def split_batches(updates):
    """Cut a list of updates where an update targets what an earlier one of
    the same batch did: P4Runtime may apply a batch in any order."""
    out, cur, seen = [], [], set()
    for op, item in updates:
        k = _key(item)
        if k in seen:
            out.append(cur)
            cur, seen = [], set()
        cur.append((op, item))
        seen.add(k)
    if cur:
        out.append(cur)
    return out


class PendingWrite:
    """A switch write under way (Scd.write_send), awaited like a Future."""

    def __init__(self, scd: Scd, conn, call, updates):
        self.scd, self.conn, self.call, self.updates = scd, conn, call, updates

    def result(self, timeout: float | None = None):
        """None once the switch took it; SppError(ESWITCH) as ``write``
        raises it; TimeoutError if no answer came within ``timeout``."""
        try:
            return self.conn.write_wait(self.call, self.updates, timeout)
        except (P4RuntimeError, WriteError) as e:
            raise self.scd._error("write", e, self.conn) from None


class Scd:
    """The controller's agent for one switch (LC or NPE)."""

    def __init__(self, switch: Switch, pipeline: Pipeline, role: str,
                 deadline: float = DEADLINE):
        self.switch = switch
        self.pipeline = pipeline
        self.role = role
        self.deadline = deadline
        self.conn: SwitchConnection | None = None
        self.thrift: ThriftClient | None = None
        self.up = False
        self._lock = threading.Lock()           # swapping connections
        # The group's updates handed to the encoder ahead of its write
        # (encode_ahead); only the node's executor thread touches these.
        self._encoder: Encoder | None = None
        self._encoder_failed = 0.0              # when it last failed (monotonic)
        self._ahead: list = []                  # the group's updates so far
        self._sent = 0                          # how many of them the encoder has
        self._ahead_off = False                 # encode this group's here
        self._encoder_stopped = False           # the controller is stopping

    @property
    def name(self):
        return self.switch.name

    def connect(self, timeout: float = 10.0) -> bool:
        """(Re)connect; push the pipeline if the switch does not run it.
        Returns True when the pipeline was pushed (the switch is empty).
        The switch stays marked down until ``mark_up`` (after reconcile)."""
        self.close()            # one primary session at a time (same election ID)
        conn = SwitchConnection(self.switch.grpc_addr, self.pipeline, self.switch.device_id,
                                timeout=timeout, deadline=self.deadline)
        try:
            host = self.switch.grpc_addr.rsplit(":", 1)[0]
            thrift = ThriftClient(host, self.switch.thrift_port,
                                  timeout_ms=int(self.deadline * 1000))
        except ThriftError:
            conn.close()
            raise
        with self._lock:
            self.conn, self.thrift = conn, thrift
        if conn.has_pipeline():
            return False
        log.info("%s: pushing pipeline %s", self.name, self.pipeline.json_path)
        conn.set_pipeline()
        return True

    def mark_up(self):
        self.up = True

    def mark_down(self, why: str):
        if self.up:
            log.warning("%s: marked down: %s", self.name, why)
        self.up = False

    @staticmethod
    def _close(conn, thrift):
        if conn:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead channel may fail to close
                pass
        if thrift:
            thrift.close()

    def close(self):
        self.up = False
        with self._lock:
            old = (self.conn, self.thrift)
            self.conn = self.thrift = None
        self._close(*old)

    def alive(self, deadline: float = 1.0) -> bool:
        """Does the switch answer, running our pipeline? (Never blocks longer
        than ``deadline``.)"""
        conn = self.conn
        if conn is None:
            return False
        try:
            return conn.has_pipeline(deadline=deadline)
        except P4RuntimeError:
            return False

    def _session(self, what: str, force: bool = False):
        if not (self.up or force) or self.conn is None or self.thrift is None:
            raise SppError("ESWITCH", f"{self.name} is down (not answering); nothing was "
                                      f"changed. The controller repairs it when it is back.")
        return self.conn, self.thrift

    def _error(self, what: str, e: Exception, session=None) -> SppError:
        if isinstance(e, SwitchUnreachable | ThriftError):
            # Only the session in use: a late timeout of a replaced one (the
            # switch stalled, then came back) says nothing about the switch now.
            if session is None or session in (self.conn, self.thrift):
                self.mark_down(str(e))
            return SppError("ESWITCH", f"{self.name} did not answer ({what}): {e}")
        err = SppError("ESWITCH", f"{self.name} refused ({what}): {e}")
        err.entry_errors = getattr(e, "errors", None)
        return err

    def write(self, updates, force: bool = False):
        """Batches of (INSERT|MODIFY|DELETE, Entry|MeterCell|CounterCell), in
        order; SppError(ESWITCH) on failure (``entry_errors`` per update of the
        refused batch, when the switch said)."""
        if not updates:
            return
        conn, _ = self._session("write", force)
        for batch in split_batches(updates):
            try:
                conn.write(batch)
            except (P4RuntimeError, WriteError) as e:
                raise self._error("write", e, conn) from None

    def write_send(self, updates) -> PendingWrite | None:
        """``write`` without waiting, when the updates fit one batch (None
        when they do not: use ``write``). The answer is the PendingWrite's.
        Updates given to ``encode_ahead`` (these very ones, in order) are
        sent as the encoder encoded them."""
        body = self._take_ahead(updates)
        batches = split_batches(updates)
        if len(batches) != 1:
            return None
        conn, _ = self._session("write")
        call = conn.write_send_encoded(body) if body is not None else conn.write_send(updates)
        return PendingWrite(self, conn, call, updates)

    # ---- encoding ahead (encoder.py) ----
    def encode_ahead(self, updates):
        """The executor's group will write ``updates`` to this switch, after
        those given before: once there are AHEAD_CHUNK, the encoder process
        encodes them meanwhile. Never fails: whatever goes wrong, write_send
        encodes them itself."""
        if self._ahead_off:
            return
        self._ahead.extend(updates)
        if len(self._ahead) - self._sent < AHEAD_CHUNK:
            return
        enc = self._encoder_now()
        if enc is None:                 # none ready: this group is encoded here
            self._ahead_off = True
            return
        try:
            enc.add(self._ahead[self._sent:])
            self._sent = len(self._ahead)
        except Exception as e:  # noqa: BLE001 - never fails: encoded here
            self._encoder_lost(e)
            self._ahead_off = True

    def ahead_reset(self):
        """Forget the updates given ahead (the group ended, or failed)."""
        self._take_ahead(None)

    def _take_ahead(self, updates) -> bytes | None:
        """The encoder's bytes for ``updates`` when they are what was given
        ahead, else None (and whatever the encoder holds is thrown away)."""
        ahead, sent, off = self._ahead, self._sent, self._ahead_off
        self._ahead, self._sent, self._ahead_off = [], 0, False
        enc = self._encoder
        if not sent or enc is None:
            return None
        try:
            same = (not off and updates is not None and len(ahead) == len(updates)
                    and all(a is b for a, b in zip(ahead, updates, strict=True)))
            if same and sent < len(ahead):
                enc.add(ahead[sent:])
            body = enc.take()
        except EncodingRefused:
            return None     # a bug: the executor's own encoding fails the group, and says why
        except Exception as e:  # noqa: BLE001 - the child may hold parts: drop it
            self._encoder_lost(e)
            return None
        return body if same else None

    def start_encoder(self):
        """Start the encoder process now (it takes ~0.1 s), so that the first
        large group finds it ready; otherwise the first such group starts it."""
        if self._encoder is None and not self._encoder_stopped:
            try:
                self._encoder = Encoder(self.pipeline.p4info_path, self.pipeline.json_path,
                                        self.pipeline.cookie, timeout=self.deadline)
            except OSError as e:
                self._encoder_lost(e)

    def _encoder_now(self) -> Encoder | None:
        """The encoder if it is running and ready; else None (and one is
        started for the groups to come, unless one failed lately)."""
        enc = self._encoder
        if enc is not None:
            try:
                if enc.alive():
                    return enc if enc.ready() else None
                raise EncoderError("it exited")
            except Exception as e:  # noqa: BLE001
                self._encoder_lost(e)
                return None
        if self.role == "npe" and time.monotonic() - self._encoder_failed >= ENCODER_RETRY_S:
            self.start_encoder()
        return None

    def _encoder_lost(self, why):
        log.warning("%s: encoder process lost (%s); encoding in the executor's thread "
                    "for %.0f s", self.name, why, ENCODER_RETRY_S)
        enc, self._encoder = self._encoder, None
        self._encoder_failed = time.monotonic()
        if enc is not None:
            enc.close(wait=0)

    def stop_encoder(self):
        self._encoder_stopped = True
        enc, self._encoder = self._encoder, None
        if enc is not None:
            enc.close()

    def read_counter(self, name: str, index: int):
        conn, _ = self._session("read")
        try:
            return conn.read_counter(name, index)
        except P4RuntimeError as e:
            raise self._error("counter read", e, conn) from None

    def read_counters(self, name: str):
        conn, _ = self._session("read")
        try:
            return conn.read_counters(name)
        except P4RuntimeError as e:
            raise self._error("counter read", e, conn) from None

    def read_counter_cells(self, name: str, indices):
        conn, _ = self._session("read")
        try:
            return conn.read_counter_cells(name, indices)
        except P4RuntimeError as e:
            raise self._error("counter read", e, conn) from None

    def read_entries(self, force: bool = False):
        conn, _ = self._session("read", force)
        try:
            return conn.read_entries()
        except P4RuntimeError as e:
            raise self._error("read", e, conn) from None

    def register_read(self, name: str, start: int, count: int, force: bool = False) -> list[int]:
        _, thrift = self._session("register read", force)
        try:
            if count == 1:
                return [thrift.register_read(name, start)]
            return thrift.register_read_range(name, start, count)
        except ThriftError as e:
            raise self._error("register read", e, thrift) from None

    def register_write(self, name: str, cells: dict[int, int], force: bool = False):
        if not cells:
            return
        _, thrift = self._session("register write", force)
        try:
            if len(cells) == 1:
                (index, value), = cells.items()
                thrift.register_write(name, index, value)
            else:
                thrift.register_write_many(name, cells)
        except ThriftError as e:
            raise self._error("register write", e, thrift) from None

    def register_fill(self, name: str, start: int, count: int, value: int = 0,
                      force: bool = False):
        _, thrift = self._session("register write", force)
        try:
            thrift.register_fill(name, start, count, value)
        except ThriftError as e:
            raise self._error("register write", e, thrift) from None

    def reconcile(self, intent: Intent, pushed: bool = False) -> dict[str, int]:
        """Make the switch hold exactly ``intent``: no missing, no extra entry.

        Meters are always written (idempotent). SRAM is read whole and the
        cells that differ from the database are written (0 where it has
        none): a write of a call answered ESWITCH may reach a stalled switch
        late, or its rollback may not reach it at all, and the slice would
        read a value it was told was not written. Runs in the node's
        executor (no other writer meanwhile), also while the switch is
        still marked down.
        """
        want = {}
        for e in intent.entries:
            c = self.pipeline.canonical(e)
            want[(c.table, c.match, c.priority)] = c
        have = {(e.table, e.match, e.priority): e for e in self.read_entries(force=True)}
        deletes = [(DELETE, e) for k, e in have.items() if k not in want]
        inserts = [(INSERT, e) for k, e in want.items() if k not in have]
        modifies = [(MODIFY, e) for k, e in want.items() if k in have and have[k] != e]
        self.write(deletes + modifies + inserts, force=True)
        if self.role == "npe":
            self.write([(MODIFY, MeterCell(pl.Npe.QUEUE_RATE, i, *(r or (None, 0))))
                        for i, r in intent.meters.items()]
                       + [(MODIFY, MeterCell(pl.Npe.FASTPATH_RATE, i, *r))
                          for i, r in intent.fastpath_meters.items()], force=True)
            size = self.pipeline.register_size(pl.Npe.SRAM)
            have = [0] * size if pushed else self.register_read(pl.Npe.SRAM, 0, size, force=True)
            sram = {i: intent.registers.get(i, 0) for i, v in enumerate(have)
                    if v != intent.registers.get(i, 0)}
            self.register_write(pl.Npe.SRAM, sram, force=True)
        else:
            self.write([(MODIFY, MeterCell(pl.Lc.POLICE, i, *(r or (None, 0))))
                        for i, r in intent.police_meters.items()]
                       + [(MODIFY, c) for c in intent.host_meters], force=True)
        counts = {"inserted": len(inserts), "deleted": len(deletes),
                  "modified": len(modifies), "entries": len(want)}
        if self.role == "npe":
            counts["sram_cells"] = len(sram)
        log.info("%s: reconciled %s", self.name, counts)
        return counts
