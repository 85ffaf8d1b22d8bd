"""End to end: Mininet testbeds with BMv2, the controller, sample slices,
real traffic; and that every way of leaving cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import needs_bmv2

from mininet_topo.demo import check_ping, check_traceroute, run_checks, spp_slice, summary
from mininet_topo.overlay import Tunnel, kernel_features
from mininet_topo.topology import TopologyError, TopologySpec, plan

ROOT = Path(__file__).resolve().parent.parent


def leftovers() -> dict:
    ns = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                    text=True).stdout.split() if n.startswith("spp")]
    links = [line for line in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                             text=True).stdout.splitlines()
             if "-eth" in line or "sppm" in line or "ovl" in line]
    procs = subprocess.run(["pgrep", "-f", "simple_switch_grpc|socat TUN|-m controller "
                                           "--testbed|slices.samples"],
                           capture_output=True, text=True).stdout.split()
    procs = [p for p in procs if int(p) != os.getpid()]
    return {k: v for k, v in (("namespaces", ns), ("links", links), ("processes", procs)) if v}


def test_topologies_plan():
    for name in ("default", "geni5"):
        p = plan(TopologySpec.load(name))
        ports = [(n.name, i.lc_port) for n in p.nodes.values() for i in n.interfaces]
        ports += [(sh.node, sh.lc_port) for sh in p.slice_hosts]
        assert len(ports) == len(set(ports))
        assert all(r["via"] for sh in p.slice_hosts for r in sh.router["routes"])
    p = plan(TopologySpec.load("geni5"))
    slc = next(sh for sh in p.slice_hosts if sh.node == "slc")
    assert {r["prefix"]: r["via"] for r in slc.router["routes"]}["10.1.5.0/24"] == "node:kc"


def test_topology_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "nodes": ["a"], "hosts": [{"name": "h", "node": "zz"}]}')
    with pytest.raises(TopologyError, match="unknown node"):
        TopologySpec.load(bad)
    bad.write_text("{")
    with pytest.raises(TopologyError):
        TopologySpec.load(bad)


def test_fou_tunnel_commands():
    t = Tunnel("ovl0", "10.1.1.1", "10.1.0.0/16", "172.16.1.2", 30000, "172.16.1.1", 20001)
    cmds = t.fou_commands()
    assert cmds[0] == "ip fou add port 30000 ipproto 4"
    assert "encap fou encap-sport 30000 encap-dport 20001" in cmds[1]
    assert "socat" in t.socat_command()[0]


@needs_bmv2
def test_demo_default_topology():
    """make demo's checks, in-process: ping, iperf3, traceroute, stats, isolation."""
    from mininet_topo.sppnet import SppNet
    with SppNet("default") as spp:
        checks = run_checks(spp)
        text = summary(checks, spp)
    assert all(c.ok for c in checks), text
    names = " ".join(c.name for c in checks)
    for what in ("ping", "iperf3", "traceroute", "read_stats", "isolation"):
        assert what in names
    assert leftovers() == {}


@needs_bmv2
def test_geni5_overlay_crosses_all_nodes():
    """The five-node overlay: pings from Salt Lake City reach every other
    node's end host; traceroute to Atlanta crosses the meta-routers on the way."""
    from mininet_topo.sppnet import SppNet
    with SppNet("geni5") as spp:
        checks = [check_ping(spp, "hslc", h, "rtr") for h in ("hkc", "hwdc", "hhou", "hatl")]
        checks.append(check_ping(spp, "hatl", "hwdc", "rtr"))
        checks.append(check_traceroute(spp, "hslc", "hatl", "rtr"))
        checks.append(check_traceroute(spp, "hwdc", "hhou", "rtr"))
        text = summary(checks, spp)
        # Every node's meta-router forwarded overlay traffic: its route
        # filters' counters, read on its slice host, moved.
        forwarded = {}
        for node in spp.spec.nodes:
            sh = f"{node}rtr"
            forwarded[node] = sum(
                spp_slice(spp, sh, "read_stats", fpid=1, index=f["stats"])["pre_packets"]
                for f in spp.router_state(sh)["filters"] if "prefix" in f)
    assert all(c.ok for c in checks), text
    assert all(n > 0 for n in forwarded.values()), forwarded
    assert leftovers() == {}


def have_fou() -> bool:
    return os.geteuid() == 0 and kernel_features()["fou"]


@needs_bmv2
@pytest.mark.skipif(not have_fou(), reason="this kernel has no fou/ipip: the TUN + socat path "
                                           "is the one tested here")
def test_fou_tunnels_end_to_end():
    from mininet_topo.sppnet import SppNet
    with SppNet("default", tunnel="fou") as spp:
        checks = [check_ping(spp, "h1", "h2", "rtr"), check_traceroute(spp, "h1", "h2", "rtr")]
    assert all(c.ok for c in checks), summary(checks)


@needs_bmv2
def test_make_run_reaches_cli_and_exits_clean():
    """`make run`'s program: the CLI lists the sample slices' fastpaths; exit
    leaves nothing behind."""
    out = subprocess.run([sys.executable, "-m", "mininet_topo.run"], cwd=ROOT,
                         input="fastpaths\nexit\n", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith(("rtr ", "rtr2 "))]
    assert len(rows) == 4, out.stdout
    assert leftovers() == {}


@needs_bmv2
def test_clean_after_a_crash():
    """A testbed whose process is killed leaves switches, links and the
    controller behind; `make clean` (mininet_topo.cleanup) removes them."""
    p = subprocess.Popen([sys.executable, "-m", "mininet_topo.run"], cwd=ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        for line in p.stdout:
            if "up in" in line:
                break
        time.sleep(1)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert leftovers(), "a killed run should leave something to clean"
    finally:
        subprocess.run([sys.executable, "-m", "mininet_topo.cleanup"], cwd=ROOT, check=True,
                       capture_output=True)
    deadline = time.monotonic() + 10
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers() == {}


def test_missing_bmv2_is_reported_not_a_traceback():
    """Without simple_switch_grpc on PATH, make run says what to install."""
    if os.geteuid() != 0:
        pytest.skip("the testbed checks root first")
    env = dict(os.environ, PATH="/usr/bin:/bin:/usr/sbin:/sbin")
    out = subprocess.run([sys.executable, "-m", "mininet_topo.run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, input="")
    assert out.returncode == 2
    assert "simple_switch_grpc" in out.stderr and "README" in out.stderr
    assert "Traceback" not in out.stderr
