"""Shared fixtures. Tests that need BMv2 or root skip, saying why, without them."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))           # bench.controlplane.ControllerProcess

HAVE_BMV2 = shutil.which("simple_switch_grpc") is not None
IS_ROOT = os.geteuid() == 0

needs_bmv2 = pytest.mark.skipif(
    not (HAVE_BMV2 and IS_ROOT),
    reason=("BMv2 (simple_switch_grpc) is not installed: see README, Prerequisites"
            if not HAVE_BMV2 else "needs root (network namespaces, veths)"))

SLICE_A_MGMT, SLICE_B_MGMT = "127.0.0.2", "127.0.0.3"
SLICE_C_MGMT, SLICE_D_MGMT = "127.0.0.4", "127.0.0.5"


def slice_specs(live_node) -> list[dict]:
    """Slices a..d of the live node, as the admin API creates them. Slices c
    and d have no host port on the LC (its ports 5 and 6 do not exist): they
    are for control-plane tests, where no packet goes to a slice host."""
    from mininet_topo.livenode import SLICE_A, SLICE_B
    return [
        {"name": "a", "mgmt_addr": SLICE_A_MGMT, "data_addr": SLICE_A, "lc_port": 2,
         "mac": live_node.slice_macs["A"]},
        {"name": "b", "mgmt_addr": SLICE_B_MGMT, "data_addr": SLICE_B, "lc_port": 3,
         "mac": live_node.slice_macs["B"]},
        {"name": "c", "mgmt_addr": SLICE_C_MGMT, "data_addr": "10.0.2.12", "lc_port": 5,
         "mac": "02:00:00:00:02:0c"},
        {"name": "d", "mgmt_addr": SLICE_D_MGMT, "data_addr": "10.0.2.13", "lc_port": 6,
         "mac": "02:00:00:00:02:0d"},
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_node(tmp_path_factory):
    from mininet_topo.livenode import LiveNode
    with LiveNode(tmp_path_factory.mktemp("node")) as node:
        yield node


class Rest:
    """A controller serving REST on loopback, as `python -m controller` does."""

    def __init__(self, ctl, token):
        import uvicorn

        from controller.api import create_app, server_config
        self.ctl = ctl
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(create_app(ctl, token), "127.0.0.1",
                                                   self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("REST server did not start")
            time.sleep(0.02)

    def admin(self, method, path, **kw):
        import httpx
        return httpx.request(method, self.url + path, headers={"X-SPP-Admin": self.token}, **kw)

    def create_slice(self, name, mgmt, data_addr, lc_port, mac, node="node1", quota=None,
                     ports=None):
        rep = self.admin("POST", "/admin/slices", json={
            "name": name, "node": node, "mgmt_addr": mgmt, "data_addr": data_addr,
            "lc_port": lc_port, "mac": mac, **({"quota": quota} if quota else {}),
            **({"ports": ports} if ports else {})})
        assert rep.status_code == 200, rep.text
        return rep.json()["result"]["secret"]

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def controller(live_node, tmp_path):
    """A fresh controller (empty database) on the live node's switches."""
    from controller.core import Controller
    ctl = Controller(live_node.testbed, tmp_path / "spp.db", monitor_interval=0.3)
    ctl.start(monitor=False)
    rest = Rest(ctl, "admin-secret")
    yield rest
    rest.stop()
    ctl.stop()


@pytest.fixture
def slices(controller, live_node):
    """Slice clients A and B, each calling from its own management address."""
    from mininet_topo.livenode import SLICE_A, SLICE_B
    from slices.client import Slice
    sa = controller.create_slice("a", SLICE_A_MGMT, SLICE_A, 2, live_node.slice_macs["A"])
    sb = controller.create_slice("b", SLICE_B_MGMT, SLICE_B, 3, live_node.slice_macs["B"])
    a = Slice(controller.url, sa, local_address=SLICE_A_MGMT)
    b = Slice(controller.url, sb, local_address=SLICE_B_MGMT)
    yield a, b
    a.close()
    b.close()


def monitor_until_back(ctl, switch: str, timeout: float = 30):
    """Run the controller's switch monitor until it has reconnected to
    ``switch`` (restarted by the test) and repaired it; then stop it."""
    import threading
    import time
    old = ctl.scds[switch].conn
    ctl._stop.clear()
    t = threading.Thread(target=ctl._watch, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + timeout    # the monitor notices, reconnects, repairs
        while not (ctl.scds[switch].conn is not old and ctl.up[switch]):
            assert time.monotonic() < deadline, f"the monitor did not bring {switch} back"
            time.sleep(0.05)
    finally:
        ctl._stop.set()
        t.join()
        ctl._stop.clear()
