"""Property-based fuzz of the slice API from its own OpenAPI schema (schemathesis).

Requests are generated from /openapi.json, both valid ones (positive) and
ones that break the schema (negative), for every /api/* function, sent as
slice A with A's credentials. For every answer:

- it is an SPP answer the schema documents: its status, content type and
  body (``{"code": 0, "result"}`` or ``{"code", "error", "message"}``, the
  HTTP status being the error code's own);
- it is never a crash (EINTERNAL, HTTP 500), and with BMv2 never any 5xx;
- negative data is refused with EINVAL, and so is an integer spelled as a
  float (JSON Schema counts 2.0 as an integer; this API does not);
- a refused call changes nothing: the database, and with BMv2 every table
  entry of both switches and the SRAM of every fastpath, are as before;
- nothing slice B holds ever changes, whatever A's call did.

With BMv2 it runs against a live controller on real switches, where A and B
each have a meta-router; without BMv2 against the validation layer and the
RMP's checks of a controller whose switches are absent (tests/switchless.py),
where a call that reaches a switch fails with ESWITCH. SPP_FUZZ_EXAMPLES
sets the number of generated calls per mode (default 200: 400 calls, about
25 s on BMv2, 4 s without).
"""

from __future__ import annotations

import os
import time
from collections import Counter

import httpx
import schemathesis
from conftest import SLICE_A_MGMT, needs_bmv2
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oas
from switchless import add_slice, switchless_testbed

from controller import pipeline as pl
from controller.api import create_app
from controller.core import Controller
from controller.errors import BY_NAME

EXAMPLES = int(os.environ.get("SPP_FUZZ_EXAMPLES", "200"))
CHECKS = [oas.status_code_conformance, oas.content_type_conformance,
          oas.response_schema_conformance, oas.negative_data_rejection]


def db_state(ctl) -> dict:
    """Every row of every table, but what the periodic thread moves on its own."""
    out = {}
    for t in ctl.store.q("SELECT name FROM sqlite_master WHERE type = 'table' "
                         "AND name NOT LIKE 'sqlite_%'"):
        name = t["name"]
        if name == "samples":
            continue
        rows = ctl.store.q(f"SELECT * FROM {name}")
        for r in rows:
            r.pop("next_slot", None)
        out[name] = sorted(rows, key=repr)
    return out


def slice_state(ctl, slice_name: str) -> dict:
    """What one slice holds, in the database."""
    sid = ctl.store.one("SELECT id FROM slices WHERE name = ?", slice_name)["id"]
    fps = ctl.store.q("SELECT * FROM fastpaths WHERE slice_id = ?", sid)
    ids = [f["id"] for f in fps]
    out = {"fastpaths": fps}
    for table in ("reservations", "meta_ifs", "filters", "queues", "sram"):
        out[table] = [r for r in ctl.store.q(f"SELECT * FROM {table}")
                      if r["fastpath_id"] in ids]
    for table in ("endpoints", "periodic"):
        out[table] = [{k: v for k, v in r.items() if k != "next_slot"}
                      for r in ctl.store.q(f"SELECT * FROM {table} WHERE slice_id = ?", sid)]
    return out


def switch_state(ctl) -> dict:
    """Every table entry of every switch, and the SRAM words of every fastpath."""
    out = {}
    for name, scd in ctl.scds.items():
        out[name] = sorted(repr(scd.pipeline.canonical(e)) for e in scd.conn.read_entries())
    for fp in ctl.store.q("SELECT npe, sram_base, sram_words FROM fastpaths"):
        if fp["sram_words"]:
            out[f"sram {fp['npe']} {fp['sram_base']}"] = ctl.scds[fp["npe"]].register_read(
                pl.Npe.SRAM, fp["sram_base"], fp["sram_words"])
    return out


def has_float(value) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False


ID_FIELDS = {"fpid", "mi", "fid", "qid", "index", "pid", "eid", "ifn", "meta_if", "queue",
             "stats", "offset", "count"}


