"""What each slice API function returns: the ``result`` of its success
answer, as the OpenAPI schema documents it (the handlers build plain dicts;
tests/test_fuzz.py checks every answer against these). Fields a handler may
add later are allowed; the ones named here are always there."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
Count = Annotated[int, Field(ge=0)]


class Endpoint(BaseModel):
    addr: str
    port: U16
    proto: int


class FpInfo(BaseModel):
    fpid: U16
    copt: str
    npe_addr: str
    ld_endpoint: Endpoint
    exc_endpoint: Endpoint
    ret_endpoint: Endpoint
    bw: Count
    filters: Count
    queues: Count
    buffers: Count
    stats: Count
    sram: Count
    dram: Count


class IfAttrs(BaseModel):
    ifn: U16
    addr: str
    type: Literal["peering", "non-peering"]
    linkbw: Count
    availbw: Annotated[int, Field(description="kb/s not reserved by any fastpath")]


class Reservation(BaseModel):
    ifn: U16
    reserved: Count


class MetaIf(BaseModel):
    mi: U16
    ifn: U16
    addr: str
    port: U16
    proto: int
    bw: Count
    peering: bool
    peer: str | None = None


class LcEndpoint(BaseModel):
    eid: U16
    ifn: U16
    addr: str
    port: U16
    proto: Literal["udp", "tcp"]
    slice_port: U16


class Filter(BaseModel):
    fid: U16
    type: Literal[0, 1]
    key: dict[str, int | str]
    mask: dict[str, int | str]
    result: dict[str, Any]


class Fid(BaseModel):
    fid: U16


class Binding(BaseModel):
    mi: U16
    queues: list[U16]


class QueueParams(BaseModel):
    qid: U16
    mi: U16 | None
    threshold: Count
    bw: Count


class QueueLen(BaseModel):
    qid: U16
    length: Count


class Stats(BaseModel):
    """The counters the flags chose."""

    index: U16
    pre_packets: Count | None = None
    pre_bytes: Count | None = None
    post_packets: Count | None = None
    post_bytes: Count | None = None


class Periodic(BaseModel):
    pid: U16
    fpid: U16
    index: U16
    flags: int
    interval: Count
    size: Count
    model: Literal["pull", "push"]
    port: U16
    callback: str


class PeriodicVector(Periodic):
    vector: list[dict[str, Any]] = Field(description="samples, oldest first: seq, time and "
                                                      "the counters the flags chose")


RESULTS: dict[str, Any] = {
    "alloc_fastpath": FpInfo,
    "free_fastpath": None,
    "get_interfaces": list[U16],
    "get_ifn": U16,
    "get_ifattrs": IfAttrs,
    "get_ifpeer": str,
    "resrv_fpath_ifbw": Reservation,
    "reles_fpath_ifbw": Reservation,
    "alloc_udp_tunnel": MetaIf,
    "free_udp_tunnel": None,
    "get_endpoint": MetaIf,
    "alloc_endpoint": LcEndpoint,
    "free_endpoint": None,
    "write_fltr": Filter,
    "update_result": Filter,
    "get_fltr_byfid": Filter,
    "get_fltr_bykey": Filter,
    "lookup_fltr": Filter,
    "rem_fltr_byfid": None,
    "rem_fltr_bykey": Fid,
    "bind_queue": Binding,
    "set_queue_params": QueueParams,
    "get_queue_params": QueueParams,
    "get_queue_len": QueueLen,
    "read_stats": Stats,
    "clear_stats": None,
    "create_periodic": Periodic,
    "delete_periodic": None,
    "set_callback": Periodic,
    "get_periodic": PeriodicVector,
    "mem_write": None,
    "mem_read": list[Annotated[int, Field(ge=0, le=0xFFFFFFFF)]],
}


def ok_model(name: str) -> type[BaseModel]:
    """The success answer of function ``name``: ``{"code": 0, "result": ...}``."""
    return create_model(f"{name}_ok", code=(Literal[0], ...), result=(RESULTS[name], ...))
