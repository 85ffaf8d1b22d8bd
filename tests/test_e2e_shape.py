"""End to end, the SPP's shape (issue 14.1-2): several NPEs per node, and
slices added and removed while the testbed runs. One Mininet testbed with
BMv2 for the module: two nodes with two NPEs each, an end host behind each,
the slices rtr and rtr2."""

from __future__ import annotations

import json
import os
import stat

import pytest
from conftest import needs_bmv2

pytestmark = needs_bmv2

TOPO = {
    "name": "shape",
    "description": "default, with two NPEs per node",
    "nodes": [{"name": "spp1", "npes": 2}, {"name": "spp2", "npes": 2}],
    "links": [{"a": "spp1", "b": "spp2", "bw_mbps": 100}],
    "hosts": [{"name": "h1", "node": "spp1", "bw_mbps": 100},
              {"name": "h2", "node": "spp2", "bw_mbps": 100}],
    "slices": [{"name": "rtr", "overlay": "10.1.0.0/16", "mi_bw_kbps": 20000},
               {"name": "rtr2", "overlay": "10.2.0.0/16", "mi_bw_kbps": 5000}],
}


@pytest.fixture(scope="module")
def spp(tmp_path_factory):
    from mininet_topo.sppnet import SppNet
    f = tmp_path_factory.mktemp("shape") / "shape.json"
    f.write_text(json.dumps(TOPO))
    with SppNet(f) as s:
        yield s


def load_testbed(spp):
    from controller.testbed import Testbed
    return Testbed.load(spp.testbed_path)


def switches_now(spp) -> dict[str, set]:
    """Every table entry of every switch, read over P4Runtime."""
    from test_concurrency import pipeline_of, read_switch
    out = {}
    for node in load_testbed(spp).nodes:
        out[node.lc.name] = read_switch(node.lc, pipeline_of("lc"))
        for npe in node.npes:
            out[npe.name] = read_switch(npe, pipeline_of("npe"))
    return out


