"""End to end: inside a running testbed, no slice host and no end host can read
another slice's secret, the admin token or the controller's database, nor call
the API from another slice's management address (issue 11, item 2: the
testbed's side). Every host is root on its own host and tries every way it
has: tests/secret_probe.py, run in the host's shell."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import needs_bmv2
from test_e2e import leftovers

from mininet_topo.demo import check_ping, spp_slice

ROOT = Path(__file__).resolve().parent.parent
VICTIM = "spp1rtr"

pytestmark = needs_bmv2


@pytest.fixture(scope="module")
def spp():
    from mininet_topo.sppnet import SppNet
    with SppNet("default") as net:
        yield net
    assert leftovers() == {}


def protected_files(spp) -> list[Path]:
    """spp1rtr's secret, the admin token, the controller's databases and their WALs."""
    run = spp.run_dir
    dbs = sorted(run.glob("spp*.db"))
    return [run / VICTIM / "secret", run / "admin.token",
            *dbs, *(db.with_name(db.name + "-wal") for db in dbs)]


def probe(spp, host: str, files: list[Path], find: list[str]) -> dict:
    out = spp.net[host].cmd(f"{sys.executable} {ROOT}/tests/secret_probe.py "
                            f"--find {','.join(find)} {' '.join(map(str, files))}")
    return json.loads(out.strip().splitlines()[-1])


def test_the_protected_files_exist_with_their_final_mode(spp):
    """What the probes look for is there, as the controller and the slice see it."""
    run = spp.run_dir
    assert (run / VICTIM / "secret").read_text().strip() == spp.secrets[VICTIM]
    assert (run / "admin.token").read_text().strip() == spp.admin_token
    assert [db for db in run.glob("spp*.db") if db.stat().st_size > 0]
    for f in (run / VICTIM / "secret", run / "admin.token"):
        assert f.stat().st_mode & 0o777 == 0o600, f
    # The victim reads its own secret where slice programs look for it.
    assert spp.net[VICTIM].cmd("cat /var/run/spp/secret").strip() == spp.secrets[VICTIM]


@pytest.mark.parametrize("host", ["spp1rtr2", "h1"])
def test_hosts_cannot_read_other_slices_secrets_token_or_db(spp, host):
    files = protected_files(spp)
    secret = spp.secrets[VICTIM]
    got = probe(spp, host, files, [secret, spp.admin_token])
    assert got["pids"], "the probe saw no process at all"
    leaks = {how: r for how, r in got["read"].items()
             if r["found"] or any(str(f) in how for f in files)}
    assert leaks == {}, f"{host} read: {leaks}"
    # None of the victim's processes, the controller's or the switches' is
    # visible: every process the host sees is its own.
    own = spp.net[host].cmd("ps -eo args=")
    assert "controller" not in own and "simple_switch" not in own, own
    # spp1rtr2 sees its own slow path, not spp1rtr's; h1 sees none.
    assert own.count("slices.samples.slowpath") == (host == "spp1rtr2"), own
    if host == "spp1rtr2":
        # The slice host reads its own secret.
        assert spp.net[host].cmd("cat /var/run/spp/secret").strip() == spp.secrets[host]


def test_slice_programs_still_work(spp):
    """Each slice host still configures and reads its meta-router over the
    management network, and traffic crosses the overlay."""
    for sh in spp.plan.slice_hosts:
        st = spp_slice(spp, sh.name, "read_stats", fpid=1,
                       index=spp.router_state(sh.name)["filters"][0]["stats"])
        assert "pre_packets" in st, (sh.name, st)
    check = check_ping(spp, "h1", "h2", "rtr")
    assert check.ok, check.detail


def py(spp, host: str, code: str) -> str:
    """Python code (statements separated by ';') run in a host's shell; its last line."""
    out = spp.net[host].cmd(f"PYTHONPATH={ROOT} {sys.executable} -c {shlex.quote(code)} 2>&1")
    return (out.strip().splitlines() or [""])[-1]


def call_as(spp, host: str, addr: str, secret: str) -> str:
    return py(spp, host, "import httpx; c = httpx.Client(transport=httpx.HTTPTransport("
              f"local_address={addr!r}), timeout=5); print('HTTP', c.post("
              f"{spp.url + '/api/get_interfaces'!r}, json={{}}, headers={{'Authorization': "
              f"'Bearer ' + {secret!r}}}).status_code)")


