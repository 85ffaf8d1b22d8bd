"""The testbed's hosts (mininet_topo.nodes.SppHost) on a Mininet network of
their own, without BMv2: what root on one host can and cannot reach. The same
probe (tests/secret_probe.py) run on Mininet's plain Host reads everything:
the check that it looks where the secrets are."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mnexec") is None,
    reason="needs root and Mininet (mnexec)")


@pytest.fixture
def hosts():
    """Hosts ha and hb, each with its own directory as /var/run/spp, on one
    bridge; the run directory holds their secrets and an admin token."""
    from mininet.link import Link
    from mininet.net import Mininet
    from mininet.node import Host
    from mininet.nodelib import LinuxBridge

    from mininet_topo.nodes import SppHost

    # Under run/, which the hosts do not see (they have their own /tmp anyway).
    run = ROOT / "run" / f"test-hosts-{os.getpid()}"
    for name in ("ha", "hb", "hp"):
        (run / name).mkdir(parents=True, exist_ok=True)
        (run / name / "secret").write_text(f"secret-of-{name}-{os.getpid()}\n")
    (run / "admin.token").write_text(f"admin-token-{os.getpid()}\n")
    net = Mininet(topo=None, build=False, controller=None, waitConnected=False)
    try:
        sw = net.addSwitch("sppbr99", cls=LinuxBridge, dpid="99")
        for i, name in enumerate(("ha", "hb")):
            net.addHost(name, cls=SppHost, spp_dir=run / name, hide=(ROOT / "run",),
                        ip=f"10.99.0.{i + 1}/24")
            net.addLink(sw, name, cls=Link)
        # Mininet's own host, for the probe's control.
        net.addHost("hp", cls=Host, ip="10.99.0.9/24")
        net.addLink(sw, "hp", cls=Link)
        net.build()
        net.start()
        yield net, run
    finally:
        net.stop()
        shutil.rmtree(run, ignore_errors=True)


def probe(host, files, find) -> dict:
    out = host.cmd(f"{sys.executable} {ROOT}/tests/secret_probe.py --find {','.join(find)} "
                   + " ".join(map(str, files)))
    return json.loads(out.strip().splitlines()[-1])


def test_a_host_reads_only_its_own_secret(hosts):
    net, run = hosts
    b_secret = (run / "hb" / "secret").read_text().strip()
    token = (run / "admin.token").read_text().strip()
    files = [run / "hb" / "secret", run / "admin.token"]
    # hb runs a program of its own, whose /proc/PID/root and fds are there to try.
    prog = net["hb"].popen(["sleep", "60"])
    try:
        got = probe(net["ha"], files, [b_secret, token])
        leaks = {how: r for how, r in got["read"].items()
                 if r["found"] or any(str(f) in how for f in files)}
        assert leaks == {}, leaks
        # Only its own processes: its shell is PID 1.
        assert net["ha"].cmd("cat /proc/1/cmdline | tr '\\\\0' ' '").startswith("bash")
        assert "sleep 60" not in net["ha"].cmd("ps -eo args=")
        # Mininet's plain host, in the same network, reads all of it.
        control = probe(net["hp"], files, [b_secret, token])
        found = {s for r in control["read"].values() for s in r["found"]}
        assert found == {b_secret, token}, control["errors"]
    finally:
        prog.terminate()
        prog.wait()


def test_own_directory_private_dirs_and_limits(hosts):
    net, run = hosts
    a = net["ha"]
    assert a.cmd("cat /var/run/spp/secret").strip() == (run / "ha" / "secret").read_text().strip()
    a.cmd("echo state > /var/run/spp/state.json")
    assert (run / "ha" / "state.json").read_text() == "state\n"     # the testbed sees it
    # The project is there (slice programs run from it), read-only.
    assert a.cmd(f"test -f {ROOT}/slices/client.py && echo yes").strip() == "yes"
    assert "Read-only file system" in a.cmd(f"touch {ROOT}/x 2>&1; touch /usr/x 2>&1")
    assert not (ROOT / "x").exists()
    # Private /tmp; no disks in /dev; kernel settings read-only but its network's.
    a.cmd("echo mine > /tmp/f")
    assert net["hb"].cmd("cat /tmp/f 2>&1").startswith("cat:")
    assert a.cmd("find /dev -type b").strip() == ""
    assert "Read-only" in a.cmd("echo x > /proc/sys/kernel/core_pattern 2>&1")
    assert a.cmd("sysctl -w net.ipv4.ip_forward=1").strip() == "net.ipv4.ip_forward = 1"
    # Root without the capabilities that undo all this.
    assert "must be superuser" in a.cmd(f"umount {ROOT}/run 2>&1") \
        or "not permitted" in a.cmd(f"umount {ROOT}/run 2>&1")
    caps = int(a.cmd("awk '/CapEff/ {print $2}' /proc/self/status"), 16)
    for cap in (2, 17, 21, 27):        # DAC_READ_SEARCH, SYS_RAWIO, SYS_ADMIN, MKNOD
        assert not caps & (1 << cap), hex(caps)
    assert caps & (1 << 12) and caps & (1 << 13)       # NET_ADMIN, NET_RAW
    # The network works as in any Mininet host.
    assert " 0% packet loss" in a.cmd("ping -c 1 -W 2 10.99.0.2")


def test_popen_runs_in_the_host(hosts):
    """Programs the testbed starts in a host (its slice programs) are in the
    host's namespaces, with its capabilities, in the directory asked for."""
    net, run = hosts
    p = net["ha"].popen(["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline | tr ' ' _; echo; pwd; "
                         "cat /var/run/spp/secret; awk '/CapBnd/ {print $2}' /proc/self/status"],
                        cwd=str(ROOT))
    out, _ = p.communicate(timeout=30)
    init, cwd, secret, caps = out.decode().split()
    assert "mininet:ha" in init                         # PID 1 is the host's shell
    assert cwd == str(ROOT)
    assert secret == (run / "ha" / "secret").read_text().strip()
    assert not int(caps, 16) & (1 << 21)                # no SYS_ADMIN
