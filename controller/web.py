"""The operator's listener: the live web view and Prometheus's ``/metrics``.

They show every slice, so they are not on the slice API's listener (a slice
asking it for /metrics or /web gets ENOENT, as for any unknown path). The
operator listener is a second server (``python -m controller --operator
ADDR:PORT``, default 127.0.0.1:8081) that answers only TCP peers named with
``--operator-from`` and 127.0.0.1 (``operator_peers``); any other peer gets
EADMIN. ``make run`` binds it to the controller's address on its link to the
root namespace and names the root namespace's address there: slice hosts and
end hosts, in network namespaces of their own, have no route to it, and the
peer check refuses them if they made one.

Routes: ``/`` the page (controller/static: HTML, one JS file, one CSS file;
nothing from elsewhere), ``/state.json`` what the page polls,
``/topology.svg`` the picture (run/<topo>/topology.svg when the testbed
builder drew it, else drawn from the testbed description), ``/metrics``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .errors import SppError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_OPERATOR = "127.0.0.1:8081"


def _api_stats(metrics) -> dict:
    """Calls and latency sums per function, from the API metrics."""
    out: dict[str, dict] = {}
    for fam in metrics.api.calls.collect():
        for s in fam.samples:
            if s.name.endswith("_total"):
                f = out.setdefault(s.labels["function"], {"calls": {}, "seconds": 0.0,
                                                          "count": 0})
                f["calls"][s.labels["error"]] = s.value
    for fam in metrics.api.seconds.collect():
        for s in fam.samples:
            f = out.setdefault(s.labels["function"], {"calls": {}, "seconds": 0.0, "count": 0})
            if s.name.endswith("_sum"):
                f["seconds"] = s.value
            elif s.name.endswith("_count"):
                f["count"] = s.value
    return out


def create_operator_app(ctl, picture: Path | None = None,
                        allowed: tuple[str, ...] = ("127.0.0.1",)) -> FastAPI:
    """The operator's app; ``allowed``: the TCP peers it answers."""
    app = FastAPI(title="SPP operator view", docs_url=None, redoc_url=None,
                  openapi_url=None, redirect_slashes=False)
    peers = frozenset(allowed)

    @app.middleware("http")
    async def operator_only(request, call_next):
        peer = request.client.host if request.client else None
        if peer not in peers:
            e = SppError("EADMIN", "the operator view answers the operator's address only")
            return JSONResponse(status_code=e.error.http, content=e.to_json())
        return await call_next(request)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(ctl.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/state.json")
    def state():
        snap = ctl.metrics.snapshot()
        return {**snap, "api": _api_stats(ctl.metrics), "testbed": ctl.testbed.name,
                "picture_slices": _slice_key(ctl)}

    drawn: dict[str, bytes] = {}

    @app.get("/topology.svg")
    def topology():
        if picture is not None and picture.exists():
            return FileResponse(picture, media_type="image/svg+xml")
        from mininet_topo.picture import GraphvizMissing, dot_from_testbed, render
        key = _slice_key(ctl)
        if key not in drawn:
            try:
                drawn.clear()
                drawn[key] = render(dot_from_testbed(ctl.testbed, ctl.admin.list_slices()))
            except (GraphvizMissing, RuntimeError, OSError) as e:
                return JSONResponse(status_code=503, content={"message": str(e)})
        return Response(drawn[key], media_type="image/svg+xml")

    return app


def _slice_key(ctl) -> str:
    """Which slices run where: the picture is redrawn when it changes."""
    return ",".join(sorted(f"{s['name']}@{s['node']}" for s in ctl.admin.list_slices()))
