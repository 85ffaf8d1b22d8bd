"""The Slice-RMP library: the SPP slice API for programs on a slice host.

Methods carry the SPP's function names and arguments; every failure raises
``SppError`` with the SPP error code (``e.code``), its name (``e.name``:
EINVAL, ENOENT, EQUOTA, ...) and a message.

Without arguments, ``Slice()`` finds the controller and the slice's secret
the way the testbed provides them on a slice host: the environment variables
SPP_CONTROLLER (URL) and SPP_SECRET, or else the files ``controller`` and
``secret`` in the slice's private directory /var/run/spp (SPP_DIR overrides
the directory).

>>> s = Slice()
>>> fp = s.alloc_fastpath(bw=10_000, filters=16, queues=4, buffers=256, stats=16)
>>> s.resrv_fpath_ifbw(fp["fpid"], ifn=1, bw=5_000)
>>> mi = s.alloc_udp_tunnel(fp["fpid"], ifn=1, bw=5_000)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from urllib.parse import quote

import urllib3

from controller.errors import BY_NAME

log = logging.getLogger(__name__)

DEFAULT_DIR = "/var/run/spp"

STATS_PRE_PACKETS = 0x01
STATS_PRE_BYTES = 0x02
STATS_POST_PACKETS = 0x04
STATS_POST_BYTES = 0x08
STATS_ALL = 0x0F


class SppError(Exception):
    """A slice API call failed. ``code`` is the SPP error code (never 0)."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(f"{name} ({code}): {message}")
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def named(cls, name: str, message: str) -> SppError:
        """An error of the library's own (controller/errors.py has every code)."""
        return cls(BY_NAME[name].code, name, message)


def _setting(env: str, filename: str, directory: str | None) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    path = Path(directory or os.environ.get("SPP_DIR", DEFAULT_DIR)) / filename
    try:
        return path.read_text().strip()
    except OSError:
        return None


def mask_all(**fields) -> dict:
    """A mask selecting the given key fields entirely: ``mask_all(dst_addr=1)``."""
    full = {"meta_if": 0xFFFF, "dst_addr": "255.255.255.255", "src_addr": "255.255.255.255",
            "protocol": 0xFF, "src_port": 0xFFFF, "dst_port": 0xFFFF}
    return {f: full[f] for f, on in fields.items() if on}


