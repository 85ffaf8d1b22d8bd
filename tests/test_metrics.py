"""Prometheus metrics and the operator listener: who may see them, what they
count, and a real Prometheus scraping a live controller on BMv2."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import httpx
import pytest
from conftest import SLICE_B_MGMT, Rest, free_port, needs_bmv2
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from switchless import add_slice, switchless_testbed

from controller.api import create_app
from controller.core import Controller


class Operator:
    """The operator listener, as `python -m controller --operator` serves it."""

    def __init__(self, ctl, allowed=("127.0.0.1",), picture=None):
        import uvicorn

        from controller.api import server_config
        from controller.web import create_operator_app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(
            create_operator_app(ctl, picture, allowed), "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "operator listener did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of a /metrics page."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(smp: dict, name: str, **labels):
    return smp.get((name, frozenset(labels.items())))


def from_addr(addr: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=addr), timeout=10)


# ---- without switches ----

@pytest.fixture
def ctl(tmp_path):
    ctl = Controller(switchless_testbed(), tmp_path / "db")
    yield ctl
    ctl.stop()


def test_operator_views_not_on_the_slice_api(ctl):
    """A slice asking the slice API's listener for /metrics or the web view
    gets ENOENT (they are not there, even with the admin token); the operator
    listener answers 127.0.0.1 and refuses a slice host's address (EADMIN)."""
    add_slice(ctl, "b", "sekret-b", SLICE_B_MGMT, 3)
    rest = Rest(ctl, "adm")
    op = Operator(ctl)
    try:
        with from_addr(SLICE_B_MGMT) as c:
            for path in ("/metrics", "/", "/state.json", "/topology.svg", "/static/app.js"):
                for headers in ({"Authorization": "Bearer sekret-b"}, {"X-SPP-Admin": "adm"}):
                    r = c.get(rest.url + path, headers=headers)
                    assert r.status_code == 404 and r.json()["error"] == "ENOENT", (path, r.text)
            # The operator's port, from the slice host's address: refused.
            for path in ("/metrics", "/", "/state.json", "/topology.svg", "/static/app.js"):
                r = c.get(f"http://127.0.0.1:{op.port}{path}")
                assert r.status_code == 403 and r.json()["error"] == "EADMIN", (path, r.text)
        # The operator, from 127.0.0.1: every view.
        smp = samples(httpx.get(op.url + "/metrics").text)
        assert value(smp, "spp_switch_up", switch="npe", node="n") == 0   # no switch here
        assert httpx.get(op.url + "/").text.startswith("<!doctype html>")
        assert httpx.get(op.url + "/state.json").json()["nodes"][0]["slices"][0]["name"] == "b"
        # The slice API's listener has none of the operator's routes.
        assert rest.port != op.port
        paths = {getattr(r, "path", "") for r in create_app(ctl, "adm").routes}
        assert not paths & {"/metrics", "/", "/state.json", "/topology.svg", "/static"}
    finally:
        op.stop()
        rest.stop()


def test_api_calls_counted_by_function_and_error(ctl):
    """Each slice API call counts once under its function and SPP answer,
    batch calls included, with its latency in the histogram."""
    add_slice(ctl, "a", "sekret", "testclient", 2)
    with TestClient(create_app(ctl, "adm")) as c:
        c.headers["Authorization"] = "Bearer sekret"
        assert c.post("/api/get_interfaces", json={}).status_code == 200
        assert c.post("/api/get_interfaces", json={}).status_code == 200
        assert c.post("/api/get_ifattrs", json={"ifn": 99}).json()["error"] == "ENOENT"
        r = c.post("/api/batch", json={"calls": [{"fn": "get_ifn",
                                                  "args": {"addr": "192.168.1.1"}},
                                                 {"fn": "free_fastpath", "args": {"fpid": 7}}]})
        assert r.status_code == 200
    smp = samples(TestClient(_op(ctl)).get("/metrics").text)
    assert value(smp, "spp_api_calls_total", function="get_interfaces", error="OK") == 2
    assert value(smp, "spp_api_calls_total", function="get_ifattrs", error="ENOENT") == 1
    assert value(smp, "spp_api_calls_total", function="get_ifn", error="OK") == 1
    assert value(smp, "spp_api_calls_total", function="free_fastpath", error="ENOENT") == 1
    assert value(smp, "spp_api_call_seconds_count", function="get_interfaces") == 2
    assert value(smp, "spp_api_call_seconds_bucket", function="get_interfaces", le="+Inf") == 2


