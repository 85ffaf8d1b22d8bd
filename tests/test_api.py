"""REST layer without switches: validation, authentication, OpenAPI, the
error JSON of every failure, and the slice library's own errors. Slices are
put into the database directly (tests/switchless.py); a request that needs a
switch fails with ESWITCH."""

import contextlib
import inspect
import logging
import socket
import threading

import httpx
import pytest
from conftest import Rest
from fastapi.testclient import TestClient
from switchless import add_slice, switchless_testbed

from controller import limits as L
from controller import periodic
from controller import pipeline as pl
from controller.api import FUNCTIONS, SLICE_API, create_app
from controller.core import Controller
from controller.errors import BY_NAME
from controller.results import RESULTS
from slices.client import Slice, SppError


@pytest.fixture
def ctl(tmp_path):
    ctl = Controller(switchless_testbed(), tmp_path / "db")
    yield ctl
    ctl.stop()


@pytest.fixture
def client(ctl):
    add_slice(ctl, "a", "sekret", "testclient", 2)
    with TestClient(create_app(ctl, "adm")) as c:
        c.headers["Authorization"] = "Bearer sekret"
        yield c, ctl


def spp_error(rep, name):
    """``rep`` is the SPP error ``name``: its HTTP status, code, a short message."""
    assert rep.headers["content-type"] == "application/json", rep.text[:200]
    body = rep.json()
    assert set(body) == {"code", "error", "message"}, body
    assert (rep.status_code, body["code"], body["error"]) == (
        BY_NAME[name].http, BY_NAME[name].code, name), body
    assert 0 < len(body["message"]) <= L.MAX_MESSAGE
    return body


def test_openapi_lists_every_slice_function(client):
    c, _ = client
    paths = c.get("/openapi.json").json()["paths"]
    assert ({p.removeprefix("/api/") for p in paths if p.startswith("/api/")}
            == set(SLICE_API) | {"batch"})
    assert len(SLICE_API) == 32
    assert c.get("/docs").status_code == 200


def test_the_table_matches_the_handlers(ctl):
    """Each function's request fields are its handler's parameters, and its
    result is documented (controller/results.py; test_fuzz.py checks them)."""
    assert set(RESULTS) == set(SLICE_API)
    for name, fn in FUNCTIONS.items():
        handler = getattr(getattr(ctl, fn.component), name)
        params = list(inspect.signature(handler).parameters)[1:]        # after the slice
        assert set(fn.model.model_fields) == set(params), name


def test_openapi_limits_are_the_cores(client):
    """The schema advertises exactly what the core accepts (issue 10)."""
    c, _ = client
    schemas = c.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["FidReq"]["properties"]["fid"]["maximum"] == L.MAX_FILTER_ID
    assert pl.MAX_FILTER_ID == L.MAX_FILTER_ID
    pl.npe_filter(1, L.MAX_FILTER_ID, 0, {}, {}, pl.FilterResult("drop"))
    with pytest.raises(ValueError):
        pl.npe_filter(1, L.MAX_FILTER_ID + 1, 0, {}, {}, pl.FilterResult("drop"))
    cp = schemas["CreatePeriodic"]["properties"]
    assert cp["interval"]["minimum"] == periodic.MIN_INTERVAL_MS == L.MIN_INTERVAL_MS
    assert cp["size"]["maximum"] == periodic.MAX_SIZE == L.MAX_PERIODIC_SIZE
    for body in ({"fpid": 1, "fid": L.MAX_FILTER_ID + 1},):
        spp_error(c.post("/api/get_fltr_byfid", json=body), "EINVAL")
    for field, value in (("interval", L.MIN_INTERVAL_MS - 1), ("size", L.MAX_PERIODIC_SIZE + 1)):
        body = {"fpid": 1, "index": 0, "interval": 100, "size": 4, field: value}
        spp_error(c.post("/api/create_periodic", json=body), "EINVAL")


def test_calls_without_switch_access(client):
    c, _ = client
    assert c.post("/api/get_interfaces", json={}).json() == {"code": 0, "result": [1, 2]}
    rep = c.post("/api/get_ifattrs", json={"ifn": 1}).json()["result"]
    assert rep["availbw"] == 1000 and rep["type"] == "non-peering"
    assert c.post("/api/get_ifn", json={"addr": "192.168.1.1"}).json()["result"] == 1
    spp_error(c.post("/api/get_ifn", json={"addr": "192.168.1.9"}), "ENOENT")
    spp_error(c.post("/api/get_ifpeer", json={"ifn": 1}), "EINVAL")
    assert c.post("/api/get_ifpeer", json={"ifn": 2}).json()["result"] == "192.168.2.2"


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'"x"', {"ifn": "1"}, {"ifn": -1}, {"ifn": 70000}, {"ifn": 1, "x": 2}, {}])
def test_malformed_bodies_are_einval(client, body):
    c, ctl = client
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    spp_error(c.post("/api/get_ifattrs", **kw), "EINVAL")