def small_ids(case):
    """The case with its IDs made small, so that they name the slice's own
    fastpaths, meta-interfaces, filters, ... rather than nothing."""
    def shrink(value):
        if isinstance(value, dict):
            return {k: (v % 4 if k in ID_FIELDS and isinstance(v, int | float)
                        and not isinstance(v, bool) else shrink(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [shrink(v) for v in value]
        return value
    case.body = shrink(case.body)
    return case


def openapi_of(app) -> dict:
    return TestClient(app).get("/openapi.json").json()


def fuzz(openapi: dict, secret: str, send, state, other_slice, live: bool) -> Counter:
    """Generate calls from ``openapi`` and check every answer (module docstring)."""
    schema = schemathesis.openapi.from_dict(openapi).include(path_regex="^/api/")
    auth = {"Authorization": f"Bearer {secret}"}
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 32
    seen: Counter = Counter()
    last, theirs = [state()], other_slice()

    def check(case):
        mode = case.meta.generation.mode if case.meta else GenerationMode.POSITIVE
        kw = case.as_transport_kwargs(base_url="http://spp", headers=auth)
        rep = send(kw)
        now = state()
        body = rep.json()
        seen[(str(mode), rep.status_code, body.get("error"))] += 1
        case.validate_response(rep, checks=CHECKS)
        if rep.status_code != 200:
            assert rep.status_code == BY_NAME[body["error"]].http, body
            assert body["error"] != "EINTERNAL", (kw, body)
            if live:
                assert rep.status_code < 500, (kw, body)
            assert now == last[0], f"a refused call changed something: {kw} {body}"
        last[0] = now
        batch = kw["url"].endswith("/api/batch")       # each call answered on its own
        if mode == GenerationMode.NEGATIVE or (has_float(kw.get("json")) and not batch):
            assert body.get("error") == "EINVAL", (kw, body)
        if batch and rep.status_code == 200:
            for answer in body["result"]:
                assert answer["code"] == 0 and "result" in answer or (
                    answer["code"] == BY_NAME[answer["error"]].code
                    and answer["error"] != "EINTERNAL"), (kw, answer)
        assert other_slice() == theirs, f"slice B's state changed: {kw} {body}"

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = st.one_of([op.as_strategy(generation_mode=mode, headers=auth) for op in ops])
        if mode == GenerationMode.POSITIVE:       # half of them name what the slice holds
            strategy = st.one_of(strategy, strategy.map(small_ids))

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            check(case)

        run()
    return seen


def report(seen: Counter, took: float):
    print(f"\nfuzz: {sum(seen.values())} calls in {took:.1f} s")
    for (mode, status, error), n in sorted(seen.items(), key=str):
        print(f"  {mode:8} {status} {error or 'OK':10} {n}")


def test_fuzz_validation_layer(tmp_path):
    """Without switches: the REST layer, the validation and the RMP's checks."""
    ctl = Controller(switchless_testbed(), tmp_path / "db")
    try:
        add_slice(ctl, "a", "secret-a", "testclient", 2)
        add_slice(ctl, "b", "secret-b", "10.0.2.99", 3)
        app = create_app(ctl, "adm")
        with TestClient(app) as client:
            def send(kw):
                return client.request(kw["method"], kw["url"].replace("http://spp", ""),
                                      headers=kw["headers"], json=kw.get("json"),
                                      content=kw.get("data"))
            t0 = time.monotonic()
            seen = fuzz(openapi_of(app), "secret-a", send, lambda: db_state(ctl),
                        lambda: slice_state(ctl, "b"), live=False)
        report(seen, time.monotonic() - t0)
        assert seen[("negative", 400, "EINVAL")] > EXAMPLES // 2
    finally:
        ctl.stop()


def meta_router(s, sram=16):
    """Everything a slice can hold: a fastpath, tunnels, a queue, filters,
    a periodic job, an endpoint and SRAM words."""
    fp = s.alloc_fastpath(bw=10_000, filters=8, queues=4, buffers=64, stats=8, sram=sram)
    f = fp["fpid"]
    s.resrv_fpath_ifbw(f, ifn=1, bw=4_000)
    mi1 = s.alloc_udp_tunnel(f, ifn=1, bw=1_000)["mi"]
    mi2 = s.alloc_udp_tunnel(f, ifn=1, bw=1_000)["mi"]
    s.bind_queue(f, mi2, [0])
    s.set_queue_params(f, 0, threshold=32, bw=800)
    s.write_fltr(f, 1, key={"dst_addr": "10.1.0.0"}, mask={"dst_addr": "255.255.0.0"},
                 result={"action": "forward", "meta_if": mi2, "nh_addr": "192.168.1.200",
                         "nh_port": 30000, "queue": 0, "stats": 1})
    s.write_fltr(f, 2, key={"meta_if": mi1}, mask={"meta_if": 0xFFFF},
                 result={"action": "local", "stats": 2})
    s.create_periodic(f, index=1, interval=1000, size=4)
    s.alloc_endpoint(ifn=1)
    s.mem_write(f, 0, list(range(1, sram + 1)))


@needs_bmv2
def test_fuzz_live(controller, slices):
    """On BMv2: a live controller, slices A and B each with a meta-router."""
    a, b = slices
    meta_router(a)
    meta_router(b)
    ctl = controller.ctl
    with httpx.Client(transport=httpx.HTTPTransport(local_address=SLICE_A_MGMT),
                      timeout=10) as h:
        def send(kw):
            return h.request(kw["method"], kw["url"].replace("http://spp", controller.url),
                             headers=kw["headers"], json=kw.get("json"),
                             content=kw.get("data"))
        t0 = time.monotonic()
        seen = fuzz(httpx.get(f"{controller.url}/openapi.json").json(), a.secret, send,
                    lambda: (db_state(ctl), switch_state(ctl)),
                    lambda: slice_state(ctl, "b"), live=True)
    report(seen, time.monotonic() - t0)
    assert seen[("positive", 200, None)] > 0
