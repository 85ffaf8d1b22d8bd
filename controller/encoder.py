"""P4Runtime write requests encoded in a process of their own.

Encoding a table entry with the pure-Python protobuf (the only one
p4runtime-shell allows on Python 3.11) costs ~50 us, a third of a filter's
time in a node's executor, and the executor is a single thread: a bulk load
of filters goes no faster than it encodes. An ``Encoder`` is a child process
that holds the switch's P4Info and encodes the updates of a group *while*
the executor goes on with the group's next changes, on the other core:
the executor only pickles them (~1 us an entry).

The wire: the parent writes frames (4-byte length, then a pickle of a list
of updates, or of None to ask for everything so far); the child answers a
None with one frame of bytes, the serialized ``WriteRequest`` of every update
since the last one. Serialized messages concatenate into the message of all
their fields (repeated fields appended, in order), so the parent puts the
request's header (device and election IDs) in front and sends the bytes as
they are. Only the parent's pipes reach the child: nothing of a slice's does.

The child encodes with protobuf's compiled implementation (upb, ~7x
faster) when ``make venv`` installed one beside the venv
(``<venv>/encoder-protobuf``, COMPILED_DIR): the controller itself keeps the
pure-Python protobuf p4runtime-shell requires, but nothing in the child needs
p4runtime-shell's pin. The p4runtime package's generated modules predate
protobuf 4 and cannot load under it, so the child builds those modules from
the parent's own descriptors (the first frame it reads): the same .proto
files, so the same wire format, and the bytes are the ones the parent would
send (tests/test_encoder.py compares them). Without that directory, or if it
does not load, the child encodes with the pure-Python protobuf (and says so).

The child is a helper, never a dependency: if it dies, stalls, is not
ready yet, or loaded another build of the P4 files, the caller encodes in
its own thread as before (``EncoderError``), and starts another child a
while later (scd.ENCODER_RETRY_S).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import select
import struct
import subprocess
import sys
import time

log = logging.getLogger(__name__)

_LEN = struct.Struct("!I")
READY = b"R"             # the child's first byte: it has loaded the P4Info, whose
_COOKIE = struct.Struct("!Q")    # pipeline cookie (p4rt.Pipeline) follows, then
COMPILED, PURE = b"c", b"p"      # which protobuf it encodes with

#: where ``make venv`` puts the compiled protobuf for the child, unless the
#: environment variable says another directory ("": the pure-Python one)
COMPILED_DIR = os.path.join(sys.prefix, "encoder-protobuf")
COMPILED_ENV = "SPP_ENCODER_PROTOBUF"
AGAIN = "--again"
#: the generated modules the child rebuilds from the parent's descriptors,
#: in dependency order (google/protobuf/any and google/rpc/status load as
#: they are: their generated code is recent enough)
_P4_MODULES = ("p4.config.v1.p4types_pb2", "p4.config.v1.p4info_pb2",
               "p4.v1.p4data_pb2", "p4.v1.p4runtime_pb2")


class EncoderError(Exception):
    """The encoder could not answer; nothing it holds is usable."""


class EncodingRefused(EncoderError):
    """An update could not be encoded (the caller's own encoding will say
    why); the encoder itself is fine, and starts afresh."""


#: seconds the child may take per update it holds, on top of the timeout
#: (it encodes one in ~50 us; a freed fastpath's thousands take a while)
PER_UPDATE_S = 0.001


def _wait(fd: int, write: bool, deadline: float | None):
    if deadline is None:
        return
    if not _poll(fd, write, max(0.0, deadline - time.monotonic())):
        raise EncoderError("no progress in time (stalled?)")


def _poll(fd: int, write: bool, seconds: float) -> bool:
    """poll(), not select(): the controller's descriptors go past 1024."""
    p = select.poll()
    p.register(fd, select.POLLOUT if write else select.POLLIN)
    return bool(p.poll(math.ceil(seconds * 1000)))


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    out = bytearray()
    while len(out) < n:
        _wait(fd, False, deadline)
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EncoderError("the encoder exited")
        out += chunk
    return bytes(out)


def _write_all(fd: int, data: bytes, deadline: float | None):
    view = memoryview(data)
    while view:
        _wait(fd, True, deadline)
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue


class Encoder:
    """The parent's end: ``add`` updates as they come, ``take`` the bytes of
    all of them. One user at a time (a node's executor thread)."""

    def __init__(self, p4info_path: str, json_path: str, cookie: int, timeout: float = 5.0):
        self.timeout = timeout
        self.cookie = cookie            # the parent's Pipeline's: same P4Info and JSON
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.encoder", str(p4info_path), str(json_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True,
            # Not the controller's terminal group: Ctrl-C stops the
            # controller, which closes the pipe, and the child exits.
            start_new_session=True)
        # The parent never blocks on a child that stopped reading: a full
        # pipe waits at most ``timeout``, then the child is given up.
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.pending = 0               # updates added since the last take
        self._ready = False            # the child said it has loaded the P4Info
        self.compiled: bool | None = None   # encodes with the compiled protobuf
        self._send(_descriptors())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        """Has the child started (never waits)? Until then, a caller encodes
        itself rather than wait for it."""
        if not self._ready and _poll(self.proc.stdout.fileno(), False, 0):
            self._expect_ready(None)
        return self._ready

    def _expect_ready(self, deadline: float | None):
        hello = _read_exactly(self.proc.stdout.fileno(), 2 + _COOKIE.size, deadline)
        if hello[:1] != READY:
            raise EncoderError("the encoder did not start")
        # The files it read are the ones the parent read (not rebuilt since).
        if _COOKIE.unpack(hello[1:-1])[0] != self.cookie:
            raise EncoderError("the encoder loaded another build of the P4 program")
        self.compiled = hello[-1:] == COMPILED
        self._ready = True

    def add(self, updates: list):
        """Hand ``[(type, Entry | MeterCell | CounterCell), ...]`` over."""
        self._send(updates)
        self.pending += len(updates)

    def take(self) -> bytes:
        """The serialized WriteRequest (no header) of everything added since
        the last ``take``, in order."""
        self._send(None)
        deadline = time.monotonic() + self.timeout + self.pending * PER_UPDATE_S
        self.pending = 0
        if not self._ready:
            self._expect_ready(deadline)
        fd = self.proc.stdout.fileno()
        (n,) = _LEN.unpack(_read_exactly(fd, _LEN.size, deadline))
        if n == 0xFFFFFFFF:
            raise EncodingRefused("the encoder could not encode an update (see its log)")
        return _read_exactly(fd, n, deadline)

    def _send(self, obj):
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            # The child may still be encoding what it holds before it reads.
            _write_all(self.proc.stdin.fileno(), _LEN.pack(len(data)) + data,
                       time.monotonic() + self.timeout + self.pending * PER_UPDATE_S)
        except (OSError, ValueError) as e:
            raise EncoderError(f"the encoder is gone: {e}") from None

    def close(self, wait: float = 1.0):
        """Stop the child (killed if it does not exit within ``wait``)."""
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _descriptors() -> list[tuple[str, bytes]]:
    """The parent's generated modules, as the child rebuilds them."""
    import importlib
    return [(name, importlib.import_module(name).DESCRIPTOR.serialized_pb)
            for name in _P4_MODULES]


def _load_compiled(where: str, descriptors: list[tuple[str, bytes]]):
    """Put the compiled protobuf in ``where`` first on the path and the
    p4runtime package's modules, built from ``descriptors``, in sys.modules.
    Raises if it cannot (then the child starts again without it)."""
    import importlib
    import types
    sys.path.insert(0, where)
    from google.protobuf import descriptor_pool
    from google.protobuf.internal import api_implementation, builder
    if api_implementation.Type() == "python":
        raise ImportError("it is the pure-Python protobuf")
    importlib.import_module("google.rpc.status_pb2")    # what p4runtime.proto imports
    pool = descriptor_pool.Default()
    for name, serialized in descriptors:
        module = types.ModuleType(name)
        module.DESCRIPTOR = pool.AddSerializedFile(serialized)
        builder.BuildMessageAndEnumDescriptors(module.DESCRIPTOR, module.__dict__)
        builder.BuildTopDescriptorsAndMessages(module.DESCRIPTOR, name, module.__dict__)
        package, _, leaf = name.rpartition(".")
        sys.modules[name] = module
        setattr(importlib.import_module(package), leaf, module)


def _serve(p4info_path: str, json_path: str, again: bool = False):
    """The child: encode what the parent sends until its pipe closes
    (``again``: started afresh without the compiled protobuf, the parent's
    first frame already read)."""
    import gc

    rd, wr = sys.stdin.fileno(), sys.stdout.fileno()
    where = os.environ.get(COMPILED_ENV, COMPILED_DIR)
    compiled = False
    if not again:
        (n,) = _LEN.unpack(_read_exactly(rd, _LEN.size, None))
        descriptors = pickle.loads(_read_exactly(rd, n, None))
        compiled = bool(where) and os.path.isdir(where)
    if compiled:
        try:
            _load_compiled(where, descriptors)
        except Exception as e:  # noqa: BLE001 - any failure: start again without it
            log.warning("encoder: cannot use the compiled protobuf in %s (%s: %s); "
                        "encoding with the pure-Python one", where, type(e).__name__, e)
            # A fresh interpreter, on the same pipes: what was imported
            # cannot be taken back.
            os.execv(sys.executable, [sys.executable, "-m", "controller.encoder",
                                      p4info_path, json_path, AGAIN])
    from p4.v1 import p4runtime_pb2

    from .p4rt import Pipeline

    pipeline = Pipeline(p4info_path, json_path)
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    _write_all(wr, READY + _COOKIE.pack(pipeline.cookie) + (COMPILED if compiled else PURE),
               None)
    parts: list[bytes] = []
    failed = False
    while True:
        try:
            (n,) = _LEN.unpack(_read_exactly(rd, _LEN.size, None))
        except EncoderError:                # the parent closed the pipe: done
            return
        updates = pickle.loads(_read_exactly(rd, n, None))
        if updates is None:
            out = b"".join(parts)
            _write_all(wr, _LEN.pack(0xFFFFFFFF) if failed else _LEN.pack(len(out)) + out,
                       None)
            parts, failed = [], False
            continue
        if failed:
            continue
        req = p4runtime_pb2.WriteRequest()
        try:
            for op, item in updates:
                pipeline.entity(item, req.updates.add(type=op).entity)
        except Exception:  # noqa: BLE001 - the parent encodes it itself, and says why
            log.exception("encoder: cannot encode")
            failed = True
            continue
        parts.append(req.SerializeToString())


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        _serve(sys.argv[1], sys.argv[2], again=sys.argv[3:] == [AGAIN])
    except (BrokenPipeError, KeyboardInterrupt):
        pass