JSON = {"content-type": "application/json"}


def chunks(n):
    yield b'{"ifn": 1, "x": "'
    for _ in range(n):
        yield b"x" * 65536
    yield b'"}'


# (method, path, body, headers) -> the SPP error every answer must be (issue 11, item 5)
MALFORMED = {
    "invalid UTF-8": ("POST", "get_ifattrs", b'{"ifn": 1, "x": "\xff\xfe"}', JSON, "EINVAL"),
    "5000-digit integer": ("POST", "get_ifattrs", b'{"ifn": ' + b"9" * 5000 + b"}", JSON,
                           "EINVAL"),
    "4000-digit integer": ("POST", "get_ifattrs", b'{"ifn": ' + b"9" * 4000 + b"}", JSON,
                           "EINVAL"),
    "nested 100000 deep": ("POST", "get_ifattrs", b"[" * 100_000 + b"]" * 100_000, JSON,
                           "E2BIG"),            # over L.MAX_BODY_CONTAINERS: not decoded
    "nested 900 deep in a field": ("POST", "bind_queue", b'{"fpid": 1, "mi": 1, "queues": '
                                   + b"[" * 900 + b"]" * 900 + b"}", JSON, "EINVAL"),
    "NaN": ("POST", "get_ifattrs", b'{"ifn": NaN}', JSON, "EINVAL"),
    "type 1.0": ("POST", "lookup_fltr", {"fpid": 1, "type": 1.0, "key": {}}, None, "EINVAL"),
    "type true": ("POST", "lookup_fltr", {"fpid": 1, "type": True, "key": {}}, None, "EINVAL"),
    "fid as a string": ("POST", "get_fltr_byfid", {"fpid": 1, "fid": "1"}, None, "EINVAL"),
    "text/plain": ("POST", "get_ifattrs", b'{"ifn": 1}', {"content-type": "text/plain"},
                   "EINVAL"),
    "no body": ("POST", "get_ifattrs", None, None, "EINVAL"),
    "unknown function": ("POST", "no_such_function", {}, None, "ENOENT"),
    "no function": ("POST", "", {}, None, "ENOENT"),
    "trailing slash": ("POST", "get_ifattrs/", {"ifn": 1}, None, "ENOENT"),
    "OPTIONS": ("OPTIONS", "get_ifattrs", None, None, "ENOTSUP"),
    "GET": ("GET", "get_ifattrs", None, None, "ENOTSUP"),
    "PUT": ("PUT", "get_ifattrs", {"ifn": 1}, None, "ENOTSUP"),
    "body over the limit": ("POST", "get_ifattrs", b" " * (L.MAX_BODY_BYTES + 1), JSON,
                            "E2BIG"),
    "chunked body over the limit": ("POST", "get_ifattrs",
                                    lambda: chunks(L.MAX_BODY_BYTES // 65536 + 1), JSON,
                                    "E2BIG"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_every_failure_is_an_spp_error(client, case):
    c, ctl = client
    method, fn, body, headers, name = MALFORMED[case]
    kw = {"json": body} if isinstance(body, dict) else {
        "content": body() if callable(body) else body}
    before = ctl.store.q("SELECT * FROM slices")
    spp_error(c.request(method, f"/api/{fn}", headers=headers, **kw), name)
    assert ctl.store.q("SELECT * FROM slices") == before


@pytest.mark.parametrize("body", [
    {"addr": "1" * 1_000_000},
    {"x" * 1_000_000: 1},
    {"fpid": 1, "values": ["x" * 100_000] * 9, "offset": 0},
    {"fpid": 1, "values": [-1] * 100_000, "offset": 0},
    {"bw": 1, "filters": 1, "queues": 1, "buffers": 1, "stats": 1, "copt": "c" * 1_000_000},
])
def test_messages_quote_a_short_prefix_at_most(client, body):
    c, _ = client
    fn = "mem_write" if "values" in body else "alloc_fastpath" if "copt" in body else "get_ifn"
    rep = c.post(f"/api/{fn}", json=body)
    spp_error(rep, "EINVAL")
    assert len(rep.content) < L.MAX_MESSAGE + 100


def example(schema: dict, defs: dict):
    """The smallest valid value of a JSON schema (of our request models)."""
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "const" in schema or "enum" in schema:
        return schema.get("const", (schema.get("enum") or [None])[0])
    kind = schema.get("type")
    if kind == "object":
        return {k: example(v, defs) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema["items"], defs)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "string":
        return "10.0.0.1" if schema.get("format") == "ipv4" else "ipv4"
    raise AssertionError(f"no example for {schema}")


def integer_paths(value, schema, defs, path=()):
    """Paths of every integer field in ``value``."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("type") == "integer":
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from integer_paths(v, schema["properties"][k], defs, path + (k,))
    elif isinstance(value, list):
        yield from integer_paths(value[0], schema["items"], defs, path + (0,))


def replaced(value, path, new):
    if not path:
        return new
    out = dict(value) if isinstance(value, dict) else list(value)
    out[path[0]] = replaced(value[path[0]], path[1:], new)
    return out


def test_every_integer_field_refuses_floats_bools_and_strings(client):
    c, _ = client
    schema = c.get("/openapi.json").json()
    defs = schema["components"]["schemas"]
    n = 0
    for name in SLICE_API:
        op = schema["paths"][f"/api/{name}"]["post"]
        body_schema = op["requestBody"]["content"]["application/json"]["schema"]
        body = example(body_schema, defs)
        rep = c.post(f"/api/{name}", json=body)
        assert rep.json().get("error") != "EINVAL", (name, body, rep.text)
        for path in integer_paths(body, body_schema, defs):
            v = _get(body, path)
            for bad in (float(v), True, False, str(v)):
                rep = c.post(f"/api/{name}", json=replaced(body, path, bad))
                spp_error(rep, "EINVAL")
                n += 1
    assert n > 250


def _get(value, path):
    for p in path:
        value = value[p]
    return value


def test_identity_is_checked(client):
    c, ctl = client
    spp_error(c.post("/api/get_interfaces", json={}, headers={"Authorization": "Bearer nope"}),
              "EAUTH")
    spp_error(c.post("/api/get_interfaces", json={}, headers={"Authorization": "nope"}),
              "EAUTH")
    ctl.store.x("UPDATE slices SET mgmt_addr = '10.9.9.9'")
    spp_error(c.post("/api/get_interfaces", json={}), "EPERM")
    spp_error(c.post("/admin/slices", json={}), "EADMIN")
    spp_error(c.post("/admin/slices", json={}, headers={"X-SPP-Admin": b"\xe9"}), "EADMIN")


def test_a_crash_is_einternal_with_its_traceback_logged(client, monkeypatch, caplog):
    c, ctl = client

    def broken(*args, **kw):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ctl.rmp, "get_interfaces", broken)
    with caplog.at_level(logging.ERROR, logger="controller.api"):
        body = spp_error(c.post("/api/get_interfaces", json={}), "EINTERNAL")
    assert "a bug" not in body["message"]
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    # A crash outside a handler (here: authentication) is an SPP error too.
    monkeypatch.setattr(ctl.admin, "authenticate", broken)
    with TestClient(c.app, raise_server_exceptions=False) as c2:
        spp_error(c2.post("/api/get_interfaces", json={}), "EINTERNAL")


# ---- over a real server: the peer address, the body limit, the library ----

SLICE_A_MGMT, SLICE_B_MGMT = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def server(ctl):
    add_slice(ctl, "a", "secret-a", SLICE_A_MGMT, 2)
    add_slice(ctl, "b", "secret-b", SLICE_B_MGMT, 3)
    rest = Rest(ctl, "adm")
    yield rest
    rest.stop()


@pytest.mark.parametrize("header", [
    {"X-Forwarded-For": SLICE_B_MGMT},
    {"X-Forwarded-For": f"{SLICE_B_MGMT}, 127.0.0.1"},
    {"Forwarded": f"for={SLICE_B_MGMT}"},
    {"X-Real-IP": SLICE_B_MGMT},
])
def test_a_forwarded_header_does_not_change_the_caller(server, header):
    """Issue 11 item 1: B's secret from 127.0.0.1 claiming B's address is EPERM."""
    before = server.ctl.store.q("SELECT * FROM slices")
    rep = httpx.post(f"{server.url}/api/get_interfaces", json={},
                     headers={"Authorization": "Bearer secret-b", **header})
    spp_error(rep, "EPERM")
    with Slice(server.url, "secret-b", local_address=SLICE_B_MGMT) as b:
        assert b.get_interfaces() == [1, 2]                  # from B's own address it works
    assert server.ctl.store.q("SELECT * FROM slices") == before


def test_body_limit_over_a_real_connection(server):
    with httpx.Client(transport=httpx.HTTPTransport(local_address=SLICE_A_MGMT)) as h:
        headers = {"Authorization": "Bearer secret-a", **JSON}
        for content in (b" " * (4 * L.MAX_BODY_BYTES), chunks(L.MAX_BODY_BYTES // 65536 + 1)):
            spp_error(h.post(f"{server.url}/api/get_ifattrs", content=content,
                             headers=headers), "E2BIG")
        rep = h.post(f"{server.url}/api/mem_write", headers=headers, json={
            "fpid": 1, "offset": 0, "values": [0xFFFFFFFF] * L.MAX_WORDS_PER_CALL})
        spp_error(rep, "ENOENT")                          # the largest call fits


def test_library_errors_of_its_own(server):
    """Item 6: no answer in time is ETIMEDOUT (it may have happened), no
    connection EUNREACH (it did not); neither is the switch's ESWITCH."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        accepted = []
        t = threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True)
        t.start()
        with Slice(f"http://127.0.0.1:{port}", "s", timeout=0.5) as s:
            with pytest.raises(SppError) as e:
                s.get_interfaces()
        assert (e.value.code, e.value.name) == (BY_NAME["ETIMEDOUT"].code, "ETIMEDOUT")
        t.join(timeout=5)
        for conn, _ in accepted:
            conn.close()
    with Slice(f"http://127.0.0.1:{port}", "s", timeout=0.5) as s:
        with pytest.raises(SppError) as e:
            s.get_interfaces()
    assert (e.value.code, e.value.name) == (BY_NAME["EUNREACH"].code, "EUNREACH")
    with Slice(server.url, "secret-a", local_address=SLICE_A_MGMT) as a:
        with pytest.raises(SppError) as e:
            a.alloc_endpoint(ifn=1)                       # needs the (absent) LC
    assert e.value.name == "ESWITCH"


def test_batch_answers_each_call_in_order(client):
    c, _ = client
    body = {"calls": [{"fn": "get_interfaces"}, {"fn": "get_ifn", "args": {"addr": "192.168.1.9"}},
                      {"fn": "get_ifattrs", "args": {"ifn": 1.0}},
                      {"fn": "free_fastpath", "args": {"fpid": 7}},
                      {"fn": "get_ifpeer", "args": {"ifn": 1}}]}
    rep = c.post("/api/batch", json=body)
    assert rep.status_code == 200, rep.text
    out = rep.json()["result"]
    assert out[0] == c.post("/api/get_interfaces", json={}).json()
    assert [o.get("error") for o in out[1:]] == ["ENOENT", "EINVAL", "ENOENT", "EINVAL"]
    for bad in ({"calls": []}, {"calls": [{"fn": "nope"}]},
                {"calls": [{"fn": "get_interfaces"}] * 1001}):
        rep = c.post("/api/batch", json=bad)
        assert rep.status_code == 400 and rep.json()["error"] == "EINVAL"


def test_one_slice_host_is_served_at_most_calls_in_flight_at_once(client, monkeypatch):
    """FairShare: a host flooding the API holds at most CALLS_IN_FLIGHT of the
    controller's threads; its other calls wait (another host would not)."""
    import threading
    import time

    from controller import limits
    c, ctl = client
    busy, peak, lock = [0], [0], threading.Lock()

    def slow(sl):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.2)
        with lock:
            busy[0] -= 1
        return [1]

    monkeypatch.setattr(ctl.rmp, "get_interfaces", slow)
    threads = [threading.Thread(target=c.post, args=("/api/get_interfaces",),
                                kwargs={"json": {}}) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == limits.CALLS_IN_FLIGHT


def direct_calls(app):
    """The app's DirectCalls middleware (built with the stack on first use)."""
    from controller.api import DirectCalls
    layer = app.middleware_stack
    while not isinstance(layer, DirectCalls):
        layer = layer.app
    return layer


SAME_ANSWERS = [
    ("get_interfaces", {}, "sekret"),
    ("get_ifattrs", {"ifn": 1}, "sekret"),
    ("get_ifattrs", {"ifn": 99}, "sekret"),
    ("get_ifattrs", {"ifn": "1"}, "sekret"),
    ("get_ifattrs", {"ifn": 1, "extra": 2}, "sekret"),
    ("get_ifattrs", [], "sekret"),
    ("get_ifattrs", {"ifn": 1}, "wrong"),
    ("free_fastpath", {"fpid": 7}, "sekret"),
    ("write_fltr", {"fpid": 1, "fid": 3, "key": {"dst_addr": "10.0.0.1"},
                    "mask": {"dst_addr": "255.255.255.255"}, "result": {"action": "drop"}},
     "sekret"),
    ("write_fltr", {"fpid": 1, "fid": 3, "key": {"dst_addr": "10.0.0.300"},
                    "mask": {}, "result": {"action": "drop"}}, "sekret"),
    ("alloc_fastpath", {"bw": 1000, "filters": 4, "queues": 1, "buffers": 1, "stats": 1},
     "sekret"),
    ("mem_read", {"fpid": 1, "offset": 0, "count": 1}, "sekret"),
    ("get_periodic", {"pid": 1}, "sekret"),
]


@pytest.mark.parametrize("fn,body,secret", SAME_ANSWERS,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(SAME_ANSWERS)])
def test_direct_calls_answer_as_fastapi_does(client, fn, body, secret):
    """DirectCalls (api.py) serves plain JSON calls without FastAPI's routing;
    a media type with parameters goes through FastAPI. Both give the same
    answer, byte for byte, for calls that succeed and calls that fail, and
    the common case is served directly."""
    c, _ = client
    answers = []
    for ctype in ("application/json", "application/json; charset=utf-8"):
        rep = c.post(f"/api/{fn}", content=httpx.Request("POST", "/", json=body).content,
                     headers={"Content-Type": ctype, "Authorization": f"Bearer {secret}"})
        answers.append((rep.status_code, rep.headers["content-type"], rep.content))
    assert answers[0] == answers[1]
    assert answers[0][1] == "application/json"


def test_direct_calls_serve_the_common_case(client):
    c, _ = client
    c.post("/api/get_interfaces", json={})
    served = direct_calls(c.app).served
    assert c.post("/api/get_ifattrs", json={"ifn": 1}).json()["code"] == 0
    assert direct_calls(c.app).served == served + 1
    spp_error(c.post("/api/get_ifattrs", json={"ifn": "x"}), "EINVAL")    # FastAPI words it
    assert direct_calls(c.app).served == served + 1


def slow_change(ctl, monkeypatch, seconds: float, function: str = "free_fastpath") -> list:
    """``function`` made a change that takes ``seconds`` to be done (its
    Future answered by a thread, in the order they started); returns the
    list that gets (time, changes in flight) each time one starts."""
    import queue
    import time
    from concurrent.futures import Future
    busy, starts, lock, running = [0], [], threading.Lock(), queue.SimpleQueue()

    def change(sl, **_):
        with lock:
            busy[0] += 1
            starts.append((time.monotonic(), busy[0]))
        fut = Future()
        running.put((time.monotonic() + seconds, fut))
        return fut

    def finish():
        while True:
            until, fut = running.get()
            time.sleep(max(0.0, until - time.monotonic()))
            with lock:
                busy[0] -= 1
            fut.set_result(None)
    threading.Thread(target=finish, daemon=True).start()
    monkeypatch.setattr(ctl.rmp, function, change)
    return starts


@contextlib.contextmanager
def another_host_calling(c, batch: int = 0):
    """Slice b (add_slice(ctl, "b", "sekret-b", "10.0.9.9", 3)) calls from its
    own host, once before the block and every 0.1 s during it (``batch``:
    a batch of that many calls each time)."""
    import time
    stop = threading.Event()
    with TestClient(c.app, client=("10.0.9.9", 40000)) as other:
        other.headers["Authorization"] = "Bearer sekret-b"

        def call():
            if batch:
                rep = other.post("/api/batch", json={"calls": [{"fn": "get_interfaces"}]
                                                     * batch}).json()
                assert [r["code"] for r in rep["result"]] == [0] * batch
            else:
                assert other.post("/api/get_interfaces", json={}).json()["code"] == 0

        def keep_calling():
            while not stop.is_set():
                call()
                time.sleep(0.1)
        call()
        b = threading.Thread(target=keep_calling)
        b.start()
        try:
            yield
        finally:
            stop.set()
            b.join()


def test_changes_in_flight_per_host(client, monkeypatch):
    """FairShare: a host calling alone is served up to CHANGES_IN_FLIGHT
    changes at once (they hold no thread: queued to the node's executor);
    once another slice host calls, its changes that get their turn from then
    on (even ones queued before) count against CALLS_IN_FLIGHT."""
    import time

    from controller import limits
    c, ctl = client
    add_slice(ctl, "b", "sekret-b", "10.0.9.9", 3)
    starts = slow_change(ctl, monkeypatch, 0.3)

    def flood(n: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=lambda: reps.append(
            c.post("/api/free_fastpath", json={"fpid": 1}))) for _ in range(n)]
        for t in threads:
            t.start()
        return threads

    reps: list = []
    for t in flood(limits.CHANGES_IN_FLIGHT + 6):
        t.join()
    assert max(b for _, b in starts) == limits.CHANGES_IN_FLIGHT      # alone
    # A backlog queued while alone; then slice b calls (authenticated, from
    # its own host) and keeps calling.
    starts.clear()
    threads = flood(limits.CHANGES_IN_FLIGHT + 24)
    time.sleep(0.1)
    t_b = time.monotonic()
    with another_host_calling(c):
        for t in threads:
            t.join()
    assert [r.json()["code"] for r in reps] == [0] * len(reps)
    later = [n for t, n in starts if t > t_b + 0.4]      # once the first 16 are done
    assert later and max(later) <= limits.CALLS_IN_FLIGHT, starts