def test_no_call_from_another_slices_management_address(spp):
    """spp1rtr2, holding spp1rtr's secret (as if it had stolen it), takes
    spp1rtr's management address and announces it by ARP: the call does not
    get through. Nor does spp1rtr2 reach spp1rtr over the management network."""
    victim = next(sh for sh in spp.plan.slice_hosts if sh.name == VICTIM)
    secret, intf = spp.secrets[VICTIM], "spp1rtr2-eth1"
    assert call_as(spp, VICTIM, victim.mgmt_addr, secret) == "HTTP 200"
    assert " 0 received" in spp.net["spp1rtr2"].cmd(f"ping -c 2 -W 1 {victim.mgmt_addr}")
    spp.net["spp1rtr2"].cmd(f"ip addr add {victim.mgmt_addr}/32 dev {intf}")
    try:
        py(spp, "spp1rtr2", "from scapy.all import *; sendp(Ether(dst='ff:ff:ff:ff:ff:ff')/"
           f"ARP(op=2, psrc={victim.mgmt_addr!r}, pdst={victim.mgmt_addr!r}, "
           f"hwsrc=get_if_hwaddr({intf!r})), iface={intf!r}, count=3, verbose=0)")
        out = call_as(spp, "spp1rtr2", victim.mgmt_addr, secret)
        assert not out.startswith("HTTP"), out
        assert "Timeout" in out or "Error" in out, out
    finally:
        spp.net["spp1rtr2"].cmd(f"ip addr del {victim.mgmt_addr}/32 dev {intf}")
    assert call_as(spp, VICTIM, victim.mgmt_addr, secret) == "HTTP 200"


def test_slice_host_reaches_the_controller_and_nothing_else(spp):
    """The switches' Thrift servers listen on every address of the root
    namespace, and anything else there may too: a slice host that reached them
    would program the switches itself. From spp1rtr2, with a route of its own
    towards the switches' control address: only the controller's API answers."""
    from mininet_topo.topology import CONTROLLER_ADDR, CONTROLLER_PORT, SWITCH_CTL_ADDR
    ports = sorted({p for n in spp.plan.nodes.values()
                    for p in (n.lc_grpc, n.lc_thrift, n.npe_grpc, n.npe_thrift)})
    targets = [(a, p) for a in (CONTROLLER_ADDR, SWITCH_CTL_ADDR) for p in ports]
    targets.append((CONTROLLER_ADDR, CONTROLLER_PORT))
    attacker = spp.net["spp1rtr2"]
    attacker.cmd(f"ip route add {SWITCH_CTL_ADDR}/32 via {CONTROLLER_ADDR}")
    try:
        out = py(spp, "spp1rtr2", "import socket, json; "
                 "up = lambda a, p: (lambda s: (s.settimeout(2), s.connect_ex((a, p)) == 0)[1])"
                 f"(socket.socket()); print(json.dumps({{f'{{a}}:{{p}}': up(a, p) "
                 f"for a, p in {targets!r}}}))")
    finally:
        attacker.cmd(f"ip route del {SWITCH_CTL_ADDR}/32")
    reached = json.loads(out)
    assert {k for k, ok in reached.items() if ok} == {f"{CONTROLLER_ADDR}:{CONTROLLER_PORT}"}


def test_a_slice_host_cannot_fill_the_controllers_disk(spp):
    """A slice host's /var/run/spp was its directory of the run directory, on
    the disk of the controller's databases: one host wrote 200 MB there in
    0.4 s, and a full disk fails every slice's changes (review 19, R19-5). It
    is a file system of its own, of SLICE_DIR_BYTES: the host's writes stop
    there, and the run directory's disk does not see them. The same host
    wrote 20 MB into its slow path's log through the program's output; a
    program's log keeps LOG_BYTES of it."""
    from mininet_topo.sppnet import SLICE_DIR_BYTES
    host, d = spp.net["spp1rtr2"], spp.run_dir / "spp1rtr2"
    free = shutil.disk_usage(spp.run_dir).free
    out = host.cmd("dd if=/dev/zero of=/var/run/spp/fill bs=1M count=64 2>&1 | tail -1")
    assert "No space left" in out or "copied" in out, out
    try:
        assert (d / "fill").stat().st_size <= SLICE_DIR_BYTES
        assert (d / "fill").stat().st_dev != (spp.run_dir / "admin.token").stat().st_dev
        assert shutil.disk_usage(spp.run_dir).free > free - SLICE_DIR_BYTES
    finally:
        host.cmd("rm -f /var/run/spp/fill")
    assert host.cmd("cat /var/run/spp/secret").strip() == spp.secrets["spp1rtr2"]
    # Its programs' logs: written by the testbed from their output, which the
    # host (root over them) can write to as well.
    from mininet_topo.sppnet import LOG_BYTES
    pid = host.cmd("pgrep -f slices.samples.slowpath").split()[0]
    log = spp.run_dir / "spp1rtr2-slowpath.log"
    out = host.cmd(f"dd if=/dev/zero of=/proc/{pid}/fd/1 bs=1M count=64 2>&1 | tail -1")
    assert "copied" in out, out
    deadline = time.monotonic() + 10
    while log.stat().st_size < LOG_BYTES and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert log.stat().st_size == LOG_BYTES


