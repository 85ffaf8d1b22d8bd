"""REST layer without switches: validation, authentication, OpenAPI. A slice
is inserted into the database directly; no request here reaches a switch."""

import pytest
from fastapi.testclient import TestClient

from controller.api import SLICE_API, create_app
from controller.core import Controller
from controller.testbed import Interface, Node, Npe, Switch, Testbed


@pytest.fixture
def client(tmp_path):
    node = Node("n", Switch("lc", "127.0.0.1:1", 1),
                [Npe("npe", "127.0.0.1:2", 2, addr="10.0.1.2")],
                [Interface(1, "192.168.1.1", 0, "02:00:00:00:00:01", 1000)])
    ctl = Controller(Testbed("t", [node]), tmp_path / "db")
    ctl.store.x("INSERT INTO slices VALUES (1, 'a', 'n', 'sekret', 'testclient', '10.0.2.10', "
                "2, '02:00:00:00:00:02')")
    with TestClient(create_app(ctl, "adm")) as c:
        c.headers["Authorization"] = "Bearer sekret"
        yield c, ctl
    ctl.stop()


def test_openapi_lists_every_slice_function(client):
    c, _ = client
    paths = c.get("/openapi.json").json()["paths"]
    assert {p.removeprefix("/api/") for p in paths if p.startswith("/api/")} == set(SLICE_API)
    assert len(SLICE_API) == 32
    assert c.get("/docs").status_code == 200


def test_calls_without_switch_access(client):
    c, _ = client
    assert c.post("/api/get_interfaces", json={}).json() == {"code": 0, "result": [1]}
    rep = c.post("/api/get_ifattrs", json={"ifn": 1}).json()["result"]
    assert rep["availbw"] == 1000 and rep["type"] == "non-peering"
    assert c.post("/api/get_ifn", json={"addr": "192.168.1.1"}).json()["result"] == 1
    rep = c.post("/api/get_ifn", json={"addr": "192.168.1.9"})
    assert rep.status_code == 404 and rep.json()["error"] == "ENOENT"
    rep = c.post("/api/get_ifpeer", json={"ifn": 1})
    assert rep.status_code == 400 and rep.json()["code"] == 3


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'"x"', {"ifn": "1"}, {"ifn": -1}, {"ifn": 70000}, {"ifn": 1, "x": 2}, {}])
def test_malformed_bodies_are_einval(client, body):
    c, ctl = client
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    rep = c.post("/api/get_ifattrs", **kw)
    assert rep.status_code == 400
    assert rep.json()["code"] == 3 and rep.json()["error"] == "EINVAL" and rep.json()["message"]


def test_identity_is_checked(client):
    c, ctl = client
    rep = c.post("/api/get_interfaces", json={}, headers={"Authorization": "Bearer nope"})
    assert (rep.status_code, rep.json()["error"]) == (401, "EAUTH")
    ctl.store.x("UPDATE slices SET mgmt_addr = '10.9.9.9'")
    rep = c.post("/api/get_interfaces", json={})
    assert (rep.status_code, rep.json()["error"]) == (403, "EPERM")
    rep = c.post("/admin/slices", json={})
    assert (rep.status_code, rep.json()["error"]) == (403, "EADMIN")