def test_callers_is_constant_size():
    """FairShare's memory of other callers: a few hosts, whatever calls; a
    host's bulk load forgets its calls before it."""
    from controller.api import Callers
    callers = Callers(recent=10)
    for i in range(10_000):
        callers.seen(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(callers._last) == callers.keep
    assert callers.others("10.0.0.1") and callers.others("10.0.39.15")
    lone = Callers(recent=10)
    lone.seen("a")
    assert not lone.others("a") and lone.others("b")
    with lone.loading("a"):         # a's load begins: its calls before it are set-up
        assert not lone.others("b")
        lone.seen("a")              # a call while a batch of it is in flight counts,
    assert lone.others("b")
    with lone.loading("a"):         # also past the load's next batch
        assert lone.others("b")
    lone.seen("a")                  # one between two loads (no batch in flight) is
    with lone.loading("a"):         # set-up for the next
        assert not lone.others("b")
    # hosts that call and then bulk-load cannot push a single caller out unnoticed
    few = Callers(recent=10)
    few.seen("victim")
    for i in range(few.keep):
        few.seen(f"10.0.0.{i}")
    for i in range(few.keep):
        with few.loading(f"10.0.0.{i}"):
            pass
    assert "victim" not in few._last and few.others("flooder")


def test_a_batch_queues_changes_as_single_calls_would(client, monkeypatch):
    """A batch's changes are queued to the executor in a window: alone, as
    many as FairShare lets the host's single calls have in flight
    (CHANGES_IN_FLIGHT), or ENTRY_CHANGES_PER_CHANGE times as many changes of one table entry
    (write_fltr), so a batch loading filters keeps the executor's groups
    large; while another slice host calls, one change or
    BATCH_WINDOW_SHARED filter changes: a batch of slow changes cannot put
    another slice's change behind all of them. The window slides (a call is
    queued when the oldest is answered, not when all are)."""
    from controller import limits
    c, ctl = client
    add_slice(ctl, "b", "sekret-b", "10.0.9.9", 3)
    k = limits.ENTRY_CHANGES_PER_CHANGE
    cases = (("free_fastpath", {"fpid": 1}, 60, limits.CHANGES_IN_FLIGHT, 1),
             ("write_fltr", {"fpid": 1, "fid": 1, "type": 0, "key": {}, "mask": {},
                             "result": {"action": "drop"}}, 2 * k * limits.CHANGES_IN_FLIGHT,
              k * limits.CHANGES_IN_FLIGHT, limits.BATCH_WINDOW_SHARED))
    for function, args, n, alone, _ in cases:
        starts = slow_change(ctl, monkeypatch, 0.3, function)
        rep = c.post("/api/batch", json={"calls": [{"fn": function, "args": args}] * n}).json()
        assert [r["code"] for r in rep["result"]] == [0] * n
        assert max(m for _, m in starts) == alone, function
        # Sliding: the call after a full window is queued as soon as the
        # oldest is answered, while the rest still run (a window that waited
        # for all of its calls would start it alone).
        assert starts[alone][1] == alone, (function, starts[alone - 2:alone + 2])
    with another_host_calling(c):           # (slice b stays a recent caller after it)
        for function, args, _, _, shared in cases:
            starts = slow_change(ctl, monkeypatch, 0.05, function)
            rep = c.post("/api/batch", json={"calls": [{"fn": function, "args": args}]
                                             * (4 * shared)}).json()
            assert [r["code"] for r in rep["result"]] == [0] * (4 * shared)
            assert max(m for _, m in starts) == shared, (function, starts)


def test_another_slices_bulk_batches_leave_a_batch_its_window(client, monkeypatch):
    """Slices loading filters at once each keep their whole window: a batch
    of more than BULK_BATCH_CALLS calls does not count as "another slice
    host calls". A small batch does, as single calls do: a slice whose
    batches are small keeps the shared window's protection."""
    import time

    from controller import limits
    c, ctl = client
    add_slice(ctl, "b", "sekret-b", "10.0.9.9", 3)
    k = limits.ENTRY_CHANGES_PER_CHANGE
    fltr = {"fn": "write_fltr", "args": {"fpid": 1, "fid": 1, "type": 0, "key": {}, "mask": {},
                                         "result": {"action": "drop"}}}
    for size, window in ((limits.BULK_BATCH_CALLS + 1, k * limits.CHANGES_IN_FLIGHT),
                         (limits.BULK_BATCH_CALLS, limits.BATCH_WINDOW_SHARED)):
        time.sleep(limits.OTHERS_RECENT_S)              # b's earlier calls forgotten
        starts = slow_change(ctl, monkeypatch, 0.05, "write_fltr")
        with another_host_calling(c, batch=size):
            rep = c.post("/api/batch", json={"calls": [fltr] * (2 * window)}).json()
        assert [r["code"] for r in rep["result"]] == [0] * (2 * window)
        assert max(m for _, m in starts) == window, (size, starts)


def test_a_slices_set_up_calls_leave_others_their_window_once_it_loads(client, monkeypatch):
    """Slices that set up a fastpath and then load filters at once: a host's
    single calls made before it started a bulk load do not count as
    "another slice host calls" (each slice's batches would otherwise start
    with the shared window); a single call it makes after that does."""
    import time

    from controller import limits
    c, ctl = client
    add_slice(ctl, "b", "sekret-b", "10.0.9.9", 3)
    window = limits.ENTRY_CHANGES_PER_CHANGE * limits.CHANGES_IN_FLIGHT
    fltr = {"fn": "write_fltr", "args": {"fpid": 1, "fid": 1, "type": 0, "key": {}, "mask": {},
                                         "result": {"action": "drop"}}}
    bulk = {"calls": [{"fn": "get_interfaces"}] * (limits.BULK_BATCH_CALLS + 1)}
    time.sleep(limits.OTHERS_RECENT_S)                  # earlier calls forgotten
    starts = slow_change(ctl, monkeypatch, 0.05, "write_fltr")
    with TestClient(c.app, client=("10.0.9.9", 40000)) as b:
        b.headers["Authorization"] = "Bearer sekret-b"
        assert b.post("/api/get_interfaces", json={}).json()["code"] == 0   # b's set-up
        assert b.post("/api/batch", json=bulk).json()["code"] == 0        # b loads
        rep = c.post("/api/batch", json={"calls": [fltr] * (2 * window)}).json()
        assert [r["code"] for r in rep["result"]] == [0] * (2 * window)
        assert max(m for _, m in starts[:16]) == 16, starts      # from the start
        assert max(m for _, m in starts) == window, starts
        starts.clear()
        assert b.post("/api/get_interfaces", json={}).json()["code"] == 0   # b waits for one
        rep = c.post("/api/batch", json={"calls": [fltr] * (2 * window)}).json()
        # (while b's call is recent: it is forgotten a second later)
        assert max(m for _, m in starts[:16]) == limits.BATCH_WINDOW_SHARED, starts


def test_push_receiver_takes_entries_from_the_controller_only():
    """PushReceiver: a datagram from any other source than the controller is
    dropped (counted), never handed to a callable; one that is not an entry
    is reported, and serve() goes on."""
    import json
    import time

    from slices.client import PushReceiver
    got = []
    entry = {"pid": 1, "callback": "count", "pre_packets": 5}
    with PushReceiver(port=0, address="127.0.0.1", controller="http://127.0.0.1:1") as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
        rx.register("count", got.append)
        forger.bind(("127.0.0.9", 0))
        forger.sendto(json.dumps({**entry, "pre_packets": 999_999}).encode(),
                      ("127.0.0.1", rx.port))
        assert rx.poll(0.3) is None and rx.foreign == 1 and got == []
        ctl.bind(("127.0.0.1", 0))
        ctl.sendto(b"not json", ("127.0.0.1", rx.port))
        with pytest.raises(SppError) as e:
            rx.poll(2)
        assert e.value.name == "EINVAL"
        stop = threading.Event()
        t = threading.Thread(target=rx.serve, args=(stop, 0.1), daemon=True)
        t.start()
        for d in (b"[1]", b"\xff", json.dumps(entry).encode()):
            ctl.sendto(d, ("127.0.0.1", rx.port))
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        t.join(5)
        assert got == [entry] and len(rx.unknown) == 3


def test_a_batch_answers_a_bounded_amount(client, monkeypatch):
    """Reads in a batch answer at most MAX_BATCH_ANSWER_BYTES; the calls after
    that are not run and answer E2BIG (a thousand 4,096-word mem_reads were
    a 20 MB answer rendered in one piece, which held the controller)."""
    c, ctl = client
    ran = []

    def mem_read(sl, fpid, offset, count):
        ran.append(offset)
        return [0xFFFFFFFF] * count

    monkeypatch.setattr(ctl.rmp, "mem_read", mem_read)
    calls = [{"fn": "mem_read", "args": {"fpid": 1, "offset": i, "count": 4096}}
             for i in range(1000)]
    rep = c.post("/api/batch", json={"calls": calls})
    out = rep.json()["result"]
    done = [r for r in out if r["code"] == 0]
    assert 0 < len(done) == len(ran) < 1000
    assert {r["error"] for r in out[len(done):]} == {"E2BIG"}
    assert len(rep.content) < L.MAX_BATCH_ANSWER_BYTES + 100_000


def test_a_batch_of_failing_calls_leaves_no_garbage_cycle(client):
    """A batch's failed calls answer their errors without tying them, through
    tracebacks, to the frames that hold the whole batch's arguments: the
    controller runs the cyclic GC seldom (__main__.py), and a slice sending
    batches of failing 4,096-word mem_writes grew it by hundreds of MB
    (review 18). Nothing the batch allocated is left for the GC to find."""
    import gc
    c, _ = client
    calls = {"calls": [{"fn": "mem_write", "args": {"fpid": 999, "offset": 0,
                                                   "values": [4294967295] * 4096}}] * 20}
    c.post("/api/batch", json=calls)               # warm up (imports, caches)
    gc.collect()
    gc.disable()
    try:
        rep = c.post("/api/batch", json=calls).json()
        assert [r["error"] for r in rep["result"]] == ["ENOENT"] * 20
        del rep
        # What TestClient itself leaves (~80); the batch's cycles added
        # ~250 (the batch's frames) and ~900 (the executor's) more.
        assert gc.collect() < 150
    finally:
        gc.enable()


def test_a_refused_single_call_leaves_no_garbage_cycle(monkeypatch):
    """A change answered with an error (POST /api/<change>, through serve):
    the error raised from the Future must not hold serve's frame, and with
    it the call's arguments (a mem_write's 4,096 values), in a cycle only
    the cyclic GC frees (review 18: 3,000 such calls took the controller
    from 84 to 299 MB)."""
    import asyncio
    import contextlib
    import gc
    import weakref
    from concurrent.futures import Future

    from controller import api
    from controller.errors import SppError as CtlError

    class Payload(list):
        """Stands for the call's arguments (a list a weak reference follows)."""

    class Ctl:
        class rmp:                                  # noqa: N801 - ctl.rmp.deferred()
            deferred = staticmethod(contextlib.nullcontext)

    def refused(*_):
        fut = Future()
        fut.set_exception(CtlError("ENOENT", "no fastpath 999"))    # as the executor answers
        return fut
    monkeypatch.setattr(api, "call", refused)
    payload = Payload(range(4096))
    ref = weakref.ref(payload)

    async def main(body):
        with pytest.raises(CtlError):
            await api.serve(Ctl(), {}, "mem_write", body)
    gc.collect()
    gc.disable()
    try:
        asyncio.run(main(payload))
        del payload
        assert ref() is None, "the refused call's arguments outlive it"
    finally:
        gc.enable()