def _op(ctl):
    from controller.web import create_operator_app
    # TestClient's peer is "testclient"
    return create_operator_app(ctl, None, ("testclient",))


# ---- live: BMv2 ----

def _traffic_setup(controller, slices):
    """Slice a and b each with a meta-router; the frame that goes through a's."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from test_controller_live import router

    from mininet_topo.livenode import END_HOST, IF1, LC_IF1_MAC
    a, b = slices
    fa, mi1, _ = router(a)
    router(b)
    inner = IP(src="10.9.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) / Raw(b"s" * 100)
    frame = bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                  / UDP(sport=45000, dport=mi1["port"], chksum=0) / inner)
    return fa["fpid"], frame


@needs_bmv2
def test_metrics_follow_traffic(controller, slices, live_node):
    """Packets through slice a's meta-router move a's counters by exactly
    their number and bytes, pre- and post-queue; slice b's idle ones stay 0;
    every switch is up; a packet to no meta-interface is a drop by reason;
    a scrape costs the reads the docs say (one P4Runtime read per counter
    array, one Thrift read of queue lengths per NPE)."""
    ctl = controller.ctl
    fpid, frame = _traffic_setup(controller, slices)
    op = Operator(ctl)
    try:
        n = 7
        live_node.send_and_capture("ext0t", [frame] * n, "ext0t")
        ctl.metrics.max_age = 0                 # read the switches on this scrape
        smp = samples(httpx.get(op.url + "/metrics").text)
        lab = {"slice": "a", "node": "node1", "fastpath": str(fpid), "index": "1"}
        for stage in ("pre_queue", "post_queue"):
            assert value(smp, "spp_stats_packets_total", **lab, stage=stage) == n
            assert value(smp, "spp_stats_bytes_total", **lab, stage=stage) == n * len(frame)
            assert value(smp, "spp_stats_packets_total", **{**lab, "slice": "b"},
                         stage=stage) == 0
        assert value(smp, "spp_queue_length", slice="a", node="node1", fastpath=str(fpid),
                     queue="0") == 0
        for sw in ("lc", "npe"):
            assert value(smp, "spp_switch_up", switch=sw, node="node1") == 1
        assert value(smp, "spp_api_calls_total", function="write_fltr", error="OK") == 2
        assert value(smp, "spp_scrape_reads", protocol="p4runtime") == 5   # 4 NPE + 1 LC
        assert value(smp, "spp_scrape_reads", protocol="thrift") == 1
        drops = {k: v for k, v in smp.items() if k[0] == "spp_drops_total"}
        # A packet to a UDP port with no meta-interface: one more drop.
        stray = bytearray(frame)
        stray[36:38] = (9).to_bytes(2, "big")   # UDP destination port 9
        live_node.send_and_capture("ext0t", [bytes(stray)], "ext0t", wait=0.3)
        after = samples(httpx.get(op.url + "/metrics").text)
        moved = {k: after[k] - drops.get(k, 0) for k in after
                 if k[0] == "spp_drops_total" and after[k] != drops.get(k, 0)}
        assert list(moved.values()) == [1], moved
        # What a scrape costs (docs/web.md): wall time over 20 scrapes.
        t0 = time.perf_counter()
        for _ in range(20):
            httpx.get(op.url + "/metrics")
        ms = (time.perf_counter() - t0) / 20 * 1000
        print(f"scrape: {ms:.1f} ms, reads: {after[('spp_scrape_reads', frozenset({('protocol', 'p4runtime')}))]:.0f} "  # noqa: E501
              f"P4Runtime + 1 Thrift, moved drop: {list(moved)}")
    finally:
        op.stop()


HAVE_PROMETHEUS = shutil.which("prometheus") is not None


@needs_bmv2
@pytest.mark.skipif(not HAVE_PROMETHEUS, reason="Prometheus is not installed (Debian: "
                                                "apt-get install prometheus)")
def test_prometheus_scrapes_the_controller(controller, slices, live_node, tmp_path):
    """A real Prometheus scraping the operator listener: its query API sees
    slice a's packet counter at 0, then at the number of packets sent."""
    ctl = controller.ctl
    fpid, frame = _traffic_setup(controller, slices)
    op = Operator(ctl)
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: spp\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{op.port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    query = (f'spp_stats_packets_total{{slice="a",node="node1",fastpath="{fpid}",index="1",'
             'stage="pre_queue"}')

    def seen(want, timeout=30.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query},
                              timeout=2).json()
                res = r["data"]["result"]
                got = float(res[0]["value"][1]) if res else None
                if got == want:
                    return got
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"Prometheus says {got}, expected {want}")

    try:
        seen(0)
        n = 9
        live_node.send_and_capture("ext0t", [frame] * n, "ext0t")
        seen(n)
        up = httpx.get(f"http://127.0.0.1:{port}/api/v1/query",
                       params={"query": "up{job='spp'}"}).json()["data"]["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
        op.stop()


FETCH = """
import json, sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=3)
    print(json.dumps({"status": r.status, "body": r.read(300).decode(errors="replace")}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read(300).decode(errors="replace")}))
except Exception as e:
    print(json.dumps({"status": None, "body": repr(e)}))
"""


def fetch_from(host, url: str) -> dict:
    import json
    out = host.cmd(f"/usr/bin/python3 -c '{FETCH}' {url}")
    return json.loads(out[out.index('{"status"'):])    # after the shell's "> " prompts


@needs_bmv2
@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz is not installed (Debian: "
                                                    "apt-get install graphviz)")
def test_testbed_operator_view_from_root_namespace_only():
    """make run's testbed: run/<topo>/topology.svg is drawn; the operator
    listener answers the machine (root namespace) with /metrics and the page;
    a slice host gets ENOENT from the slice API's listener, cannot reach the
    operator listener, and when it adds a route to it, its connection is
    reset before any request (controller/conns.py; the app would say EADMIN);
    an end host cannot reach it either."""
    import httpx

    from mininet_topo.picture import web_url
    from mininet_topo.sppnet import SppNet
    from mininet_topo.topology import CONTROLLER_ADDR, CONTROLLER_CTL_ADDR, CONTROLLER_PORT
    with SppNet("default") as spp:
        svg = (spp.run_dir / "topology.svg").read_text()
        assert "<svg" in svg and "spp1npe" in svg and "slice rtr" in svg
        smp = samples(httpx.get(web_url() + "metrics", timeout=10).text)
        for sw in ("spp1lc", "spp1npe", "spp2lc", "spp2npe"):
            assert value(smp, "spp_switch_up", switch=sw, node=sw[:4]) == 1, sw
        assert httpx.get(web_url(), timeout=10).text.startswith("<!doctype html>")
        assert "<svg" in httpx.get(web_url() + "topology.svg", timeout=10).text
        sh = spp.plan.slice_hosts[0]
        host = spp.net[sh.name]
        r = fetch_from(host, f"http://{CONTROLLER_ADDR}:{CONTROLLER_PORT}/metrics")
        assert r["status"] == 404 and "ENOENT" in r["body"], r
        r = fetch_from(host, web_url() + "metrics")
        assert r["status"] is None, r                  # no route to it
        host.cmd(f"ip route add {CONTROLLER_CTL_ADDR}/32 dev {sh.name}-eth1")
        r = fetch_from(host, web_url() + "metrics")
        # Reset at once: no HTTP answer (the client sees the close or the reset,
        # depending on whether its request had left).
        assert r["status"] is None and ("closed connection" in r["body"]
                                        or "Connection reset" in r["body"]), r
        h1 = spp.net[next(iter(spp.plan.hosts))]
        r = fetch_from(h1, web_url() + "metrics")
        assert r["status"] is None, r
