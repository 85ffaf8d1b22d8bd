"""P4Runtime session with one switch.

Connection, arbitration and the gRPC plumbing come from p4runtime-shell's
``P4RuntimeClient``; name-to-id lookups from its ``Context``; messages are
the p4runtime protos. What this module adds is a small, name-based API that
one controller process can use for many switches at once (p4runtime-shell's
own ``shell`` module keeps a single global connection).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass, field

import grpc
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from p4runtime_sh import p4runtime as p4rt_sh
from p4runtime_sh.bytes_utils import parse_value, to_canonical_bytes
from p4runtime_sh.context import Context, P4Type

log = logging.getLogger(__name__)

INSERT = p4runtime_pb2.Update.INSERT
MODIFY = p4runtime_pb2.Update.MODIFY
DELETE = p4runtime_pb2.Update.DELETE


class P4RuntimeError(Exception):
    """A P4Runtime request failed; ``str()`` names the switch and the reason."""


def load_p4info(path) -> p4info_pb2.P4Info:
    """Read a P4Info text file (as written by p4c's --p4runtime-files)."""
    info = p4info_pb2.P4Info()
    with open(path) as f:
        text_format.Merge(f.read(), info, allow_unknown_field=True)
    return info


def encode(value, bitwidth: int) -> bytes:
    """Canonical P4Runtime bytestring of an int, IPv4 or MAC address string."""
    if isinstance(value, bytes):
        return to_canonical_bytes(value)
    if isinstance(value, ipaddress.IPv4Address):
        value = str(value)
    return to_canonical_bytes(parse_value(str(value), bitwidth))


def decode(data: bytes) -> int:
    """Integer value of a P4Runtime bytestring."""
    return int.from_bytes(data, "big")


@dataclass(frozen=True)
class Entry:
    """A table entry by names: what the controller stores and compares.

    ``match`` maps a match field name to a value (exact), a
    ``(value, prefix_len)`` pair (lpm) or a ``(value, mask)`` pair (ternary).
    Values are ints, or address strings; ``params`` likewise for the action.
    """

    table: str
    match: tuple
    action: str
    params: tuple = ()
    priority: int = 0

    @classmethod
    def make(cls, table, match: dict, action, params: dict | None = None, priority=0):
        return cls(table, tuple(sorted(match.items())), action,
                   tuple(sorted((params or {}).items())), priority)

    @property
    def match_dict(self):
        return dict(self.match)

    @property
    def params_dict(self):
        return dict(self.params)


@dataclass
class CounterValue:
    packets: int = 0
    bytes: int = 0


@dataclass
class Pipeline:
    """A compiled P4 program: P4Info text and BMv2 JSON paths."""

    p4info_path: str
    json_path: str
    p4info: p4info_pb2.P4Info = field(init=False, repr=False)
    context: Context = field(init=False, repr=False)

    def __post_init__(self):
        self.p4info = load_p4info(self.p4info_path)
        self.context = Context()
        self.context.set_p4info(self.p4info)
        with open(self.json_path, "rb") as f:
            self.device_config = f.read()
        # Identifies this build of the program on a switch (P4Runtime cookie),
        # so "does the switch run it?" costs a few bytes, not the whole P4Info.
        digest = hashlib.sha256(self.p4info.SerializeToString(deterministic=True)
                                + self.device_config).digest()
        self.cookie = int.from_bytes(digest[:8], "big")

    def size(self, kind: P4Type, name: str) -> int:
        """Declared size of a table, counter or meter."""
        return self._obj(kind, name).size

    def register_size(self, name: str) -> int:
        for reg in self.p4info.registers:
            if reg.preamble.name == name:
                return reg.size
        raise KeyError(f"no register {name!r} in {self.p4info_path}")

    def _obj(self, kind, name):
        obj = self.context.get_obj(kind, name)
        if obj is None:
            raise KeyError(f"no {kind.pretty_name} {name!r} in {self.p4info_path}")
        return obj

    def table_entry(self, entry: Entry) -> p4runtime_pb2.TableEntry:
        """Build the P4Runtime message of an ``Entry``."""
        table = self._obj(P4Type.table, entry.table)
        msg = p4runtime_pb2.TableEntry(table_id=table.preamble.id)
        fields = {mf.name: mf for mf in table.match_fields}
        for name, value in entry.match:
            mf = fields.get(name)
            if mf is None:
                raise KeyError(f"table {entry.table} has no match field {name!r}")
            fm = p4runtime_pb2.FieldMatch(field_id=mf.id)
            kind = mf.match_type
            if kind == p4info_pb2.MatchField.EXACT:
                fm.exact.value = encode(value, mf.bitwidth)
            elif kind == p4info_pb2.MatchField.LPM:
                addr, plen = value
                if plen == 0:
                    continue  # don't-care: omitted, as P4Runtime requires
                raw = int.from_bytes(parse_value(str(addr), mf.bitwidth), "big")
                raw &= ((1 << mf.bitwidth) - 1) ^ ((1 << (mf.bitwidth - plen)) - 1)
                fm.lpm.value = encode(raw, mf.bitwidth)
                fm.lpm.prefix_len = plen
            elif kind == p4info_pb2.MatchField.TERNARY:
                val, mask = value
                ival = int.from_bytes(parse_value(str(val), mf.bitwidth), "big")
                imask = int.from_bytes(parse_value(str(mask), mf.bitwidth), "big")
                if imask == 0:
                    continue  # don't-care
                fm.ternary.value = encode(ival & imask, mf.bitwidth)
                fm.ternary.mask = encode(imask, mf.bitwidth)
            else:
                raise ValueError(f"match kind {kind} of {entry.table}.{name} not supported")
            msg.match.append(fm)
        action = self._obj(P4Type.action, entry.action)
        msg.action.action.action_id = action.preamble.id
        aparams = {p.name: p for p in action.params}
        given = dict(entry.params)
        if set(given) != set(aparams):
            raise KeyError(f"action {entry.action} takes {sorted(aparams)}, got {sorted(given)}")
        for p in action.params:
            msg.action.action.params.add(param_id=p.id, value=encode(given[p.name], p.bitwidth))
        if entry.priority:
            msg.priority = entry.priority
        return msg

    def entry_from_msg(self, msg: p4runtime_pb2.TableEntry) -> Entry:
        """Inverse of ``table_entry`` (values come back as ints)."""
        table = self.context.get_obj_by_id(msg.table_id)
        fields = {mf.id: mf for mf in table.match_fields}
        match = {}
        for fm in msg.match:
            mf = fields[fm.field_id]
            which = fm.WhichOneof("field_match_type")
            if which == "exact":
                match[mf.name] = decode(fm.exact.value)
            elif which == "lpm":
                match[mf.name] = (decode(fm.lpm.value), fm.lpm.prefix_len)
            elif which == "ternary":
                match[mf.name] = (decode(fm.ternary.value), decode(fm.ternary.mask))
        action = self.context.get_obj_by_id(msg.action.action.action_id)
        pnames = {p.id: p.name for p in action.params}
        params = {pnames[p.param_id]: decode(p.value) for p in msg.action.action.params}
        return Entry.make(table.preamble.name, match, action.preamble.name, params,
                          msg.priority)

    def canonical(self, entry: Entry) -> Entry:
        """The entry as a switch reads it back: ints, masked, don't-cares omitted."""
        return self.entry_from_msg(self.table_entry(entry))


class _Client(p4rt_sh.P4RuntimeClient):
    """p4runtime-shell's client, raising instead of calling sys.exit()."""

    def handshake(self):
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.high = self.election_id[0]
        req.arbitration.election_id.low = self.election_id[1]
        self.stream_out_q.put(req)
        rep = self.get_stream_packet("arbitration", timeout=5)
        if rep is None:
            raise P4RuntimeError("no arbitration answer from the switch")
        if rep.arbitration.status.code != 0:
            raise P4RuntimeError("another controller is primary for this switch")


class SwitchConnection:
    """A primary P4Runtime session with one BMv2 switch.

    >>> sw = SwitchConnection("127.0.0.1:9559", Pipeline(p4info, json))
    >>> sw.set_pipeline()
    >>> sw.insert([Entry.make("NpeIngress.route.route", {...}, "...", {...})])
    """

    def __init__(self, grpc_addr: str, pipeline: Pipeline, device_id: int = 0,
                 election_id=(0, 1), timeout: float = 10.0):
        self.grpc_addr = grpc_addr
        self.pipeline = pipeline
        self.device_id = device_id
        deadline = time.monotonic() + timeout
        while True:
            channel = grpc.insecure_channel(grpc_addr)
            try:
                grpc.channel_ready_future(channel).result(
                    timeout=max(0.1, deadline - time.monotonic()))
                break
            except grpc.FutureTimeoutError:
                raise P4RuntimeError(f"{grpc_addr}: no P4Runtime server answered "
                                     f"within {timeout:.0f}s") from None
            finally:
                channel.close()
        try:
            self.client = _Client(device_id, grpc_addr, election_id)
        except P4RuntimeError as e:
            raise P4RuntimeError(f"{grpc_addr}: {e}") from None

    def close(self):
        self.client.tear_down()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, what, fn, *args):
        try:
            return fn(*args)
        except (p4rt_sh.P4RuntimeWriteException, p4rt_sh.P4RuntimeException) as e:
            raise P4RuntimeError(f"{self.grpc_addr}: {what}: {e}") from None
        except grpc.RpcError as e:
            raise P4RuntimeError(f"{self.grpc_addr}: {what}: {e.code().name} "
                                 f"{e.details()}") from None

    # Pipeline
    def set_pipeline(self):
        """Push the P4 program (SetForwardingPipelineConfig, VERIFY_AND_COMMIT),
        tagged with the pipeline's cookie."""
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.election_id.high, req.election_id.low = self.client.election_id
        req.config.p4info.CopyFrom(self.pipeline.p4info)
        req.config.p4_device_config = self.pipeline.device_config
        req.config.cookie.cookie = self.pipeline.cookie
        self._call("set pipeline", self.client.stub.SetForwardingPipelineConfig, req)

    def has_pipeline(self) -> bool:
        """True when the switch runs this build of our program (same cookie)."""
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        try:
            rep = self.client.stub.GetForwardingPipelineConfig(req)
        except grpc.RpcError:
            return False
        return rep.config.cookie.cookie == self.pipeline.cookie

    # Writes
    def write(self, updates):
        """Write ``[(INSERT|MODIFY|DELETE, Entry)]`` in one batched request."""
        if not updates:
            return
        req = p4runtime_pb2.WriteRequest()
        for op, entry in updates:
            u = req.updates.add(type=op)
            u.entity.table_entry.CopyFrom(self.pipeline.table_entry(entry))
        self._call(f"write {len(updates)} update(s)", self.client.write, req)

    def insert(self, entries):
        self.write([(INSERT, e) for e in entries])

    def modify(self, entries):
        self.write([(MODIFY, e) for e in entries])

    def delete(self, entries):
        self.write([(DELETE, e) for e in entries])

    # Reads
    def _read(self, entity):
        def run():
            return [e for rep in self.client.read_one(entity) for e in rep.entities]
        return self._call("read", run)

    def read_entries(self, table: str | None = None) -> list[Entry]:
        """Every entry of one table (or of all tables), as ``Entry`` objects."""
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = (self.pipeline._obj(P4Type.table, table).preamble.id
                                    if table else 0)
        return [self.pipeline.entry_from_msg(e.table_entry) for e in self._read(ent)]

    def read_counter(self, counter: str, index: int) -> CounterValue:
        ent = p4runtime_pb2.Entity()
        ce = ent.counter_entry
        ce.counter_id = self.pipeline._obj(P4Type.counter, counter).preamble.id
        ce.index.index = index
        out = self._read(ent)
        if not out:
            return CounterValue()
        data = out[0].counter_entry.data
        return CounterValue(data.packet_count, data.byte_count)

    def read_counters(self, counter: str) -> dict[int, CounterValue]:
        """All cells of a counter array, by index."""
        ent = p4runtime_pb2.Entity()
        ent.counter_entry.counter_id = self.pipeline._obj(P4Type.counter, counter).preamble.id
        return {e.counter_entry.index.index: CounterValue(e.counter_entry.data.packet_count,
                                                          e.counter_entry.data.byte_count)
                for e in self._read(ent)}

    def write_counter(self, counter: str, index: int, packets: int = 0, bytes_: int = 0):
        """Set one counter cell (clear_stats writes zeros)."""
        req = p4runtime_pb2.WriteRequest()
        ce = req.updates.add(type=MODIFY).entity.counter_entry
        ce.counter_id = self.pipeline._obj(P4Type.counter, counter).preamble.id
        ce.index.index = index
        ce.data.packet_count = packets
        ce.data.byte_count = bytes_
        self._call("write counter", self.client.write, req)

    def clear_counters(self, counter: str, start: int, count: int):
        """Zero cells [start, start + count) of a counter array in one batch."""
        if count <= 0:
            return
        req = p4runtime_pb2.WriteRequest()
        cid = self.pipeline._obj(P4Type.counter, counter).preamble.id
        for index in range(start, start + count):
            ce = req.updates.add(type=MODIFY).entity.counter_entry
            ce.counter_id = cid
            ce.index.index = index
            ce.data.packet_count = 0
            ce.data.byte_count = 0
        self._call("clear counters", self.client.write, req)

    def set_meter(self, meter: str, index: int, rate: int | None, burst: int = 0):
        """Configure an indirect meter as a single-rate policer.

        ``rate`` in meter units per second (bytes for byte meters); ``None``
        resets the meter to unconfigured, which lets everything through.
        """
        req = p4runtime_pb2.WriteRequest()
        me = req.updates.add(type=MODIFY).entity.meter_entry
        me.meter_id = self.pipeline._obj(P4Type.meter, meter).preamble.id
        me.index.index = index
        if rate is not None:
            me.config.cir = me.config.pir = rate
            me.config.cburst = me.config.pburst = max(burst, 1)
        self._call("set meter", self.client.write, req)

    def read_meter(self, meter: str, index: int) -> tuple[int, int] | None:
        """(rate, burst) of a meter cell, or None when unconfigured."""
        ent = p4runtime_pb2.Entity()
        ent.meter_entry.meter_id = self.pipeline._obj(P4Type.meter, meter).preamble.id
        ent.meter_entry.index.index = index
        out = self._read(ent)
        if not out or not out[0].meter_entry.HasField("config"):
            return None
        cfg = out[0].meter_entry.config
        return (cfg.pir, cfg.pburst)
