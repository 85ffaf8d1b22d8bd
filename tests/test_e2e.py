"""End to end: Mininet testbeds with BMv2, the controller, sample slices,
real traffic; and that every way of leaving cleans up."""

from __future__ import annotations

import json
import os
import re
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
                                           "--testbed|slices.samples|mininet:|spp-sandbox"],
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


class Terminal:
    """A person at `make run`'s CLI: types a command, reads what the terminal
    shows until the next prompt. Everything shown is kept in ``transcript``."""

    PROMPT = "spp> "

    def __init__(self, argv: list[str], log: Path):
        import pexpect
        self.log = open(log, "w")
        self.p = pexpect.spawn(argv[0], argv[1:], cwd=str(ROOT), encoding="utf-8",
                               codec_errors="replace", timeout=60, dimensions=(50, 200))
        self.p.logfile_read = self.log
        self.transcript = ""

    def wait_prompt(self, timeout: float = 60) -> str:
        self.p.expect_exact(self.PROMPT, timeout=timeout)
        shown = self.p.before.replace("\r\n", "\n")
        self.transcript += shown + self.PROMPT
        return shown

    def type(self, line: str, timeout: float = 60) -> str:
        self.p.sendline(line)
        shown = self.wait_prompt(timeout)
        # The terminal echoes what was typed: what the command printed follows it.
        return shown.split(line, 1)[-1] if line in shown else shown

    def close(self):
        """Leave as a person would (exit); if the CLI does not, kill it and
        clean up as after a crash, so the next test starts clean."""
        import pexpect
        if self.p.isalive():
            self.p.sendline("exit")
            try:
                self.p.expect(pexpect.EOF, timeout=120)
            except pexpect.TIMEOUT:
                self.p.terminate(force=True)
                subprocess.run([sys.executable, "-m", "mininet_topo.cleanup"], cwd=ROOT,
                               capture_output=True)
        self.log.close()


@needs_bmv2
def test_make_run_cli_as_a_person_types_it(tmp_path):
    """`make run` in a pseudo-terminal, typed as in the README's tour: every
    command prints what it prints in Mininet (issue 12: host commands printed
    nothing), and exit leaves nothing behind. The committed P4 outputs are
    used (P4C names no compiler), as on a machine without p4c."""
    pexpect = pytest.importorskip("pexpect")
    term = Terminal(["make", "--no-print-directory", "run", "P4C=no-p4c-in-this-test"],
                    tmp_path / "make-run.log")
    try:
        startup = term.wait_prompt(timeout=300)
        assert "SPP testbed default up in" in startup, startup
        out = term.type("h1 ping -c 2 10.1.2.1")
        assert "64 bytes from 10.1.2.1" in out and "2 received" in out, out
        out = term.type("h1 traceroute -n 10.1.2.1")
        hops = re.findall(r"^\s*\d+\s+(?:\*\s+)*([\d.]+)", out, re.M)   # a probe may be lost
        assert hops == ["10.1.255.1", "10.1.255.2", "10.1.2.1"], out
        out = term.type("h2 ping -c 2 10.2.1.1")
        assert "2 received" in out, out
        # Every host to every other: 30 pings; "1" waits 1 s, not ping's 10 s, for
        # the pairs the substrate does not connect (an end host and a slice host
        # of another node).
        out = term.type("pingall 1", timeout=120)
        assert "*** Ping: testing ping reachability" in out, out
        assert re.search(r"\*\*\* Results: \d+% dropped \(\d+/\d+ received\)", out), out
        for host in ("h1", "h2", "spp1rtr", "spp2rtr2"):
            assert f"{host} -> " in out, out
        term.type("h2 iperf3 -s -D")
        out = term.type("h1 iperf3 -c 10.1.2.1 -t 2", timeout=60)
        assert re.search(r"[\d.]+ [KMG]bits/sec.*receiver", out), out
        out = term.type("py h1.cmd('ping -c1 10.1.2.1')")
        assert "1 received" in out, out
        out = term.type("fastpaths")
        assert len([ln for ln in out.splitlines() if ln.startswith(("rtr ", "rtr2 "))]) == 4, out
        out = term.type("filters spp1rtr")
        assert "10.1.2.0" in out and "forward" in out, out
        out = term.type("stats spp1rtr")
        assert "pre_packets" in out, out
        out = term.type("spp spp1rtr2 get_ifattrs ifn=2")
        assert '"ifn": 2' in out, out
        out = term.type("web")
        assert re.search(r"web view: http://[\d.]+:\d+/ +metrics: http://", out), out
        out = term.type("spp1rtr2 .venv/bin/spp-slice get_interfaces")
        assert json.loads(out) == [1, 2], out
        term.p.sendline("exit")
        term.p.expect(pexpect.EOF, timeout=120)
        term.transcript += term.p.before.replace("\r\n", "\n")
        term.p.close()
        assert term.p.exitstatus == 0, term.transcript[-2000:]
    finally:
        term.close()
        (ROOT / "logs").mkdir(exist_ok=True)
        (ROOT / "logs" / "make-run-pty.txt").write_text(term.transcript)
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
