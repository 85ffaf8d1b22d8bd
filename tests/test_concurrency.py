"""The controller as hostile slices and a sick switch see it (issue 10):
racing clients of several slices, a stalled NPE, a table filled to capacity,
readers next to failing writers.

Only public interfaces: REST over HTTP (every answer must be SPP JSON with a
code, within a deadline), the slice library for set-up, and the switches'
tables read over P4Runtime by the test itself, compared with what the
controller's database says (``switch_vs_db``: the one place that knows how
database rows become table entries).
"""

from __future__ import annotations

import copy
import os
import random
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from conftest import needs_bmv2, slice_specs
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from bench.controlplane import ControllerProcess
from controller import pipeline as pl
from controller.errors import BY_CODE
from controller.translate import node_intent
from slices.client import Slice

pytestmark = needs_bmv2

CALL_TIMEOUT = 10.0      # no call may take longer, whatever happens to the switches
SWITCH_DEADLINE = 5.0    # a call needing a stalled or refusing switch fails within this
FAST = 1.0               # a call that needs no sick switch answers within this
NH = "192.168.1.200"


# ---- answers: SPP JSON with a code, in time ------------------------------

@dataclass
class Answer:
    fn: str
    args: dict
    status: int | None          # HTTP status; None: no answer
    code: int | None
    error: str                  # "" on success
    result: object
    seconds: float
    problem: str = ""           # why this is not a proper SPP answer

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.problem

    def __str__(self):
        what = self.problem or (f"{self.error} {self.result}" if self.error else "OK")
        return f"{self.fn}({self.args}) -> {what} [{self.seconds:.2f} s]"


def parse(fn: str, args: dict, rep: httpx.Response, seconds: float) -> Answer:
    a = Answer(fn, args, rep.status_code, None, "", None, seconds)
    try:
        body = rep.json()
    except ValueError:
        a.problem = f"HTTP {rep.status_code}, not JSON: {rep.text[:80]!r}"
        return a
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        a.problem = f"HTTP {rep.status_code} without an SPP code: {str(body)[:80]}"
        return a
    a.code = body["code"]
    if a.code == 0:
        a.result = body.get("result")
        if rep.status_code != 200 or "result" not in body:
            a.problem = f"code 0 with HTTP {rep.status_code} / no result"
        return a
    err = BY_CODE.get(a.code)
    a.error, a.result = body.get("error", ""), body.get("message", "")
    if err is None or err.name != a.error or err.http != rep.status_code:
        a.problem = f"HTTP {rep.status_code} code {a.code} {a.error}: not the SPP error table"
    return a