def test_the_testbed_reads_a_slice_hosts_state_without_following_it(spp):
    """A slice host owns its directory: the router.state.json the CLI's
    `filters` and `stats` read (SppNet.router_state) may be a symlink to
    /dev/zero (the testbed's process would read until it ran out of memory)
    or a FIFO (it would wait forever). Refused, not followed (review 19)."""
    from mininet_topo.sppnet import SppNetError
    host = spp.net["spp1rtr2"]
    state = spp.router_state("spp1rtr2")
    f = "/var/run/spp/router.state.json"
    host.cmd(f"cp {f} /tmp/keep.json")
    try:
        for plant in (f"ln -sf /dev/zero {f}", f"rm -f {f}; mkfifo {f}"):
            host.cmd(plant)
            with pytest.raises(SppNetError):
                spp.router_state("spp1rtr2")
    finally:
        host.cmd(f"rm -f {f}; cp /tmp/keep.json {f}")
    assert spp.router_state("spp1rtr2") == state


def test_a_slice_host_cannot_lower_the_controllers_path_mtu(spp):
    """spp1rtr2 starts a push job and learns the port of the controller's
    (unconnected) push socket from its datagrams; then it sends the controller
    ICMP "fragmentation needed, MTU 300" naming that socket in its quoted
    header, with spp1rtr's management address, then the switches' control
    address, as the destination. The kernel checks only that such a socket
    exists: it locked the controller's path MTU towards both at 552 bytes for
    10 minutes (spp1rtr's answers and the switch writes cut in 552-byte
    packets). The controller's namespace takes such errors only from
    protocols that can verify them (TCP's sequence numbers)."""
    from mininet_topo.topology import CONTROLLER_ADDR, SWITCH_CTL_ADDR
    host, intf = "spp1rtr2", "spp1rtr2-eth1"
    me = next(sh for sh in spp.plan.slice_hosts if sh.name == host)
    victim = next(sh for sh in spp.plan.slice_hosts if sh.name == VICTIM)
    targets = [victim.mgmt_addr, SWITCH_CTL_ADDR]
    index = spp.router_state(host)["filters"][0]["stats"]
    code = f"""
import socket
from scapy.all import ICMP, IP, UDP, send
from slices.client import Slice
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(({me.mgmt_addr!r}, 7777))
rx.settimeout(5)
with Slice() as s:
    pid = s.create_periodic(1, index={index}, interval=100, size=1, model="push",
                            port=7777)["pid"]
    try:
        _, (src, port) = rx.recvfrom(2048)
    finally:
        s.delete_periodic(pid)
for dst in {targets!r}:
    send(IP(src={me.mgmt_addr!r}, dst={CONTROLLER_ADDR!r}) / ICMP(type=3, code=4,
         nexthopmtu=300) / IP(src={CONTROLLER_ADDR!r}, dst=dst, flags="DF")
         / UDP(sport=port, dport=7777), iface={intf!r}, verbose=0)
print("sent", src, port)
"""
    try:
        out = py(spp, host, f"exec({code!r})")
        assert out.startswith(f"sent {CONTROLLER_ADDR} "), out
        time.sleep(0.5)
        for dst in targets:
            route = spp.ctl.cmd(f"ip route get {dst}")
            assert " mtu " not in route, f"the controller's path MTU to {dst}: {route}"
    finally:
        spp.ctl.cmd("ip route flush cache")