class Slice:
    """A client of the controller's RMP for one slice."""

    def __init__(self, controller: str | None = None, secret: str | None = None,
                 spp_dir: str | None = None, timeout: float = 10.0,
                 local_address: str | None = None):
        self.controller = controller or _setting("SPP_CONTROLLER", "controller", spp_dir)
        self.secret = secret or _setting("SPP_SECRET", "secret", spp_dir)
        if not self.controller or not self.secret:
            raise SppError.named("EAUTH", "no controller URL or slice secret: set SPP_CONTROLLER "
                           f"and SPP_SECRET, or provide {spp_dir or DEFAULT_DIR}/controller and "
                           "/secret")
        url = urllib3.util.parse_url(self.controller.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise SppError.named("EINVAL", f"controller {self.controller!r}: not an http(s) URL")
        self._prefix = (url.path or "") + "/api/"
        # urllib3 (what requests is built on) costs a slice program about a
        # third of httpx's CPU per call. Keep-alive connections, one per
        # thread in flight; a connection that cannot be made is retried, 0,
        # 0.5 and 1 s later (the call did not happen: this rides out a
        # controller restart), one that breaks after sending is not.
        pool = (urllib3.HTTPSConnectionPool if url.scheme == "https"
                else urllib3.HTTPConnectionPool)
        self._pool = pool(url.host, url.port or (443 if url.scheme == "https" else 80),
                          maxsize=64, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                          retries=urllib3.Retry(total=None, connect=3, read=0, redirect=0,
                                                status=0, other=0, backoff_factor=0.25),
                          headers={"Authorization": f"Bearer {self.secret}",
                                   "Content-Type": "application/json"},
                          **({"source_address": (local_address, 0)} if local_address else {}))

    def close(self):
        self._pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, function: str, **args):
        """Call any slice API function by name; returns its result."""
        try:
            rep = self._pool.urlopen("POST", self._prefix + quote(function, safe=""),
                                     body=json.dumps(args).encode())
        except urllib3.exceptions.MaxRetryError as e:
            if isinstance(e.reason, (urllib3.exceptions.NewConnectionError,
                                     urllib3.exceptions.ConnectTimeoutError,
                                     urllib3.exceptions.SSLError)):
                # Nothing was sent: the call did not happen.
                raise SppError.named("EUNREACH", f"controller {self.controller}: "
                                                 f"{e.reason}") from None
            raise self._unanswered(e.reason or e) from None
        except urllib3.exceptions.HTTPError as e:
            raise self._unanswered(e) from None
        try:
            body = json.loads(rep.data)
        except ValueError:
            raise SppError.named("EINVAL", f"HTTP {rep.status}: "
                                           f"{rep.data[:200].decode(errors='replace')}") from None
        if rep.status != 200 or body.get("code", 0) != 0:
            raise SppError(body.get("code", 3), body.get("error", "EINVAL"),
                           body.get("message", rep.data[:200].decode(errors="replace")))
        return body["result"]

    def _unanswered(self, e) -> SppError:
        # Sent, but no answer (in time, or one to read): it may or may not
        # have taken effect.
        return SppError.named("ETIMEDOUT", f"controller {self.controller}: "
                                           f"{type(e).__name__} {e}")

    # ---- fastpaths ----
    def alloc_fastpath(self, bw, filters, queues, buffers, stats, sram=0, dram=0, copt="ipv4"):
        """Allocate a fastpath; returns fpInfo (fpid, npe_addr, ld/exc/ret endpoints)."""
        return self.call("alloc_fastpath", copt=copt, bw=bw, filters=filters, queues=queues,
                         buffers=buffers, stats=stats, sram=sram, dram=dram)

    def free_fastpath(self, fpid):
        return self.call("free_fastpath", fpid=fpid)

    # ---- interfaces ----
    def get_interfaces(self):
        return self.call("get_interfaces")

    def get_ifn(self, addr):
        return self.call("get_ifn", addr=addr)

    def get_ifattrs(self, ifn):
        return self.call("get_ifattrs", ifn=ifn)

    def get_ifpeer(self, ifn):
        return self.call("get_ifpeer", ifn=ifn)

    def resrv_fpath_ifbw(self, fpid, ifn, bw):
        return self.call("resrv_fpath_ifbw", fpid=fpid, ifn=ifn, bw=bw)

    def reles_fpath_ifbw(self, fpid, ifn, bw):
        return self.call("reles_fpath_ifbw", fpid=fpid, ifn=ifn, bw=bw)

    # ---- meta-interfaces and endpoints ----
    def alloc_udp_tunnel(self, fpid, ifn, bw, port=0):
        """A meta-interface on interface ``ifn``; returns its number ``mi`` and endpoint."""
        return self.call("alloc_udp_tunnel", fpid=fpid, ifn=ifn, port=port, bw=bw)

    def free_udp_tunnel(self, fpid, mi):
        return self.call("free_udp_tunnel", fpid=fpid, mi=mi)

    def get_endpoint(self, fpid, mi):
        return self.call("get_endpoint", fpid=fpid, mi=mi)

    def alloc_endpoint(self, ifn, port=0, proto="udp", slice_port=0):
        return self.call("alloc_endpoint", ifn=ifn, port=port, proto=proto, slice_port=slice_port)

    def free_endpoint(self, eid):
        return self.call("free_endpoint", eid=eid)

    # ---- filters ----
    def write_fltr(self, fpid, fid, key, mask, result, type=0):
        """Install filter ``fid``: ``key``/``mask`` dicts of meta_if, dst_addr,
        src_addr, protocol, src_port, dst_port; ``result`` a dict with action
        forward (meta_if, nh_addr, nh_port, queue, stats), local (stats) or drop."""
        return self.call("write_fltr", fpid=fpid, fid=fid, type=type, key=key, mask=mask,
                         result=result)

    def update_result(self, fpid, fid, result):
        return self.call("update_result", fpid=fpid, fid=fid, result=result)

    def get_fltr_byfid(self, fpid, fid):
        return self.call("get_fltr_byfid", fpid=fpid, fid=fid)

    def get_fltr_bykey(self, fpid, key, mask, type=0):
        return self.call("get_fltr_bykey", fpid=fpid, type=type, key=key, mask=mask)

    def lookup_fltr(self, fpid, key, type=0):
        return self.call("lookup_fltr", fpid=fpid, type=type, key=key)

    def rem_fltr_byfid(self, fpid, fid):
        return self.call("rem_fltr_byfid", fpid=fpid, fid=fid)

    def rem_fltr_bykey(self, fpid, key, mask, type=0):
        return self.call("rem_fltr_bykey", fpid=fpid, type=type, key=key, mask=mask)

    # ---- queues ----
    def bind_queue(self, fpid, mi, queues):
        return self.call("bind_queue", fpid=fpid, mi=mi, queues=list(queues))

    def set_queue_params(self, fpid, qid, threshold, bw):
        return self.call("set_queue_params", fpid=fpid, qid=qid, threshold=threshold, bw=bw)

    def get_queue_params(self, fpid, qid):
        return self.call("get_queue_params", fpid=fpid, qid=qid)

    def get_queue_len(self, fpid, qid):
        return self.call("get_queue_len", fpid=fpid, qid=qid)

    # ---- statistics ----
    def read_stats(self, fpid, index, flags=STATS_ALL):
        return self.call("read_stats", fpid=fpid, index=index, flags=flags)

    def clear_stats(self, fpid, index):
        return self.call("clear_stats", fpid=fpid, index=index)

    def create_periodic(self, fpid, index, interval, size, flags=STATS_ALL, model="pull",
                        port=0, callback=""):
        return self.call("create_periodic", fpid=fpid, index=index, flags=flags,
                         interval=interval, size=size, model=model, port=port, callback=callback)

    def delete_periodic(self, pid):
        return self.call("delete_periodic", pid=pid)

    def set_callback(self, pid, callback):
        return self.call("set_callback", pid=pid, callback=callback)

    def get_periodic(self, pid):
        return self.call("get_periodic", pid=pid)

    # ---- memory ----
    def mem_write(self, fpid, offset, values):
        return self.call("mem_write", fpid=fpid, offset=offset, values=list(values))

    def mem_read(self, fpid, offset, count):
        return self.call("mem_read", fpid=fpid, offset=offset, count=count)

    # ---- extension: many calls in one request ----
    MAX_BATCH = 1000

    def batch(self, calls):
        """Several calls in order, in as few requests as it takes: ``calls`` is
        an iterable of ``(function, {args})``. Returns one item per call: its
        result, or the ``SppError`` it failed with (not raised: the other
        calls are unaffected). Much faster than one call at a time:

        >>> out = s.batch(("write_fltr", {"fpid": f, "fid": i, ...}) for i in range(5000))
        >>> failed = [r for r in out if isinstance(r, SppError)]
        """
        calls = [{"fn": fn, "args": args} for fn, args in calls]
        out = []
        for at in range(0, len(calls), self.MAX_BATCH):
            for r in self.call("batch", calls=calls[at:at + self.MAX_BATCH]):
                out.append(r["result"] if r.get("code") == 0 else
                           SppError(r.get("code", 3), r.get("error", "EINVAL"),
                                    r.get("message", "")))
        return out