class Api:
    """A slice's raw REST client, calling from its management address."""

    def __init__(self, url: str, secret: str, mgmt: str, timeout: float = CALL_TIMEOUT):
        self.timeout = timeout
        self.http = httpx.Client(base_url=url, timeout=timeout,
                                 transport=httpx.HTTPTransport(local_address=mgmt),
                                 headers={"Authorization": f"Bearer {secret}"})

    def __call__(self, fn: str, **args) -> Answer:
        t = time.monotonic()
        try:
            rep = self.http.post(f"/api/{fn}", json=args)
        except httpx.TimeoutException:
            return Answer(fn, args, None, None, "", None, time.monotonic() - t,
                          f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as e:
            return Answer(fn, args, None, None, "", None, time.monotonic() - t,
                          f"connection failed: {e!r}")
        return parse(fn, args, rep, time.monotonic() - t)

    def close(self):
        self.http.close()


@dataclass
class SliceHandle:
    name: str
    tag: int                    # second octet of every filter key the slice writes
    mgmt: str
    secret: str
    url: str

    def api(self, timeout: float = CALL_TIMEOUT) -> Api:
        return Api(self.url, self.secret, self.mgmt, timeout)

    def lib(self) -> Slice:
        return Slice(self.url, self.secret, local_address=self.mgmt, timeout=CALL_TIMEOUT)


def add_slices(ctl, live_node, n: int, quotas: dict | None = None) -> list[SliceHandle]:
    """Slices a, b, ... on ``ctl`` (the REST fixture or a ControllerProcess);
    ``quotas``: slice name -> what the admin lets it hold, else the defaults."""
    out = []
    for tag, spec in enumerate(slice_specs(live_node)[:n], start=1):
        quota = (quotas or {}).get(spec["name"])
        secret = ctl.create_slice(spec["name"], spec["mgmt_addr"], spec["data_addr"],
                                  spec["lc_port"], spec["mac"], **({"quota": quota} if quota
                                                                   else {}))
        out.append(SliceHandle(spec["name"], tag, spec["mgmt_addr"], secret, ctl.url))
    return out


def problems(answers: list[Answer], allowed: set[str]) -> list[str]:
    """Answers that are not SPP JSON, or fail with an error not in ``allowed``."""
    return [str(a) for a in answers if a.problem or (a.code and a.error not in allowed)]


def summary(bad: list[str], limit: int = 8) -> str:
    return f"{len(bad)} bad answers, e.g.:\n  " + "\n  ".join(bad[:limit])


# ---- switch == database ---------------------------------------------------

_PIPELINES: dict[str, pl.Pipeline] = {}


def pipeline_of(role: str) -> pl.Pipeline:
    if role not in _PIPELINES:
        _PIPELINES[role] = pl.npe_pipeline() if role == "npe" else pl.lc_pipeline()
    return _PIPELINES[role]


def entry_key(e) -> tuple:
    return (e.table, e.match, e.action, e.params, e.priority)


def read_switch(switch, pipeline) -> set[tuple]:
    """Every table entry of a switch, read over P4Runtime by the test itself
    (a Read needs no arbitration: the controller stays primary)."""
    with grpc.insecure_channel(switch.grpc_addr) as ch:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
        req = p4runtime_pb2.ReadRequest(device_id=switch.device_id)
        req.entities.add().table_entry.SetInParent()        # table 0: every table
        return {entry_key(pipeline.entry_from_msg(ent.table_entry))
                for rep in stub.Read(req, timeout=10) for ent in rep.entities}


class DbView:
    """The controller's database as another process sees it: committed rows only."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row

    def q(self, sql: str, *args) -> list[dict]:
        return [dict(r) for r in self.db.execute(sql, args)]

    def one(self, sql: str, *args) -> dict | None:
        rows = self.q(sql, *args)
        return rows[0] if rows else None

    def scalar(self, sql: str, *args):
        r = self.db.execute(sql, args).fetchone()
        return r[0] if r else None

    def close(self):
        self.db.close()


@contextmanager
def db_view(db_path: Path, node):
    """The committed database of ``node`` (one file per node: spp.<node>.db)."""
    from controller.core import node_db_path
    db = DbView(node_db_path(db_path, node.name if hasattr(node, "name") else node))
    try:
        db.db.execute("BEGIN")                  # one snapshot for all the reads
        yield db
    finally:
        db.db.execute("COMMIT")
        db.close()


def switch_vs_db(testbed, db_path: Path) -> list[str]:
    """THE comparison: each switch's table entries, read over P4Runtime, against
    the entries the controller's translation makes of its committed database.
    Returns the differences (empty: equal)."""
    diffs = []
    for node in testbed.nodes:
        with db_view(db_path, node) as db:
            intents = node_intent(db, node)
        for switch, role in [(node.lc, "lc")] + [(npe, "npe") for npe in node.npes]:
            p = pipeline_of(role)
            want = {entry_key(p.canonical(e)) for e in intents[switch.name].entries}
            have = read_switch(switch, p)
            diffs += [f"{switch.name}: missing {e}" for e in sorted(want - have, key=str)]
            diffs += [f"{switch.name}: not in the database {e}"
                      for e in sorted(have - want, key=str)]
    return diffs


def assert_switches_match_db(testbed, db_path: Path, when: str = ""):
    diffs = switch_vs_db(testbed, db_path)
    assert not diffs, f"{when}: switch != database, {len(diffs)} differences:\n  " + \
        "\n  ".join(diffs[:10])


def wait_switches_match_db(testbed, db_path: Path, timeout: float, when: str = ""):
    """The controller repairs a switch on its own: wait for it, then compare."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not switch_vs_db(testbed, db_path):
                return
        except grpc.RpcError:
            pass
        time.sleep(0.3)
    assert_switches_match_db(testbed, db_path, when)


# Where dst_addr sits in npe.p4's one ternary filter key (pipeline.filter_word; the
# fastpath and the lookup type are above the SPP fields).
DST_SHIFT = sum(pl.FILTER_KEY_BITS[f] for f in
                pl.FILTER_KEY_FIELDS[pl.FILTER_KEY_FIELDS.index("dst_addr") + 1:])


def cross_slice_filters(testbed, db_path: Path, tags: dict[str, int]) -> list[str]:
    """NPE filter entries not of the slice owning their fastpath: an entry's
    key carries its writer's tag (10.<tag>.x.x), its fastpath ID the owner."""
    node = testbed.nodes[0]
    with db_view(db_path, node) as db:
        owner = {(r["npe"], r["gid"]): r["name"] for r in db.q(
            "SELECT f.npe, f.gid, s.name FROM fastpaths f JOIN slices s ON s.id = f.slice_id")}
    out = []
    by_tag = {t: n for n, t in tags.items()}
    for npe in node.npes:
        for e in read_switch(npe, pipeline_of("npe")):
            if e[0] != pl.Npe.FILTER:
                continue
            word, _ = dict(e[1]).get("key", (0, 0))
            gid = word >> pl.FILTER_WORD_BITS + 1          # above the type bit
            dst = word >> DST_SHIFT & 0xFFFFFFFF
            writer = by_tag.get(dst >> 16 & 0xFF, "?")
            holder = owner.get((npe.name, gid))
            if holder != writer:
                whose = f"slice {holder}'s" if holder else "free"
                out.append(f"{npe.name}: filter of slice {writer} (priority {e[4]}) under "
                           f"fastpath {gid}, which is {whose}")
    return out


# ---- set-up through the slice library -------------------------------------

def filter_args(tag: int, fpid: int, fid: int, result: dict | None = None) -> dict:
    return {"fpid": fpid, "fid": fid, "type": 0, "key": {"dst_addr": f"10.{tag}.{fid % 256}.0"},
            "mask": {"dst_addr": "255.255.255.0"}, "result": result or {"action": "drop"}}


def router(s: Slice, filters=16, queues=2, stats=4, sram=64) -> int:
    """A fastpath with two meta-interfaces, a bound queue and filter 10."""
    f = s.alloc_fastpath(bw=10_000, filters=filters, queues=queues, buffers=64, stats=stats,
                         sram=sram)["fpid"]
    s.resrv_fpath_ifbw(f, ifn=1, bw=4_000)
    s.alloc_udp_tunnel(f, ifn=1, bw=1_000)
    mi2 = s.alloc_udp_tunnel(f, ifn=1, bw=1_000)["mi"]
    s.bind_queue(f, mi2, [0])
    s.set_queue_params(f, 0, threshold=32, bw=800)
    s.write_fltr(f, 10, key={"dst_addr": "10.1.0.0"}, mask={"dst_addr": "255.255.0.0"},
                 result={"action": "forward", "meta_if": mi2, "nh_addr": NH, "nh_port": 30000,
                         "queue": 0, "stats": 1})
    return f


@contextmanager
def stopped(proc):
    """SIGSTOP a switch (its process group); SIGCONT whatever happens."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def run_threads(target, args_list: list[tuple], timeout: float) -> None:
    threads = [threading.Thread(target=target, args=a, daemon=True) for a in args_list]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    assert not stuck, f"{stuck} client threads still waiting after {timeout:.0f} s"


# ---- racing slices -----------------------------------------------------------

RACE_ERRORS = {"ENOENT", "EEXIST", "EQUOTA", "ENOBW", "ENORES", "EBUSY", "ERANGE", "EINVAL"}
FP_ARGS = {"copt": "ipv4", "bw": 1000, "filters": 8, "queues": 2, "buffers": 8, "stats": 4,
           "sram": 0, "dram": 0}


def random_call(rng: random.Random, tag: int) -> tuple[str, dict]:
    """One call of a slice program working on its fastpaths 1 and 2."""
    fpid, fid, mi = rng.choice((1, 2)), rng.randint(1, 8), rng.randint(1, 3)
    op = rng.choices(["alloc_fastpath", "free_fastpath", "alloc_udp_tunnel",
                      "free_udp_tunnel", "bind_queue", "write_fltr", "update_result",
                      "rem_fltr_byfid", "create_periodic", "delete_periodic"],
                     weights=[2, 2, 2, 1, 1, 5, 2, 2, 1, 1])[0]
    if op == "create_periodic":
        return op, {"fpid": fpid, "index": 1, "flags": 15, "interval": 100, "size": 4,
                    "model": "pull", "port": 0, "callback": ""}
    if op == "delete_periodic":
        return op, {"pid": rng.randint(1, 3)}
    if op == "alloc_fastpath":
        return op, dict(FP_ARGS)
    if op == "free_fastpath":
        return op, {"fpid": rng.randint(1, 3)}
    if op == "alloc_udp_tunnel":
        return op, {"fpid": fpid, "ifn": 1, "port": 0, "bw": 0}
    if op == "free_udp_tunnel":
        return op, {"fpid": fpid, "mi": mi}
    if op == "bind_queue":
        return op, {"fpid": fpid, "mi": mi, "queues": [rng.randint(0, 1)]}
    result = rng.choice([{"action": "drop", "stats": 1}, {"action": "local", "stats": 2},
                         {"action": "forward", "meta_if": mi, "nh_addr": NH, "nh_port": 30000,
                          "queue": rng.randint(0, 1), "stats": 3}])
    if op == "write_fltr":
        return op, filter_args(tag, fpid, fid, result)
    if op == "update_result":
        return op, {"fpid": fpid, "fid": fid, "result": result}
    return op, {"fpid": fpid, "fid": fid}


def verdict(when: str, answers: list[Answer], allowed: set[str], testbed, db: Path,
            tags: dict[str, int]) -> list[str]:
    """Everything wrong after a round: bad answers, entries under another
    slice's fastpath or under none, switch != database."""
    out = []
    bad = problems(answers, allowed)
    if bad:
        out.append(f"{when}: " + summary(bad))
    cross = cross_slice_filters(testbed, db, tags)
    if cross:
        out.append(f"{when}: {len(cross)} filter entries outside their slice's fastpaths:\n  "
                   + "\n  ".join(cross[:8]))
    diffs = switch_vs_db(testbed, db)
    if diffs:
        out.append(f"{when}: switch != database, {len(diffs)} differences:\n  "
                   + "\n  ".join(diffs[:8]))
    return out


def own_filters_only(sl: SliceHandle, api: Api) -> list[str]:
    """Through the API, a slice sees only filters it wrote itself."""
    out = []
    for fpid in (1, 2):
        for fid in range(1, 9):
            a = api("get_fltr_byfid", fpid=fpid, fid=fid)
            if a.problem or (a.code and a.error != "ENOENT"):
                out.append(str(a))
            elif a.ok and not a.result["key"]["dst_addr"].startswith(f"10.{sl.tag}."):
                out.append(f"slice {sl.name} sees a filter it did not write: {a}")
    return out


def test_racing_slices_keep_switch_and_db_equal(controller, live_node, tmp_path):
    """8 clients of 4 slices (two per slice, on the same fastpath IDs) race
    allocate/free/write/update/remove calls (fastpaths, meta-interfaces,
    queue bindings, filters, periodic jobs). Every answer is SPP JSON with an
    expected code; after every round the switches hold exactly what the
    database says, no entry outlives its fastpath, none sits under another
    slice's fastpath, and every slice sees only its own filters."""
    handles = add_slices(controller, live_node, 4)
    tags = {h.name: h.tag for h in handles}
    clients = [(h, h.api()) for h in handles for _ in range(2)]
    db = tmp_path / "spp.db"
    testbed = live_node.testbed
    rounds, ops = 6, 40
    failures: list[str] = []
    try:
        for rnd in range(rounds):
            answers: list[Answer] = []

            def race(i, h, api, rnd=rnd, answers=answers):
                rng = random.Random(1000 * rnd + i)
                for _ in range(ops):
                    fn, args = random_call(rng, h.tag)
                    answers.append(api(fn, **args))
                    if answers[-1].status is None:      # no answer: stop, do not pile up
                        return

            run_threads(race, [(i, h, api) for i, (h, api) in enumerate(clients)],
                        timeout=ops * CALL_TIMEOUT)
            failures += verdict(f"round {rnd}", answers, RACE_ERRORS, testbed, db, tags)
            for h, api in clients[::2]:
                failures += own_filters_only(h, api)
            if any(x.status is None for x in answers):
                break
        assert not failures, "\n".join(failures)
    finally:
        for _, api in clients:
            api.close()


def test_freed_fastpath_id_reused_carries_nothing(controller, live_node, tmp_path):
    """Slice a writes filters into its fastpath from 4 clients while a fifth
    frees it; slice b then gets the same fastpath ID on the NPE. Every answer
    is SPP JSON, and b's fastpath holds b's entries only."""
    a, b = add_slices(controller, live_node, 2)
    tags = {a.name: a.tag, b.name: b.tag}
    writers = [a.api() for _ in range(4)]
    freer, b_api = a.api(), b.api()
    db = tmp_path / "spp.db"
    testbed = live_node.testbed
    failures: list[str] = []
    try:
        for rnd in range(8):
            assert freer("alloc_fastpath", **dict(FP_ARGS, filters=64)).ok
            answers: list[Answer] = []

            def write(i, api, rnd=rnd, answers=answers):
                for k in range(12):
                    fid = 1 + i * 12 + k
                    answers.append(api("write_fltr", **filter_args(a.tag, 1, fid)))

            def free(rnd=rnd, answers=answers):
                time.sleep(0.01 * (rnd % 4))
                answers.append(freer("free_fastpath", fpid=1))

            threads = [threading.Thread(target=write, args=(i, w), daemon=True)
                       for i, w in enumerate(writers)] + [threading.Thread(target=free)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(12 * CALL_TIMEOUT)
            freed = [x for x in answers if x.fn == "free_fastpath"]
            assert freed and freed[0].ok, freed
            got = b_api("alloc_fastpath", **FP_ARGS)
            assert got.ok, got
            for fid in range(1, 5):
                answers.append(b_api("write_fltr", **filter_args(b.tag, got.result["fpid"],
                                                                  fid)))
            failures += verdict(f"round {rnd}", answers, {"ENOENT"}, testbed, db, tags)
            assert b_api("free_fastpath", fpid=got.result["fpid"]).ok
            if any(x.status is None for x in answers):
                break
        assert not failures, "\n".join(failures)
    finally:
        for api in [*writers, freer, b_api]:
            api.close()


# ---- a stalled switch ----------------------------------------------------------

def test_stalled_switch_fails_fast_and_is_repaired(live_node, tmp_path):
    """NPE stopped (SIGSTOP): calls needing it fail with ESWITCH within a few
    seconds and change nothing; calls that do not (interfaces, filters read
    from the database, the line card) answer at once, also while a call
    waits for the NPE. After SIGCONT the switch holds exactly the database
    and every call works again."""
    with ControllerProcess(live_node, tmp_path) as ctl:
        a, b = add_slices(ctl, live_node, 2)
        with a.lib() as s:
            f = router(s)
            s.mem_write(f, 0, [7, 8, 9])
            s.create_periodic(f, index=1, interval=100, size=4)     # samples the NPE
        api_a, api_a2, api_b = a.api(), a.api(), b.api()
        f10 = api_a("get_fltr_byfid", fpid=f, fid=10)
        assert f10.ok
        npe = live_node.procs["npe"]
        try:
            with stopped(npe):
                with ThreadPoolExecutor(1) as ex:
                    slow = ex.submit(api_a, "write_fltr", **filter_args(a.tag, f, 20))
                    time.sleep(0.3)
                    fast = [api_b("get_interfaces"), api_a2("get_fltr_byfid", fpid=f, fid=10),
                            api_a2("get_ifattrs", ifn=1),
                            api_b("alloc_endpoint", ifn=1, port=0, proto="udp", slice_port=0)]
                    first = slow.result()
                assert first.error == "ESWITCH" and first.seconds < SWITCH_DEADLINE, first
                for x in fast:
                    assert x.ok and x.seconds < FAST, f"while the NPE is stopped: {x}"
                for fn, args in [("write_fltr", filter_args(a.tag, f, 21)),
                                 ("update_result", {"fpid": f, "fid": 10,
                                                    "result": {"action": "drop"}}),
                                 ("rem_fltr_byfid", {"fpid": f, "fid": 10}),
                                 ("mem_write", {"fpid": f, "offset": 0, "values": [1]}),
                                 ("mem_read", {"fpid": f, "offset": 0, "count": 3}),
                                 ("read_stats", {"fpid": f, "index": 1, "flags": 15}),
                                 ("alloc_udp_tunnel", {"fpid": f, "ifn": 1, "port": 0,
                                                       "bw": 0}),
                                 ("free_fastpath", {"fpid": f})]:
                    x = api_a(fn, **args)
                    assert x.error == "ESWITCH" and x.seconds < SWITCH_DEADLINE, x
                x = api_b("alloc_fastpath", **FP_ARGS)
                assert x.error == "ESWITCH" and x.seconds < SWITCH_DEADLINE, x
                assert api_b("free_fastpath", fpid=1).error == "ENOENT"
                # Nothing changed (read from the database: the NPE is not needed).
                assert api_a2("get_fltr_byfid", fpid=f, fid=20).error == "ENOENT"
                assert api_a2("get_fltr_byfid", fpid=f, fid=21).error == "ENOENT"
                assert api_a2("get_fltr_byfid", fpid=f, fid=10).result == f10.result
                assert api_a2("get_endpoint", fpid=f, mi=3).error == "ENOENT"
            # Back: repaired (writes the stopped switch had queued are undone), usable.
            wait_switches_match_db(live_node.testbed, ctl.db, 20, "after SIGCONT")
            deadline = time.monotonic() + 20
            while not (x := api_a("write_fltr", **filter_args(a.tag, f, 22))).ok:
                assert x.error == "ESWITCH" and time.monotonic() < deadline, x
                time.sleep(0.3)
            assert api_a("get_fltr_byfid", fpid=f, fid=22).ok, "acknowledged, then lost"
            assert api_a("mem_read", fpid=f, offset=0, count=3).result == [7, 8, 9]
            assert api_a("read_stats", fpid=f, index=1, flags=15).ok
            assert api_a("get_fltr_byfid", fpid=f, fid=20).error == "ENOENT"
            assert_switches_match_db(live_node.testbed, ctl.db, "at the end")
        finally:
            for api in (api_a, api_a2, api_b):
                api.close()


@pytest.fixture
def two_nodes(live_node, tmp_path):
    """The live node (node1) and a second one (node2, switches lc2 and npe2)
    in one testbed file, for one controller."""
    from controller.testbed import Testbed
    from mininet_topo.livenode import LiveNode
    (tmp_path / "node2").mkdir()
    with LiveNode(tmp_path / "node2", tag=str(230 if live_node.tag != "230" else 231)) as other:
        n1, n2 = copy.deepcopy(live_node.testbed.nodes[0]), copy.deepcopy(other.testbed.nodes[0])
        n2.name, n2.lc.name, n2.npes[0].name = "node2", "lc2", "npe2"
        testbed = Testbed("two", [n1, n2])
        path = tmp_path / "two.json"
        testbed.save(path)
        yield testbed, path, other


def test_stalled_node_does_not_delay_another(live_node, two_nodes, tmp_path):
    """node1's NPE stopped, a call waiting for it: a slice on node2 programs
    its fastpath as fast as ever. After SIGCONT both nodes hold exactly what
    the database says."""
    testbed, path, other = two_nodes
    with ControllerProcess(live_node, tmp_path, testbed=path) as ctl:
        spec = slice_specs(live_node)[0]
        secret = ctl.create_slice(spec["name"], spec["mgmt_addr"], spec["data_addr"],
                                  spec["lc_port"], spec["mac"])
        a = SliceHandle("a", 1, spec["mgmt_addr"], secret, ctl.url)
        secret = ctl.create_slice("z", "127.0.0.6", spec["data_addr"], spec["lc_port"],
                                  other.slice_macs["A"], node="node2")
        z = SliceHandle("z", 26, "127.0.0.6", secret, ctl.url)
        with a.lib() as s:
            fa = router(s)
        with z.lib() as s:
            fz = router(s)
        api_a, api_z = a.api(), z.api()
        try:
            with stopped(live_node.procs["npe"]), ThreadPoolExecutor(1) as ex:
                slow = ex.submit(api_a, "write_fltr", **filter_args(a.tag, fa, 20))
                time.sleep(0.3)
                late = None
                for fn, args in [("write_fltr", filter_args(z.tag, fz, 20)),
                                 ("update_result", {"fpid": fz, "fid": 20,
                                                    "result": {"action": "drop"}}),
                                 ("alloc_udp_tunnel", {"fpid": fz, "ifn": 1, "port": 0,
                                                       "bw": 0}),
                                 ("mem_write", {"fpid": fz, "offset": 0, "values": [5, 6]}),
                                 ("mem_read", {"fpid": fz, "offset": 0, "count": 2}),
                                 ("read_stats", {"fpid": fz, "index": 1, "flags": 15}),
                                 ("rem_fltr_byfid", {"fpid": fz, "fid": 20})]:
                    x = api_z(fn, **args)
                    if not (x.ok and x.seconds < FAST):
                        late = x
                        break
                first = slow.result()
            assert late is None, f"node2, while node1's NPE is stopped: {late}"
            assert first.error == "ESWITCH" and first.seconds < SWITCH_DEADLINE, first
            wait_switches_match_db(testbed, ctl.db, 20, "after SIGCONT")
        finally:
            api_a.close()
            api_z.close()


def test_readers_see_committed_state_only(live_node, tmp_path):
    """While the NPE is stopped, nothing written can be committed (a call
    commits after the switch took it): a reader polling the filters being
    written must not see them, and whatever it sees must exist in the end."""
    with ControllerProcess(live_node, tmp_path) as ctl:
        (a,) = add_slices(ctl, live_node, 1)
        with a.lib() as s:
            f = router(s)
        writer, reader = a.api(), a.api()
        fids = range(100, 106)
        seen: dict[int, str] = {}
        stop = threading.Event()

        def read():
            while not stop.is_set():
                for fid in fids:
                    x = reader("get_fltr_byfid", fpid=f, fid=fid)
                    if x.ok:
                        seen.setdefault(fid, "get_fltr_byfid")
                    x = reader("lookup_fltr", fpid=f, type=0,
                               key={"dst_addr": f"10.{a.tag}.{fid}.7"})
                    if x.ok and x.result["fid"] in fids:
                        seen.setdefault(x.result["fid"], "lookup_fltr")

        written: list[Answer] = []

        def write():
            for fid in fids:
                written.append(writer("write_fltr", **filter_args(a.tag, f, fid)))

        try:
            w = threading.Thread(target=write, daemon=True)
            with stopped(live_node.procs["npe"]):
                r = threading.Thread(target=read, daemon=True)
                r.start()
                w.start()
                w.join(2 * SWITCH_DEADLINE)
                stop.set()
                r.join(CALL_TIMEOUT)
                during_stall = dict(seen)
            w.join(len(fids) * CALL_TIMEOUT)
            assert not during_stall, (f"readers saw filters {during_stall} while the NPE was "
                                      "stopped: uncommitted rows")
            for fid in seen:
                assert reader("get_fltr_byfid", fpid=f, fid=fid).ok, \
                    f"filter {fid} was seen but does not exist"
            bad = problems(written, {"ESWITCH"})
            assert not bad, summary(bad)
            wait_switches_match_db(live_node.testbed, ctl.db, 20, "after SIGCONT")
        finally:
            writer.close()
            reader.close()


# ---- a table filled to capacity -------------------------------------------------

FULL_ERRORS = {"ENORES", "EQUOTA", "ESWITCH"}


def test_full_table_never_hangs(live_node, tmp_path):
    """Slice a allocates meta-interfaces from 8 clients until the NPE's
    tunnel table is full: every call answers in bounded time, refusals are
    ENORES/EQUOTA/ESWITCH, nobody reads a meta-interface that is rolled
    back, other slices keep working, the switches hold exactly the database."""
    with ControllerProcess(live_node, tmp_path) as ctl:
        # The admin lets slice a have more meta-interfaces than the NPE holds.
        a, b, c = add_slices(ctl, live_node, 3, quotas={"a": {"meta_ifs": 8192}})
        with b.lib() as s:
            fb = router(s)
        clients = [a.api() for _ in range(8)]
        reader, api_b, api_c = a.api(), b.api(), c.api()
        got = clients[0]("alloc_fastpath", **dict(FP_ARGS, filters=4))
        assert got.ok, got
        fa = got.result["fpid"]
        answers: list[Answer] = []
        refused = threading.Event()
        acked: set[int] = set()
        seen: set[int] = set()

        def fill(api):
            extra = 5                        # calls after the first refusal
            while extra > 0:
                x = api("alloc_udp_tunnel", fpid=fa, ifn=1, port=0, bw=0)
                answers.append(x)
                if x.ok:
                    acked.add(x.result["mi"])
                else:
                    refused.set()
                    extra -= 1
                    if x.problem:
                        return

        done = threading.Event()

        def read():
            while not done.is_set():
                top = max(acked, default=0)
                for mi in range(top + 1, top + 9):
                    if reader("get_endpoint", fpid=fa, mi=mi).ok:
                        seen.add(mi)
                if any(x.problem for x in answers[-8:]):
                    return

        try:
            r = threading.Thread(target=read, daemon=True)
            r.start()
            try:
                run_threads(fill, [(api,) for api in clients], timeout=300)
            finally:
                done.set()
            r.join(CALL_TIMEOUT)
            bad = problems(answers, FULL_ERRORS)
            assert not bad, f"{len(acked)} meta-interfaces acknowledged; " + summary(bad)
            slow = [str(x) for x in answers if x.seconds > SWITCH_DEADLINE]
            assert not slow, summary(slow)
            assert refused.is_set() and len(acked) > 1000
            # Other slices keep working, and nobody waits.
            for api, fn, args in [
                    (api_b, "write_fltr", filter_args(b.tag, fb, 11)),
                    (api_b, "read_stats", {"fpid": fb, "index": 1, "flags": 15}),
                    (api_b, "update_result", {"fpid": fb, "fid": 11,
                                              "result": {"action": "local", "stats": 1}}),
                    (api_b, "alloc_endpoint", {"ifn": 1, "port": 0, "proto": "udp",
                                               "slice_port": 0})]:
                x = api(fn, **args)
                assert x.ok and x.seconds < FAST, x
            x = api_c("alloc_fastpath", **FP_ARGS)    # needs a tunnel entry too
            assert not x.problem and x.seconds < SWITCH_DEADLINE, x
            if not x.ok:
                assert x.error in FULL_ERRORS, x
            # What a reader saw exists; the switches hold exactly the database.
            for mi in seen:
                assert reader("get_endpoint", fpid=fa, mi=mi).ok, \
                    f"meta-interface {mi} was read but does not exist"
            wait_switches_match_db(live_node.testbed, ctl.db, 20, "table full")
            x = clients[0]("free_fastpath", fpid=fa)
            assert x.ok and x.seconds < CALL_TIMEOUT, x
            assert_switches_match_db(live_node.testbed, ctl.db, "after freeing")
        finally:
            for api in [*clients, reader, api_b, api_c]:
                api.close()
