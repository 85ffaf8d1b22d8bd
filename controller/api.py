"""The REST face of the RMP: one POST route per SPP slice API function.

``POST /api/<function>`` with a JSON body of the function's arguments and
``Authorization: Bearer <slice secret>``, from the slice host's management
address. Success: ``{"code": 0, "result": ...}``. Failure: an HTTP 4xx/5xx
with ``{"code": N, "error": NAME, "message": ...}`` (controller/errors.py).
OpenAPI at /openapi.json, interactive docs at /docs.
"""

import hmac
import ipaddress
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .errors import SppError, markdown_table


def _ipv4(v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise ValueError(f"{v!r} is not an IPv4 address") from None


IPv4 = Annotated[str, AfterValidator(_ipv4)]
U8 = Annotated[int, Field(ge=0, le=0xFF)]
U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
U32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
Port = Annotated[int, Field(ge=0, le=0xFFFF, description="UDP/TCP port; 0: let the SRM choose")]
Kbps = Annotated[int, Field(ge=0, le=100_000_000, description="kb/s")]
Flags = Annotated[int, Field(ge=1, le=0x0F, description="0x01 pre-queue packets, 0x02 pre-queue "
                                                         "bytes, 0x04 post-queue packets, "
                                                         "0x08 post-queue bytes")]


class Req(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Fp(Req):
    fpid: U16


class AllocFastpath(Req):
    copt: str = Field("ipv4", description="code option (only ipv4 so far)")
    bw: Annotated[int, Field(ge=1, le=100_000_000, description="kb/s")]
    filters: U16
    queues: U16
    buffers: Annotated[int, Field(ge=0, le=1 << 20)]
    stats: U16
    sram: Annotated[int, Field(ge=0, le=1 << 24, description="32-bit words")]
    dram: Annotated[int, Field(ge=0, le=1 << 34, description="bytes")]


class IfnReq(Req):
    ifn: U16


class AddrReq(Req):
    addr: IPv4


class IfBw(Fp):
    ifn: U16
    bw: Annotated[int, Field(ge=1, le=100_000_000, description="kb/s")]


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


class FilterResultModel(Req):
    action: Literal["forward", "local", "drop"]
    meta_if: U16 = 0
    nh_addr: IPv4 = "0.0.0.0"
    nh_port: U16 = 0
    queue: U16 = 0
    stats: U16 = 0


LookupType = Literal[0, 1]


class WriteFltr(Fp):
    fid: U16
    type: LookupType = 0
    key: FilterKey
    mask: FilterKey
    result: FilterResultModel


class UpdateResult(Fp):
    fid: U16
    result: FilterResultModel


class FidReq(Fp):
    fid: U16


class ByKey(Fp):
    type: LookupType = 0
    key: FilterKey
    mask: FilterKey


class LookupReq(Fp):
    type: LookupType = 0
    key: FilterKey


class BindQueue(Fp):
    mi: U16
    queues: Annotated[list[U16], Field(min_length=1, max_length=4096)]


class QueueParams(Fp):
    qid: U16
    threshold: Annotated[int, Field(ge=0, le=1 << 20, description="packets; 0: no limit")]
    bw: Kbps


class QidReq(Fp):
    qid: U16


class ReadStats(Fp):
    index: U16
    flags: Flags = 0x0F


class StatsIdx(Fp):
    index: U16


class CreatePeriodic(Fp):
    index: U16
    flags: Flags = 0x0F
    interval: Annotated[int, Field(ge=1, le=3_600_000, description="ms")]
    size: Annotated[int, Field(ge=1, le=1 << 16, description="entries of the ring buffer")]
    model: Literal["pull", "push"] = "pull"
    port: U16 = 0
    callback: Annotated[str, Field(max_length=64)] = ""


class PidReq(Req):
    pid: U16


class SetCallback(PidReq):
    callback: Annotated[str, Field(max_length=64)]


class MemWrite(Fp):
    offset: Annotated[int, Field(ge=0, le=1 << 24)]
    values: Annotated[list[U32], Field(min_length=1, max_length=4096)]


class MemRead(Fp):
    offset: Annotated[int, Field(ge=0, le=1 << 24)]
    count: Annotated[int, Field(ge=0, le=4096)]


class NoArgs(Req):
    pass


class CreateSlice(Req):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    node: str
    mgmt_addr: IPv4
    data_addr: IPv4
    lc_port: Annotated[int, Field(ge=0, le=510)]
    mac: Annotated[str, Field(pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")]


def _result(r: FilterResultModel) -> dict:
    return r.model_dump()


def _key(k: FilterKey) -> dict:
    return k.model_dump()


def slice_functions(ctl):
    """name -> (request model, handler(slice, body)), the SPP slice API."""
    r, p = ctl.rmp, ctl.periodic
    return {
        "alloc_fastpath": (AllocFastpath, lambda s, b: r.alloc_fastpath(
            s, b.copt, b.bw, b.filters, b.queues, b.buffers, b.stats, b.sram, b.dram)),
        "free_fastpath": (Fp, lambda s, b: r.free_fastpath(s, b.fpid)),
        "get_interfaces": (NoArgs, lambda s, b: r.get_interfaces(s)),
        "get_ifn": (AddrReq, lambda s, b: r.get_ifn(s, b.addr)),
        "get_ifattrs": (IfnReq, lambda s, b: r.get_ifattrs(s, b.ifn)),
        "get_ifpeer": (IfnReq, lambda s, b: r.get_ifpeer(s, b.ifn)),
        "resrv_fpath_ifbw": (IfBw, lambda s, b: r.resrv_fpath_ifbw(s, b.fpid, b.ifn, b.bw)),
        "reles_fpath_ifbw": (IfBw, lambda s, b: r.reles_fpath_ifbw(s, b.fpid, b.ifn, b.bw)),
        "alloc_udp_tunnel": (AllocTunnel, lambda s, b: r.alloc_udp_tunnel(
            s, b.fpid, b.ifn, b.port, b.bw)),
        "free_udp_tunnel": (MiReq, lambda s, b: r.free_udp_tunnel(s, b.fpid, b.mi)),
        "get_endpoint": (MiReq, lambda s, b: r.get_endpoint(s, b.fpid, b.mi)),
        "alloc_endpoint": (AllocEndpoint, lambda s, b: r.alloc_endpoint(
            s, b.ifn, b.port, b.proto, b.slice_port)),
        "free_endpoint": (EidReq, lambda s, b: r.free_endpoint(s, b.eid)),
        "write_fltr": (WriteFltr, lambda s, b: r.write_fltr(
            s, b.fpid, b.fid, b.type, _key(b.key), _key(b.mask), _result(b.result))),
        "update_result": (UpdateResult, lambda s, b: r.update_result(
            s, b.fpid, b.fid, _result(b.result))),
        "get_fltr_byfid": (FidReq, lambda s, b: r.get_fltr_byfid(s, b.fpid, b.fid)),
        "get_fltr_bykey": (ByKey, lambda s, b: r.get_fltr_bykey(
            s, b.fpid, b.type, _key(b.key), _key(b.mask))),
        "lookup_fltr": (LookupReq, lambda s, b: r.lookup_fltr(
            s, b.fpid, b.type, _key(b.key))),
        "rem_fltr_byfid": (FidReq, lambda s, b: r.rem_fltr_byfid(s, b.fpid, b.fid)),
        "rem_fltr_bykey": (ByKey, lambda s, b: r.rem_fltr_bykey(
            s, b.fpid, b.type, _key(b.key), _key(b.mask))),
        "bind_queue": (BindQueue, lambda s, b: r.bind_queue(s, b.fpid, b.mi, b.queues)),
        "set_queue_params": (QueueParams, lambda s, b: r.set_queue_params(
            s, b.fpid, b.qid, b.threshold, b.bw)),
        "get_queue_params": (QidReq, lambda s, b: r.get_queue_params(s, b.fpid, b.qid)),
        "get_queue_len": (QidReq, lambda s, b: r.get_queue_len(s, b.fpid, b.qid)),
        "read_stats": (ReadStats, lambda s, b: r.read_stats(s, b.fpid, b.index, b.flags)),
        "clear_stats": (StatsIdx, lambda s, b: r.clear_stats(s, b.fpid, b.index)),
        "create_periodic": (CreatePeriodic, lambda s, b: p.create_periodic(
            s, b.fpid, b.index, b.flags, b.interval, b.size, b.model, b.port, b.callback)),
        "delete_periodic": (PidReq, lambda s, b: p.delete_periodic(s, b.pid)),
        "set_callback": (SetCallback, lambda s, b: p.set_callback(s, b.pid, b.callback)),
        "get_periodic": (PidReq, lambda s, b: p.get_periodic(s, b.pid)),
        "mem_write": (MemWrite, lambda s, b: r.mem_write(s, b.fpid, b.offset, b.values)),
        "mem_read": (MemRead, lambda s, b: r.mem_read(s, b.fpid, b.offset, b.count)),
    }


bearer = HTTPBearer(auto_error=False, description="the slice's secret")


def create_app(ctl, admin_token: str) -> FastAPI:
    app = FastAPI(
        title="SPP slice API",
        version="1.0",
        description=__doc__ + "\n\n## Error codes\n\n" + markdown_table(),
    )

    @app.exception_handler(SppError)
    def spp_error(request: Request, exc: SppError):
        return JSONResponse(status_code=exc.error.http, content=exc.to_json())

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError):
        msgs = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            msgs.append(f"{where or 'body'}: {err.get('msg')}")
        e = SppError("EINVAL", "; ".join(msgs) or "malformed request")
        return JSONResponse(status_code=e.error.http, content=e.to_json())

    def slice_of(request: Request,
                 cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict:
        client = request.client.host if request.client else None
        return ctl.rmp.authenticate(cred.credentials if cred else None, client)

    def admin(x_spp_admin: Annotated[str | None, Header()] = None):
        if not x_spp_admin or not hmac.compare_digest(x_spp_admin, admin_token):
            raise SppError("EADMIN", "X-SPP-Admin header missing or wrong")

    def add(name, model, handler):
        def endpoint(body: model, sl: dict = Depends(slice_of)):
            return {"code": 0, "result": handler(sl, body)}
        endpoint.__name__ = name
        app.post(f"/api/{name}", name=name, tags=["slice API"],
                 summary=name, description=SPP_DOC.get(name, ""))(endpoint)

    for name, (model, handler) in slice_functions(ctl).items():
        add(name, model, handler)

    @app.get("/health", tags=["admin"])
    def health():
        return {"code": 0, "result": {"switches": ctl.up}}

    @app.post("/admin/slices", tags=["admin"], dependencies=[Depends(admin)])
    def create_slice(body: CreateSlice):
        return {"code": 0, "result": ctl.rmp.create_slice(
            body.name, body.node, body.mgmt_addr, body.data_addr, body.lc_port, body.mac)}

    @app.get("/admin/slices", tags=["admin"], dependencies=[Depends(admin)])
    def list_slices():
        return {"code": 0, "result": ctl.rmp.list_slices()}

    @app.delete("/admin/slices/{node}/{name}", tags=["admin"], dependencies=[Depends(admin)])
    def delete_slice(node: str, name: str):
        ctl.rmp.delete_slice(name, node)
        return {"code": 0, "result": None}

    @app.get("/admin/state", tags=["admin"], dependencies=[Depends(admin)])
    def state():
        return {"code": 0, "result": ctl.describe()}

    return app


SPP_DOC = {
    "alloc_fastpath": "Allocate a fastpath (meta-router) on an NPE: code option, bandwidth "
                      "and counts of filters, queues, buffers, stats, SRAM words and DRAM "
                      "bytes. Returns fpInfo: fastpath id, NPE address, local-delivery, "
                      "exception and return endpoints.",
    "free_fastpath": "Free a fastpath and everything it holds.",
    "get_interfaces": "Interface numbers of this node's physical interfaces.",
    "get_ifn": "Interface number of an interface address.",
    "get_ifattrs": "Address, type (peering or not), link and available bandwidth.",
    "get_ifpeer": "Peer address of a peering interface.",
    "resrv_fpath_ifbw": "Reserve interface bandwidth for a fastpath.",
    "reles_fpath_ifbw": "Release reserved interface bandwidth.",
    "alloc_udp_tunnel": "Allocate a meta-interface (UDP tunnel endpoint) on an interface.",
    "free_udp_tunnel": "Free a meta-interface.",
    "get_endpoint": "Endpoint of a meta-interface.",
    "alloc_endpoint": "Forward an (interface, protocol, port) from the LC to the slice host.",
    "free_endpoint": "Stop forwarding an endpoint.",
    "write_fltr": "Install a filter (key, mask, result); a lower filter ID takes precedence.",
    "update_result": "Change a filter's result.",
    "get_fltr_byfid": "A filter by ID.",
    "get_fltr_bykey": "A filter by its exact key and mask.",
    "lookup_fltr": "The filter a packet with this key would match.",
    "rem_fltr_byfid": "Remove a filter by ID.",
    "rem_fltr_bykey": "Remove a filter by key and mask.",
    "bind_queue": "Bind queues to a meta-interface.",
    "set_queue_params": "Set a queue's threshold (packets) and bandwidth (kb/s).",
    "get_queue_params": "A queue's binding, threshold and bandwidth.",
    "get_queue_len": "A queue's occupancy (packets ahead of its latest packet).",
    "read_stats": "Counters of a stats index; flags choose among the four.",
    "clear_stats": "Zero the four counters of a stats index.",
    "create_periodic": "Sample a stats index every interval into a ring buffer (pull), "
                       "also sent to a UDP port on the slice host (push).",
    "delete_periodic": "Stop a periodic job.",
    "set_callback": "Change the callback tag a push job sends.",
    "get_periodic": "A periodic job's vector, oldest entry first.",
    "mem_write": "Write 32-bit words of the fastpath's SRAM.",
    "mem_read": "Read 32-bit words of the fastpath's SRAM.",
}

SLICE_API = tuple(SPP_DOC)