def fastpath_sockets(fp: dict, rcvbuf: int = 4 << 20) -> tuple[socket.socket, socket.socket]:
    """The two sockets the SPP's alloc_fastpath returns, opened from its fpInfo:
    UDP sockets bound to the local-delivery and exception endpoints on the
    slice host. Traffic from them to ``fp["ret_endpoint"]`` (meta-net header
    and forwarding key in front, see docs/metanet.md) goes back into the
    fastpath through its substrate-only filters.

    >>> ld, exc = fastpath_sockets(s.alloc_fastpath(...))
    """
    out = []
    for ep in (fp["ld_endpoint"], fp["exc_endpoint"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((ep["addr"], ep["port"]))
        out.append(sock)
    return out[0], out[1]


class PushReceiver:
    """Statistics pushed by periodic jobs of the push model
    (``create_periodic(..., model="push", port=P, callback=NAME)``): each entry
    arrives as it is taken, one datagram per entry, and is handed to the
    Python callable registered under the job's callback name (``set_callback``
    switches the name, so the callable, of later entries).

    >>> rx = PushReceiver(port=7000)
    >>> rx.register("count", lambda entry: print(entry["pre_packets"]))
    >>> rx.serve(stop)          # or rx.poll(timeout) for one entry

    Only the controller's datagrams are entries: the receiver listens on the
    address the slice host reaches the controller from (its management
    address; ``address`` overrides) and drops datagrams from any other source
    (counted in ``foreign``): an end host or another slice that can reach the
    slice host cannot forge counters. The controller is found as ``Slice``
    finds it (``controller``, SPP_CONTROLLER, or the slice's directory).

    An entry whose callback no callable is registered under, or a datagram
    that is not an entry, is not dropped in silence: ``poll`` raises SppError
    (ENOENT naming the callback, EINVAL) and ``serve`` logs it, keeps the
    entry in ``unknown`` and goes on.
    """

    def __init__(self, port: int, address: str | None = None, controller: str | None = None,
                 spp_dir: str | None = None):
        url = controller or _setting("SPP_CONTROLLER", "controller", spp_dir)
        host = urllib3.util.parse_url(url.rstrip("/")).host if url else None
        if not host:
            raise SppError.named("EINVAL", "no controller URL: set SPP_CONTROLLER, or provide "
                                           f"{spp_dir or DEFAULT_DIR}/controller")
        self.source = socket.gethostbyname(host)
        if address is None:             # the local address towards the controller
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((self.source, 9))
                address = probe.getsockname()[0]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.port = self.sock.getsockname()[1]
        self.callbacks: dict[str, object] = {}
        self.unknown: list[dict] = []
        self.foreign = 0

    def register(self, name: str, fn):
        self.callbacks[name] = fn

    def poll(self, timeout: float | None = None) -> dict | None:
        """Wait for one entry (None after ``timeout``), call its callable, return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.sock.settimeout(left)
            try:
                data, (src, _) = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            if src == self.source:
                break
            self.foreign += 1
        try:
            entry = json.loads(data)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self.unknown.append({"datagram": data[:200].decode(errors="replace")})
            raise SppError.named("EINVAL", f"a datagram from the controller that is not a "
                                           f"periodic entry: {e}") from None
        fn = self.callbacks.get(entry.get("callback"))
        if fn is None:
            self.unknown.append(entry)
            raise SppError.named("ENOENT", f"periodic job {entry.get('pid')}: no callable "
                                           f"registered for callback {entry.get('callback')!r}")
        fn(entry)
        return entry

    def serve(self, stop=None, tick: float = 0.5):
        """Dispatch entries until ``stop`` (a threading.Event) is set."""
        while stop is None or not stop.is_set():
            try:
                self.poll(tick)
            except SppError as e:
                log.warning("%s", e.message)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


SPP_FUNCTIONS = tuple(name for name in vars(Slice) if not name.startswith("_")
                      and name not in ("call", "close", "batch", "MAX_BATCH"))
