"""The REST face of the RMP: one POST route per SPP slice API function.

``POST /api/<function>`` with a JSON body of the function's arguments and
``Authorization: Bearer <slice secret>``, from the slice host's management
address. Success: ``{"code": 0, "result": ...}``. Every failure, whatever
its cause (bad JSON, unknown function, wrong method, a body over the size
limit, a bug), is an HTTP 4xx/5xx with ``{"code": N, "error": NAME,
"message": ...}`` (controller/errors.py). OpenAPI at /openapi.json,
interactive docs at /docs.

The API is one table, ``FUNCTIONS``: name -> request model, the controller
component that serves it, and its description. A function's handler is the
component's method of the same name, called with the slice and the model's
fields as keyword arguments; ``call()`` runs one function, so a batch of
calls is a loop over it. Argument limits come from controller/limits.py,
which the core checks too.
"""

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from . import limits as L
from .errors import BY_NAME, CODES, SppError, markdown_table, quote
from .results import ok_model
from .rmp import CHANGES, ENTRY_CHANGES
from .srm import SliceQuota

log = logging.getLogger(__name__)


# ---- argument types ----

def _ipv4(v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise ValueError(f"{quote(v)} is not an IPv4 address") from None


IPv4 = Annotated[str, Field(max_length=15, json_schema_extra={"format": "ipv4"}),
                 AfterValidator(_ipv4)]
U8 = Annotated[int, Field(ge=0, le=0xFF)]
U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
U32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
Port = Annotated[int, Field(ge=0, le=0xFFFF, description="UDP/TCP port; 0: let the SRM choose")]
Kbps = Annotated[int, Field(ge=0, le=L.MAX_KBPS, description="kb/s")]
PosKbps = Annotated[int, Field(ge=1, le=L.MAX_KBPS, description="kb/s")]
Fid = Annotated[int, Field(ge=0, le=L.MAX_FILTER_ID, description="filter ID; lower wins")]
Flags = Annotated[int, Field(ge=1, le=0x0F, description="0x01 pre-queue packets, 0x02 pre-queue "
                                                         "bytes, 0x04 post-queue packets, "
                                                         "0x08 post-queue bytes")]
LookupType = Annotated[int, Field(ge=0, le=1, description="0: packets from meta-interfaces; "
                                                          "1: substrate-only filters")]
Offset = Annotated[int, Field(ge=0, le=L.MAX_SRAM_WORDS, description="32-bit words")]
Callback = Annotated[str, Field(max_length=L.MAX_CALLBACK_LEN)]


class Req(BaseModel):
    """Strict: no unknown fields, no coercion (an integer field refuses 1.0,
    true and "1")."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ---- request models ----

class NoArgs(Req):
    pass


class Fp(Req):
    fpid: U16


class AllocFastpath(Req):
    copt: str = Field("ipv4", max_length=L.MAX_CODE_OPTION_LEN,
                      description="code option (only ipv4 so far)")
    bw: PosKbps
    filters: U16
    queues: U16
    buffers: Annotated[int, Field(ge=0, le=L.MAX_BUFFERS)]
    stats: U16
    sram: Annotated[int, Field(ge=0, le=L.MAX_SRAM_WORDS, description="32-bit words")] = 0
    dram: Annotated[int, Field(ge=0, le=L.MAX_DRAM_BYTES, description="bytes")] = 0


class IfnReq(Req):
    ifn: U16


class AddrReq(Req):
    addr: IPv4


class IfBw(Fp):
    ifn: U16
    bw: PosKbps


class AllocTunnel(Fp):
    ifn: U16
    port: Port = 0
    bw: Kbps


class MiReq(Fp):
    mi: U16


class AllocEndpoint(Req):
    ifn: U16
    port: Port = 0
    proto: Literal["udp", "tcp"] = "udp"
    slice_port: Port = Field(0, description="port on the slice host; 0: the same as port")


class EidReq(Req):
    eid: U16


class FilterKey(Req):
    """Lookup key (IPv4 code option). A mask uses the same fields: address
    masks as dotted quads ("255.255.0.0"), the others as integers."""

    meta_if: U16 = 0
    dst_addr: IPv4 = "0.0.0.0"
    src_addr: IPv4 = "0.0.0.0"
    protocol: U8 = 0
    src_port: U16 = 0
    dst_port: U16 = 0


class FilterResult(Req):
    action: Literal["forward", "local", "drop"]
    meta_if: U16 = 0
    nh_addr: IPv4 = "0.0.0.0"
    nh_port: U16 = 0
    queue: U16 = 0
    stats: U16 = 0


class FidReq(Fp):
    fid: Fid


class UpdateResult(FidReq):
    result: FilterResult


class LookupReq(Fp):
    lookup_type: LookupType = Field(0, alias="type")
    key: FilterKey


class ByKey(LookupReq):
    mask: FilterKey


class WriteFltr(ByKey):
    fid: Fid
    result: FilterResult


class BindQueue(Fp):
    mi: U16
    qids: Annotated[list[U16], Field(alias="queues", min_length=1,
                                     max_length=L.MAX_QUEUES_PER_BIND)]


class QidReq(Fp):
    qid: U16


class QueueParams(QidReq):
    threshold: Annotated[int, Field(ge=0, le=L.MAX_THRESHOLD, description="packets; 0: no limit")]
    bw: Kbps


class StatsIdx(Fp):
    index: U16


class ReadStats(StatsIdx):
    flags: Flags = 0x0F


class CreatePeriodic(StatsIdx):
    flags: Flags = 0x0F
    interval: Annotated[int, Field(ge=L.MIN_INTERVAL_MS, le=L.MAX_INTERVAL_MS, description="ms")]
    size: Annotated[int, Field(ge=1, le=L.MAX_PERIODIC_SIZE,
                               description="entries of the ring buffer")]
    model: Literal["pull", "push"] = "pull"
    port: U16 = Field(0, description="UDP port on the slice host (push model)")
    callback: Callback = ""


class PidReq(Req):
    pid: U16


class SetCallback(PidReq):
    callback: Callback


class MemWrite(Fp):
    offset: Offset
    values: Annotated[list[U32], Field(min_length=1, max_length=L.MAX_WORDS_PER_CALL)]


class MemRead(Fp):
    offset: Offset
    count: Annotated[int, Field(ge=0, le=L.MAX_WORDS_PER_CALL)]


class QuotaModel(Req):
    """Per-slice quotas on a node (defaults: controller/limits.py)."""

    fastpaths: Annotated[int, Field(ge=0, le=1 << 16)] = L.SLICE_FASTPATHS
    meta_ifs: Annotated[int, Field(ge=0, le=1 << 16)] = L.SLICE_META_IFS
    endpoints: Annotated[int, Field(ge=0, le=1 << 16)] = L.SLICE_ENDPOINTS
    periodic: Annotated[int, Field(ge=0, le=1 << 16)] = L.SLICE_PERIODIC
    npe_share: Annotated[int, Field(ge=0, le=100, description="percent of each NPE resource "
                                    "(filters, stats, queues, buffers, SRAM, DRAM, bandwidth) "
                                    "the slice's fastpaths may hold")] = L.SLICE_NPE_SHARE
    if_share: Annotated[int, Field(ge=0, le=100, description="percent of each interface's "
                                   "bandwidth the slice may reserve")] = L.SLICE_IF_SHARE
    host_kbps: Annotated[int, Field(ge=0, le=L.MAX_KBPS, description="kb/s the slice host may "
                                    "send into the node, whatever the destination (policed at "
                                    "the LC, excess dropped; 0: nothing)")] = L.SLICE_HOST_KBPS
    host_pps: Annotated[int, Field(ge=0, le=L.MAX_HOST_PPS, description="packets/s the slice "
                                   "host may send into the node (policed at the LC, excess "
                                   "dropped; 0: nothing)")] = L.SLICE_HOST_PPS


class HeldPort(Req):
    ifn: U16
    port: Annotated[int, Field(ge=L.MIN_USER_PORT, le=0xFFFF)]


class CreateSlice(Req):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    node: Annotated[str, Field(max_length=64)]
    mgmt_addr: IPv4
    data_addr: IPv4
    lc_port: Annotated[int, Field(ge=0, le=510)]
    mac: Annotated[str, Field(pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")]
    quota: QuotaModel = Field(default_factory=lambda: QuotaModel(),
                              description="what the slice may hold on the node")
    ports: Annotated[list[HeldPort], Field(max_length=L.MAX_HELD_PORTS)] = Field(
        default_factory=list, description="UDP ports of the node's interfaces held for the "
        "slice: no other slice may ask for them, the SRM gives them to nobody")


# ---- responses (documentation; the handlers build them) ----

class SppOk(BaseModel):
    code: Literal[0]
    result: Any = Field(description="the function's result")


class SppErrorBody(BaseModel):
    code: Annotated[int, Field(ge=1)]
    error: Literal[tuple(BY_NAME)]  # type: ignore[valid-type]
    message: Annotated[str, Field(max_length=L.MAX_MESSAGE)]


def _error_responses() -> dict:
    by_status: dict[int, list[str]] = {}
    for c in CODES:
        by_status.setdefault(c.http, []).append(c.name)
    return {status: {"model": SppErrorBody, "description": ", ".join(names)}
            for status, names in sorted(by_status.items())}


# ---- the slice API: one table ----

@dataclass(frozen=True)
class Function:
    model: type[Req]
    doc: str
    component: str = "rmp"          # the Controller attribute whose method serves it


FUNCTIONS: dict[str, Function] = {
    "alloc_fastpath": Function(AllocFastpath, "Allocate a fastpath (meta-router) on an NPE: "
                               "code option, bandwidth and counts of filters, queues, buffers, "
                               "stats, SRAM words and DRAM bytes. Returns fpInfo: fastpath id, "
                               "NPE address, local-delivery, exception and return endpoints."),
    "free_fastpath": Function(Fp, "Free a fastpath and everything it holds."),
    "get_interfaces": Function(NoArgs, "Interface numbers of this node's physical interfaces."),
    "get_ifn": Function(AddrReq, "Interface number of an interface address."),
    "get_ifattrs": Function(IfnReq, "Address, type (peering or not), link and available "
                                    "bandwidth."),
    "get_ifpeer": Function(IfnReq, "Peer address of a peering interface."),
    "resrv_fpath_ifbw": Function(IfBw, "Reserve interface bandwidth for a fastpath."),
    "reles_fpath_ifbw": Function(IfBw, "Release reserved interface bandwidth."),
    "alloc_udp_tunnel": Function(AllocTunnel, "Allocate a meta-interface (UDP tunnel endpoint) "
                                              "on an interface."),
    "free_udp_tunnel": Function(MiReq, "Free a meta-interface."),
    "get_endpoint": Function(MiReq, "Endpoint of a meta-interface."),
    "alloc_endpoint": Function(AllocEndpoint, "Forward an (interface, protocol, port) from the "
                                              "LC to the slice host."),
    "free_endpoint": Function(EidReq, "Stop forwarding an endpoint."),
    "write_fltr": Function(WriteFltr, "Install a filter (key, mask, result); a lower filter ID "
                                      "takes precedence."),
    "update_result": Function(UpdateResult, "Change a filter's result."),
    "get_fltr_byfid": Function(FidReq, "A filter by ID."),
    "get_fltr_bykey": Function(ByKey, "A filter by its exact key and mask."),
    "lookup_fltr": Function(LookupReq, "The filter a packet with this key would match."),
    "rem_fltr_byfid": Function(FidReq, "Remove a filter by ID."),
    "rem_fltr_bykey": Function(ByKey, "Remove a filter by key and mask."),
    "bind_queue": Function(BindQueue, "Bind queues to a meta-interface."),
    "set_queue_params": Function(QueueParams, "Set a queue's threshold (packets) and bandwidth "
                                              "(kb/s)."),
    "get_queue_params": Function(QidReq, "A queue's binding, threshold and bandwidth."),
    "get_queue_len": Function(QidReq, "A queue's occupancy (packets ahead of its latest "
                                      "packet)."),
    "read_stats": Function(ReadStats, "Counters of a stats index; flags choose among the four."),
    "clear_stats": Function(StatsIdx, "Zero the four counters of a stats index."),
    "create_periodic": Function(CreatePeriodic, "Sample a stats index every interval into a "
                                                "ring buffer (pull), also sent to a UDP port on "
                                                "the slice host (push).", "periodic"),
    "delete_periodic": Function(PidReq, "Stop a periodic job.", "periodic"),
    "set_callback": Function(SetCallback, "Change the callback tag a push job sends.",
                             "periodic"),
    "get_periodic": Function(PidReq, "A periodic job's vector, oldest entry first.", "periodic"),
    "mem_write": Function(MemWrite, "Write 32-bit words of the fastpath's SRAM."),
    "mem_read": Function(MemRead, "Read 32-bit words of the fastpath's SRAM."),
}

SLICE_API = tuple(FUNCTIONS)


def call(ctl, sl: dict, name: str, body: Req):
    """Run one slice API function for slice ``sl``; its result, or SppError.
    Anything else a handler raises is a bug: logged, and EINTERNAL."""
    method = getattr(getattr(ctl, FUNCTIONS[name].component), name)
    metrics = getattr(ctl, "metrics", None)         # counted by function and answer
    t0 = time.perf_counter()
    try:
        res = method(sl, **body.model_dump())
    except SppError as e:
        if metrics:
            metrics.api.observe(name, e.error.name, time.perf_counter() - t0)
        raise
    except Exception:
        log.exception("%s by slice %s failed unexpectedly", name, sl.get("name"))
        if metrics:
            metrics.api.observe(name, "EINTERNAL", time.perf_counter() - t0)
        raise SppError("EINTERNAL", f"{name} failed unexpectedly; the controller logged "
                                    "why") from None
    if metrics:
        if isinstance(res, Future):                 # a batch's change: counted when done
            res.add_done_callback(lambda f: f.cancelled() or metrics.api.observe(
                name, f.exception().error.name if isinstance(f.exception(), SppError)
                else "EINTERNAL" if f.exception() else "OK", time.perf_counter() - t0))
        else:
            metrics.api.observe(name, "OK", time.perf_counter() - t0)
    return res


async def serve(ctl, sl: dict, name: str, body: Req):
    """``call`` from the event loop. A change holds no thread: it is queued to
    its node's executor and awaited (thousands may wait, at no cost). A read
    runs in a worker thread: it may wait for a switch."""
    if name in CHANGES:
        with ctl.rmp.deferred():
            res = call(ctl, sl, name, body)
        if not isinstance(res, Future):
            return res
        try:
            return await asyncio.wrap_future(res)
        finally:
            # The error raised here must not keep this frame, and through it
            # the Future, the error and the call's arguments, in a cycle
            # that only the cyclic GC frees (review 18).
            res = None
    return await run_in_threadpool(call, ctl, sl, name, body)


async def serve_answer(ctl, sl: dict, name: str, body: Req) -> JSONResponse:
    """``serve``, with its success answer rendered. A read's is rendered in
    the read's worker thread, not in the event loop, which serves every
    slice's calls: a full periodic vector (4,096 entries, ~550 KB) took 5-12
    ms to encode there, and 25 ms more through FastAPI's encoder, which any
    caller reaches with another Content-Type: another slice's calls waited
    behind each (get_interfaces p99 0.9 -> 23 and 82 ms; review 20, R20-3)."""
    if name in CHANGES:
        return _ok(await serve(ctl, sl, name, body))
    return await run_in_threadpool(lambda: _ok(call(ctl, sl, name, body)))


class BatchCall(Req):
    fn: Literal[tuple(FUNCTIONS)]  # type: ignore[valid-type]
    args: dict[str, Any] = Field(default_factory=dict)


class Batch(Req):
    calls: Annotated[list[BatchCall], Field(min_length=1, max_length=L.MAX_BATCH_CALLS)]


def call_batch(ctl, sl: dict, calls: list[BatchCall],
               window: Callable[[], int] = lambda: L.BATCH_WINDOW) -> list[dict]:
    """The batch extension: each call as if sent alone and in order, each
    with its own SPP answer; consecutive calls that change state are queued
    together, so the node commits them as one group (executor.py). They are
    queued in a window that slides (the next as soon as the oldest is
    answered, so the executor never waits for the batch) and holds
    ``window()`` (limits.py: a change of one table entry weighs 1, any other
    change ENTRY_CHANGES_PER_CHANGE, and one always fits): a batch of slow
    changes (4,096-word mem_writes) must not put another slice's change
    behind all of them. Reads answer at most MAX_BATCH_ANSWER_BYTES in all;
    a call after that is not run (E2BIG): the answer is rendered in one
    piece, and must stay small enough not to hold the controller for long."""
    out: list = [None] * len(calls)
    pending: deque[tuple[int, object, int]] = deque()     # (index, Future, weight)
    queued = 0                                            # weight of what is pending
    budget = L.MAX_BATCH_ANSWER_BYTES

    def settle(room: int = 0):
        """Wait for the oldest pending changes until ``room`` more fits
        (for all of them if 0)."""
        nonlocal queued
        while pending and (room == 0 or queued + room > window()):
            i, fut, w = pending.popleft()
            queued -= w
            # Not fut.result(): raising the error here would tie it, through
            # its traceback, to these frames and the whole batch's arguments
            # (a cycle only the cyclic GC frees, and it runs seldom).
            err = fut.exception()
            if err is None:
                out[i] = {"code": 0, "result": fut.result()}
            elif isinstance(err, SppError):
                out[i] = err.to_json()
            else:
                raise err

    for i, c in enumerate(calls):
        if budget < 0:
            out[i] = SppError("E2BIG", f"a batch's answers take at most "
                                       f"{L.MAX_BATCH_ANSWER_BYTES} bytes; this call was not "
                                       "run: send it in another batch").to_json()
            continue
        fn = FUNCTIONS[c.fn]
        try:
            body = fn.model.model_validate(c.args)
        except ValidationError as e:
            out[i] = invalid(e.errors()).to_json()
            continue
        weight = 1 if c.fn in ENTRY_CHANGES else L.ENTRY_CHANGES_PER_CHANGE
        settle(weight if c.fn in CHANGES else 0)      # a read sees the calls before it
        try:
            with ctl.rmp.deferred():
                res = call(ctl, sl, c.fn, body)
        except SppError as e:
            out[i] = e.to_json()
            continue
        if isinstance(res, Future):
            pending.append((i, res, weight))
            queued += weight
        else:
            out[i] = {"code": 0, "result": res}
            budget -= len(json.dumps(res, default=str))
    settle()
    return out


def invalid(errors: list[dict]) -> SppError:
    """EINVAL from pydantic/FastAPI validation errors, quoting no input."""
    msgs = []
    for err in errors:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            msg = f"malformed JSON: {err.get('ctx', {}).get('error', '')}"
        msgs.append(f"{quote(where) if len(where) > L.MAX_QUOTE else where or 'body'}: {msg}")
    return SppError("EINVAL", "; ".join(msgs) or "malformed request")


def _unparsable(cause: BaseException | None) -> str:
    """Why FastAPI could not decode a body (it only says 'error parsing')."""
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "an integer in the body has too many digits"
    return "the body is not JSON"


def _reply(e: SppError, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=e.error.http, content=e.to_json(), headers=headers)


class Callers:
    """Which slice hosts called lately: the ``keep`` most recent distinct
    ones, so that "did another host call within ``recent`` seconds?" costs
    the same however many addresses call. Only authenticated calls count,
    and not those a host made before it began a bulk load (``loading``): a
    slice that sets up its fastpath and then loads its filters is loading,
    not waiting for single answers, once its load begins; a call it makes
    while one of its bulk batches is in flight (reading its counters, say)
    counts."""

    def __init__(self, recent: float = L.OTHERS_RECENT_S, keep: int = 8):
        self.recent, self.keep = recent, keep
        # address -> (time of its last call, made while it was loading?), oldest first
        self._last: dict[str, tuple[float, bool]] = {}
        # When the latest host forgotten for room had called: it still
        # counts as another host (whoever asks), so that hosts calling and
        # then bulk-loading cannot push a single caller out unnoticed.
        self._forgotten = -math.inf
        self._bulk: dict[str, int] = {}       # address -> its bulk batches in flight
        self._lock = threading.Lock()     # the event loop and batches' threads use it

    def seen(self, who: str):
        with self._lock:
            self._last.pop(who, None)
            self._last[who] = (time.monotonic(), who in self._bulk)
            if len(self._last) > self.keep:
                oldest = next(iter(self._last))       # the least recent
                self._forgotten = max(self._forgotten, self._last.pop(oldest)[0])

    @contextmanager
    def loading(self, who: str):
        """While ``who``'s bulk batch runs. The host's calls made while none
        of its bulk batches was in flight are forgotten (its set-up)."""
        with self._lock:
            if not self._last.get(who, (0.0, False))[1]:
                self._last.pop(who, None)
            self._bulk[who] = self._bulk.get(who, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._bulk[who] -= 1
                if not self._bulk[who]:
                    del self._bulk[who]

    def others(self, who: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last, forgotten = list(self._last.items()), self._forgotten
        return now - forgotten < self.recent or any(now - t < self.recent
                                                    for h, (t, _) in last if h != who)


class FairShare:
    """Per caller (TCP peer address: one per slice host), at most ``reads``
    calls are served at once, the others wait, in order, costing no CPU. One
    slice flooding the API from many connections then holds at most that
    many of the controller's threads, and another slice's call waits for at
    most that many of the flood's calls, not for all of them.

    Changes hold no thread (they are queued to their node's executor, which
    commits what is queued as one group), so a caller alone may have up to
    ``changes`` of them in flight: one slice program's many clients load
    faster. While another slice host has called lately (``callers``), a
    change admitted from then on also takes one of its caller's ``reads``
    places (decided when its turn comes, not when it arrived)."""

    def __init__(self, app, reads: int, changes: int, callers: Callers):
        self.app = app
        self.limits = {False: reads, True: changes}
        self.callers = callers
        self._gates: dict[tuple[str, bool], list] = {}  # (address, change?) -> [sem, users]

    @asynccontextmanager
    async def _gate(self, key: tuple[str, bool]):
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = [asyncio.Semaphore(self.limits[key[1]]), 0]
        gate[1] += 1
        try:
            async with gate[0]:
                yield
        finally:
            gate[1] -= 1
            if gate[1] == 0:
                del self._gates[key]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("client"):
            return await self.app(scope, receive, send)
        who = scope["client"][0]
        path = scope.get("path", "")
        change = path.startswith("/api/") and path[5:] in CHANGES
        async with AsyncExitStack() as held:
            await held.enter_async_context(self._gate((who, change)))
            if change and self.callers.others(who):     # changes' gate first, always
                await held.enter_async_context(self._gate((who, False)))
            await self.app(scope, receive, send)


class DirectCalls:
    """``POST /api/<function>`` served without FastAPI's per-request
    machinery (routing, dependency resolution, the encoder), which costs more
    CPU than the call itself: same checks, same order, same answers.

    Only the common case is served here: a JSON body that parses, the
    ``Bearer`` scheme, arguments the function's model accepts. Anything else
    (bad JSON, a missing header, invalid arguments, an unknown function) goes
    on to the FastAPI app with the body it sent, which answers it as always:
    it is the one place errors of the request's shape are worded, and the
    OpenAPI schema comes from the same models.
    """

    def __init__(self, app, ctl, authenticate):
        self.app = app
        self.ctl = ctl
        self.authenticate = authenticate        # (secret, address) -> slice
        self.served = 0                 # calls answered here (the rest: by FastAPI)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        fn = FUNCTIONS.get(path[5:]) if path.startswith("/api/") else None
        if fn is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        ctype = auth = None
        for k, v in scope["headers"]:               # the first of each, as Starlette
            if k == b"content-type" and ctype is None:
                ctype = v
            elif k == b"authorization" and auth is None:
                auth = v
        scheme, _, secret = (auth or b"").decode("latin-1").partition(" ")
        secret = secret.strip()
        if ctype != b"application/json" or scheme.lower() != "bearer" or not secret:
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            try:
                message = await receive()
            except HTTPException as exc:              # BodyLimit: over a limit
                return await _reply(SppError("E2BIG", _too_big(exc)))(scope, receive, send)
            if message["type"] != "http.request":
                return                                # the caller left
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            obj = json.loads(body)
        except Exception:  # noqa: BLE001 - not the common case: FastAPI answers it
            return await self.app(scope, _replay(body, receive), send)
        try:
            sl = self.authenticate(secret, scope["client"][0] if scope.get("client") else None)
            try:
                args = fn.model.model_validate(obj)
            except ValidationError:
                return await self.app(scope, _replay(body, receive), send)
            answer = await serve_answer(self.ctl, sl, path[5:], args)
        except SppError as e:
            self.served += 1
            return await _reply(e)(scope, receive, send)
        self.served += 1
        await answer(scope, receive, send)


def _ok(result) -> JSONResponse:
    """A success answer, rendered now, by the caller's thread: plain JSON with
    the C encoder, anything else through FastAPI's encoder."""
    out = {"code": 0, "result": result}
    try:
        return JSONResponse(out)
    except (TypeError, ValueError):
        return JSONResponse(jsonable_encoder(out))


def _replay(body: bytes, receive):
    """``receive`` for an app after the body was read: the body, then the rest."""
    sent = False

    async def again():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return again


def _too_big(exc: HTTPException) -> str:
    """What BodyLimit refused a body for."""
    if str(exc.detail).startswith("request body"):
        return str(exc.detail)
    return f"request body over {L.MAX_BODY_BYTES} bytes"


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with E2BIG (HTTP 413): at
    once when Content-Length says so, else as soon as the count passes it.
    (Starlette's RequestBodyLimitMiddleware answers in plain text.) Also
    bodies with more than MAX_BODY_CONTAINERS JSON arrays and objects
    (counted as '[' and '{' bytes, before anything decodes them): the event
    loop, which serves every slice's calls, decodes a body before anything
    else, and 1 MiB of small arrays held it for 30-110 ms (review 20, R20-4)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        if length is not None and not (length.isdigit() and int(length) <= self.limit):
            return await _reply(SppError("E2BIG", f"request body over {self.limit} bytes"),
                                {"Connection": "close"})(scope, receive, send)
        seen = nests = 0

        async def counted():
            nonlocal seen, nests
            message = await receive()
            body = message.get("body", b"")
            seen += len(body)
            nests += body.count(b"[") + body.count(b"{")
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            if nests > L.MAX_BODY_CONTAINERS:
                raise HTTPException(413, f"request body with over {L.MAX_BODY_CONTAINERS} "
                                         "JSON arrays and objects")
            return message

        await self.app(scope, counted, send)


bearer = HTTPBearer(auto_error=False, description="the slice's secret")


def create_app(ctl, admin_token: str) -> FastAPI:
    app = FastAPI(
        title="SPP slice API",
        version="1.0",
        description=__doc__ + "\n\n## Error codes\n\n" + markdown_table(),
        redirect_slashes=False,             # /api/x/ is no function: ENOENT, not a redirect
        # No OpenTelemetry here (its per-request checks cost CPU for nothing);
        # the operator listener serves Prometheus metrics (metrics.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    callers = Callers()

    def authenticate(secret: str | None, address: str | None, calling: bool = True) -> dict:
        """The calling slice; FairShare learns that its host called (a batch
        tells it itself, once its size is known)."""
        sl = ctl.admin.authenticate(secret, address)
        if calling:
            callers.seen(address)
        return sl

    app.add_middleware(DirectCalls, ctl=ctl, authenticate=authenticate)
    app.add_middleware(BodyLimit, limit=L.MAX_BODY_BYTES)
    app.add_middleware(FairShare, reads=L.CALLS_IN_FLIGHT, changes=L.CHANGES_IN_FLIGHT,
                       callers=callers)

    @app.exception_handler(SppError)
    def spp_error(request: Request, exc: SppError):
        return _reply(exc)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError):
        return _reply(invalid(exc.errors()))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException):
        path = quote(request.url.path)
        if exc.status_code == 404:
            e = SppError("ENOENT", f"no function {path}")
        elif exc.status_code == 405:
            e = SppError("ENOTSUP", f"{request.method} {path}: the slice API takes POST")
        elif exc.status_code == 413:
            e = SppError("E2BIG", _too_big(exc))
        elif exc.status_code == 400:
            e = SppError("EINVAL", _unparsable(exc.__cause__))
        else:
            e = SppError("EINTERNAL" if exc.status_code >= 500 else "EINVAL",
                         f"HTTP {exc.status_code}: {quote(str(exc.detail))}")
        return _reply(e, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    def crash(request: Request, exc: Exception):
        # Starlette logs the traceback (and re-raises to the server) after this.
        return _reply(SppError("EINTERNAL", f"{request.method} {quote(request.url.path)} "
                                            "failed unexpectedly; the controller logged why"))

    async def slice_of(request: Request,
                       cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict:
        # In the event loop (a thread hop costs more than this indexed read),
        # and before the arguments are validated: a caller without a slice
        # learns nothing about them (only whether its body was JSON at all).
        return authenticate(cred.credentials if cred else None,
                            request.client.host if request.client else None,
                            calling=request.url.path != "/api/batch")

    def admin(x_spp_admin: Annotated[str | None, Header()] = None):
        if not x_spp_admin or not hmac.compare_digest(x_spp_admin.encode(),
                                                      admin_token.encode()):
            raise SppError("EADMIN", "X-SPP-Admin header missing or wrong")

    errors = _error_responses()
    ok = {200: {"model": SppOk, "description": "success"}}

    def add(name: str, fn: Function):
        async def endpoint(body: fn.model, sl: dict = Depends(slice_of)):
            return await serve_answer(ctl, sl, name, body)
        endpoint.__name__ = name
        app.post(f"/api/{name}", name=name, tags=["slice API"], summary=name,
                 description=fn.doc, responses={
                     200: {"model": ok_model(name), "description": "success"},
                     **errors})(endpoint)

    for name, fn in FUNCTIONS.items():
        add(name, fn)

    @app.post("/api/batch", name="batch", tags=["slice API"], summary="batch",
              responses={**ok, **errors},
              description="Extension (not in the SPP): up to "
                          f"{L.MAX_BATCH_CALLS} calls of this API in one request, "
                          "`{\"calls\": [{\"fn\": \"write_fltr\", \"args\": {...}}, ...]}`. "
                          "They take effect in order, as if sent one by one; the answer lists "
                          "each call's own answer (`{\"code\": 0, \"result\": ...}` or an SPP "
                          "error), and one call's failure changes nothing of the others.")
    def batch(body: Batch, sl: dict = Depends(slice_of)):
        host = sl["mgmt_addr"]
        if len(body.calls) <= L.BULK_BATCH_CALLS:          # not a bulk load (limits.py)
            callers.seen(host)
            load = nullcontext()
        else:
            load = callers.loading(host)
        # Rendered here, in the batch's worker thread: an answer of megabytes
        # (a thousand mem_reads) must not stall the event loop, which serves
        # every slice's calls.
        with load:
            return _ok(call_batch(ctl, sl, body.calls, lambda: L.BATCH_WINDOW_SHARED
                                  if callers.others(host) else L.BATCH_WINDOW))

    admin_routes = {"tags": ["admin"], "dependencies": [Depends(admin)],
                    "responses": {**ok, **errors}}

    @app.get("/health", tags=["admin"], responses={**ok, **errors})
    def health():
        return {"code": 0, "result": {"switches": ctl.up}}

    @app.post("/admin/slices", **admin_routes)
    def create_slice(body: CreateSlice):
        return {"code": 0, "result": ctl.admin.create_slice(
            body.name, body.node, body.mgmt_addr, body.data_addr, body.lc_port, body.mac,
            SliceQuota(**body.quota.model_dump()), [(p.ifn, p.port) for p in body.ports])}

    @app.get("/admin/slices", **admin_routes)
    def list_slices():
        return {"code": 0, "result": ctl.admin.list_slices()}

    @app.delete("/admin/slices/{node}/{name}", **admin_routes)
    def delete_slice(node: str, name: str):
        ctl.admin.delete_slice(name, node)
        return {"code": 0, "result": None}

    @app.get("/admin/state", **admin_routes)
    def state():
        return {"code": 0, "result": ctl.describe()}

    def openapi():
        """FastAPI documents a 422 validation error; this API answers EINVAL (400)."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            for ops in schema["paths"].values():
                for op in ops.values():
                    op.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def server_config(app, host: str, port: int, **kw) -> uvicorn.Config:
    """How the API is served, by ``python -m controller`` and by the tests.

    ``proxy_headers=False``: no proxy stands in front of the controller, so
    the TCP peer is the caller, and the source-address check must see it.
    With uvicorn's default (trust X-Forwarded-For from 127.0.0.1), a local
    caller could claim any slice host's address with a header.
    ``log_config=None``: uvicorn's loggers go to the root logger (the
    controller's rotated log file, __main__.log_to), not to stderr.
    """
    kw = {"log_level": "warning", "access_log": False, "log_config": None, **kw}
    return uvicorn.Config(app, host=host, port=port, proxy_headers=False, server_header=False,
                          **kw)