def databases_now(spp) -> dict[str, dict]:
    """Every row of every table of each node's database (spp.<node>.db), committed."""
    from test_concurrency import db_view
    out = {}
    for node in spp.spec.nodes:
        with db_view(spp.run_dir / "spp.db", node) as db:
            tables = [r["name"] for r in db.q(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")]
            out[node] = {t: sorted(json.dumps(r, sort_keys=True, default=str)
                                   for r in db.q(f"SELECT * FROM {t}")) for t in tables}
    return out


def assert_switches_are_the_database(spp, when: str):
    from test_concurrency import switch_vs_db
    diffs = switch_vs_db(load_testbed(spp), spp.run_dir / "spp.db")
    assert not diffs, f"{when}: switch != database:\n  " + "\n  ".join(diffs[:10])


def cli(spp, tmp_path, *commands) -> None:
    """Commands through make run's CLI (SppCLI), as a script."""
    from mininet_topo.run import SppCLI
    script = tmp_path / "cli.txt"
    script.write_text("\n".join(commands) + "\n")
    with open(os.devnull) as stdin:       # Mininet's CLI polls its stdin, even for a script
        SppCLI(spp, script=str(script), stdin=stdin)


def test_two_slices_on_the_two_npes_of_each_node(spp):
    """Least-loaded placement puts rtr and rtr2 on different NPEs of each
    node; traffic of both crosses them, and each fastpath's counters, kept
    in its own NPE, equal what was sent while the other's do not move."""
    from mininet_topo.demo import check_ping, check_stats_and_isolation, summary
    fps = spp.admin("GET", "/admin/state")["fastpaths"]
    for node in ("spp1", "spp2"):
        npe_of = {r["slice"]: r["npe"] for r in fps if r["node"] == node}
        assert sorted(npe_of) == ["rtr", "rtr2"]
        assert sorted(npe_of.values()) == [f"{node}npe", f"{node}npe2"], npe_of
    checks = [check_ping(spp, "h1", "h2", s) for s in ("rtr", "rtr2")]
    checks += check_stats_and_isolation(spp, "h1", "h2", "rtr2", "rtr")
    checks += check_stats_and_isolation(spp, "h2", "h1", "rtr", "rtr2")
    print(summary(checks))
    assert all(c.ok for c in checks), summary(checks)
    # each NPE holds the entries of the fastpath placed on it, nothing else
    assert_switches_are_the_database(spp, "two NPEs")
    sw = switches_now(spp)
    for npe in ("spp1npe", "spp1npe2", "spp2npe", "spp2npe2"):
        assert len([e for e in sw[npe] if e[0] == "NpeIngress.encap.fastpath"]) == 1, npe


def test_fastpath_moves_to_the_least_loaded_npe_when_reallocated(spp):
    """A freed and reallocated fastpath goes where the load now is least,
    which need not be the NPE it had; the switches hold exactly the database
    throughout (nothing of it stays behind on the old NPE)."""
    host = spp.net["spp1rtr"]

    def call(fn, **args) -> dict:
        out = host.cmd(f"{spp.run_dir.parent.parent / '.venv/bin/spp-slice'} {fn} "
                       + " ".join(f"{k}={v}" for k, v in args.items()))
        return json.loads(out[out.index("{"):] if "{" in out else "null")

    def npe_of(fpid) -> str:
        return next(r["npe"] for r in spp.admin("GET", "/admin/state")["fastpaths"]
                    if r["node"] == "spp1" and r["slice"] == "rtr" and r["local_id"] == fpid)

    def load() -> dict:
        fps = [r for r in spp.admin("GET", "/admin/state")["fastpaths"] if r["node"] == "spp1"]
        return {n: sum(1 for r in fps if r["npe"] == n) for n in ("spp1npe", "spp1npe2")}

    size = {"bw": 100, "filters": 1, "queues": 1, "buffers": 1, "stats": 1}
    made = []
    try:
        x = call("alloc_fastpath", **size)["fpid"]
        made.append(x)
        first = npe_of(x)
        # Two more (least loaded first: one lands on each NPE), then free the
        # one on the other NPE, and x: the other NPE is now the less loaded.
        made += [call("alloc_fastpath", **size)["fpid"] for _ in range(2)]
        others = [f for f in made if f != x and npe_of(f) != first]
        assert others, load()
        for f in others:
            call("free_fastpath", fpid=f)
            made.remove(f)
        call("free_fastpath", fpid=x)
        made.remove(x)
        again = call("alloc_fastpath", **size)["fpid"]
        made.append(again)
        assert npe_of(again) != first, (first, load())
        assert_switches_are_the_database(spp, "after the move")
    finally:
        for f in made:
            call("free_fastpath", fpid=f)
    assert_switches_are_the_database(spp, "after freeing")


def test_slice_added_and_deleted_while_running(spp, tmp_path):
    """`slice add web on spp1,spp2` in make run's CLI: new sandboxed slice
    hosts with their secret, tunnels on the end hosts, meta-routers that
    forward and count; `slice del web`: the switches and the per-node
    databases exactly as before, no host, link, tunnel or directory left."""
    from mininet_topo.demo import check_ping, check_stats_and_isolation, summary
    sw0, db0 = switches_now(spp), databases_now(spp)
    cli(spp, tmp_path, "slice add web on spp1,spp2")
    assert [sh.name for sh in spp.slice_hosts("web")] == ["spp1web", "spp2web"]
    sh = spp.slice_hosts("web")[0]
    assert sh.router["overlay"] == "10.3.0.0/16"          # slot 2: the next free
    # the new host's private /var/run/spp, its secret 0600, the run directory hidden
    d = spp.run_dir / "spp1web"
    assert stat.S_IMODE(os.stat(d / "secret").st_mode) == 0o600
    seen = spp.net["spp1web"].cmd("ls /var/run/spp").split()
    assert {"secret", "router.json", "controller"} <= set(seen)
    assert spp.net["spp1web"].cmd(f"ls -A {spp.run_dir.parent}").strip() == ""
    assert "No such file" in spp.net["spp1web"].cmd(f"cat {spp.run_dir}/spp1rtr/secret")
    assert "rtr" not in spp.net["spp1web"].cmd("ls -R /var/run /tmp")   # no other slice's
    # it works: ping, counters, and the others do not see it
    checks = [check_ping(spp, "h1", "h2", "web"), check_ping(spp, "h2", "h1", "web")]
    checks += check_stats_and_isolation(spp, "h1", "h2", "web", "rtr")
    print(summary(checks))
    assert all(c.ok for c in checks), summary(checks)
    assert_switches_are_the_database(spp, "after slice add")
    sw1, db1 = switches_now(spp), databases_now(spp)
    assert sw1 != sw0 and db1 != db0
    web_npes = {r["npe"] for r in spp.admin("GET", "/admin/state")["fastpaths"]
                if r["slice"] == "web"}
    assert len(web_npes) == 2

    cli(spp, tmp_path, "slice del web")
    assert spp.slice_hosts("web") == []
    assert "spp1web" not in spp.net and "spp2web" not in spp.net
    assert not (spp.run_dir / "spp1web").exists()
    assert "web" not in {r["name"] for r in spp.admin("GET", "/admin/slices")}
    assert switches_now(spp) == sw0
    assert databases_now(spp) == db0
    assert_switches_are_the_database(spp, "after slice del")
    links = spp.ctl.cmd("ip -o link").split("\n")
    assert len([x for x in links if "sppctl-mg" in x]) == 4        # rtr, rtr2 on 2 nodes
    assert "ovl2" not in spp.net["h1"].cmd("ip -o link")
    # the slices that were there still forward
    checks = [check_ping(spp, "h1", "h2", s) for s in ("rtr", "rtr2")]
    assert all(c.ok for c in checks), summary(checks)

    # again, on one node only, with the freed slot: same addresses, and gone again
    cli(spp, tmp_path, "slice add loc on spp2")
    assert [x.name for x in spp.slice_hosts("loc")] == ["spp2loc"]
    assert spp.slice_hosts("loc")[0].data_addr == "172.20.2.12"
    assert [t["slice"] for t in spp.plan.hosts["h1"].tunnels] == ["rtr", "rtr2"]
    assert_switches_are_the_database(spp, "after slice add loc")
    cli(spp, tmp_path, "slice del loc")
    assert switches_now(spp) == sw0 and databases_now(spp) == db0
