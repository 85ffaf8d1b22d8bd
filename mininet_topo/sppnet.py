"""A running SPP testbed: Mininet network, BMv2 switches, controller, slices.

    with SppNet("default") as spp:      # brings everything up, tears it all down
        spp.net["h1"].cmd("ping -c 3 10.1.2.1")

Everything a run writes goes to ``run/<topology>/``: the controller's
testbed description, database, admin token and log; each switch's log (and
pcaps with ``pcap=True``); each slice host's private /var/run/spp and the
logs of its programs; pid files that ``make clean`` uses after a crash.

Hosts (end hosts and slice hosts) are sandboxed (nodes.SppHost): none sees
the run directory, another host's or the testbed's processes, or the disks,
and a slice host sees only its own /var/run/spp. Each slice host reaches the
controller over its own management link.

SppNet leaves Mininet's log level alone (the front end sets it; at Mininet's
default, "output", the CLI prints what host commands print and start-up
prints nothing); its own progress messages go to the logger "spp" at INFO.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from .bmv2 import Bmv2Error, find_bmv2
from .capacity import link_notes
from .cleanup import unmount_slice_dirs
from .netns import terminate
from .overlay import Tunnel, kernel_features, tunnel_mode
from .picture import OPERATOR_PORT, write_picture
from .topology import (
    CONTROLLER_ADDR,
    CONTROLLER_CTL_ADDR,
    CONTROLLER_PORT,
    CTL_PLEN,
    LC_NPE_PORT,
    MGMT_PLEN,
    SWITCH_CTL_ADDR,
    LinkParams,
    Plan,
    SliceHostPlan,
    SliceSpec,
    TopologySpec,
    add_slice,
    plan,
    remove_slice,
    testbed_dict,
)

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "run"
log = logging.getLogger("spp")


def add_testbed_args(ap):
    """The options every testbed front end (run, demo) takes."""
    ap.add_argument("--topo", default="default",
                    help="topology name (mininet_topo/topologies/) or file (default: %(default)s)")
    ap.add_argument("--tunnel", choices=("fou", "tun"),
                    help="force the end-host tunnel kind (default: fou if the kernel has it)")


def write_private(path: Path, text: str):
    """Write a file that only its owner (root) can read, created with that mode:
    at no moment is it readable by anyone else."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class SppNetError(Exception):
    """The testbed could not be brought up; the message says what to do."""


def preflight():
    if os.geteuid() != 0:
        raise SppNetError("the testbed needs root (Mininet): run it with sudo")
    try:
        find_bmv2()
    except Bmv2Error as e:
        raise SppNetError(str(e)) from None
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        raise SppNetError("Mininet is not installed: apt-get install mininet (its Python "
                          "package lives in /usr/bin/python3; make venv sees it)") from None
    for tool in ("socat", "brctl", "tc"):
        if shutil.which(tool) is None:
            raise SppNetError(f"{tool} not found: apt-get install socat bridge-utils iproute2")


#: what a slice host may keep in its /var/run/spp: its directory of the run
#: directory is a file system of its own, of this size. On the run
#: directory's disk (the controller's databases' too), one slice host filled
#: it at 530 MB/s (review 19, R19-5): every slice's changes would then fail.
SLICE_DIR_BYTES = 16 << 20


#: what a program the testbed starts in a host (slice programs, end hosts'
#: socat) may write into its log in the run directory. A host is root over
#: its programs: it wrote 20 MB into a slow path's log (/proc/<pid>/fd/1) in
#: 14 ms, on the disk of the controller's databases (R19-5).
LOG_BYTES = 16 << 20


def log_capped(src, path: Path, cap: int):
    """Copy a program's output into its log, its first ``cap`` bytes; the rest
    is read and dropped, so the program never blocks on its output."""
    with src, open(path, "wb", buffering=0) as out:
        left = cap
        while chunk := src.read1(1 << 16):
            if left > 0:
                out.write(chunk[:left])
                left -= len(chunk)


def slice_dir(d: Path):
    """A slice host's directory of the run directory (its /var/run/spp): a
    tmpfs of SLICE_DIR_BYTES, readable by root only, mounted before the host
    starts (the host binds it). cleanup.unmount_slice_dirs removes it."""
    from .cleanup import SLICE_DIR_FS
    d.mkdir(mode=0o700, exist_ok=True)
    if not os.path.ismount(d):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SLICE_DIR_BYTES},mode=0700",
                        SLICE_DIR_FS, str(d)], check=True, capture_output=True)


def mgmt_commands(sh: SliceHostPlan, intf: str) -> list[str]:
    """The controller's side of a slice host's management link: the
    controller's address on every management link; the slice host's address
    routed to its own link only, and packets from any other address on that
    link dropped (strict reverse path)."""
    return [f"ip addr add {CONTROLLER_ADDR}/32 dev {intf}",
            f"ip route add {sh.mgmt_addr}/32 dev {intf} src {CONTROLLER_ADDR}",
            f"sysctl -qw net.ipv4.conf.{intf}.rp_filter=1"]


class SppNet:
    """Bring up a topology file as a testbed; ``stop()`` removes all of it."""

    def __init__(self, topo, run_dir: Path | None = None, tunnel: str | None = None,
                 debug: bool = False, pcap: bool = False, slices: bool = True):
        self.spec = TopologySpec.load(topo)
        self.plan: Plan = plan(self.spec)
        self.run_dir = Path(run_dir or RUN / self.spec.name)
        self.forced_tunnel = tunnel
        self.debug, self.pcap, self.with_slices = debug, pcap, slices
        self.net = None
        self.root = None                 # a Mininet node in the root namespace
        self.ctl = None                  # the controller's namespace
        self.controller: subprocess.Popen | None = None
        self.procs: list[tuple[object, subprocess.Popen]] = []
        self.named: dict[str, subprocess.Popen] = {}      # by log name: HOST-PROGRAM.log
        self.logs: dict[str, threading.Thread] = {}       # ... and what writes the log
        self.mgmt_intf: dict[str, str] = {}               # slice host -> controller's side
        self.hide: tuple[Path, ...] = ()
        self.secrets: dict[str, str] = {}
        self.notes: list[str] = []
        self.url = f"http://{CONTROLLER_ADDR}:{CONTROLLER_PORT}"
        self.admin_token = secrets.token_hex(16)
        self.timings: dict[str, float] = {}

    # ---- lifecycle ----
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        t0 = time.monotonic()
        preflight()
        from .cleanup import cleanup_run_dir
        cleanup_run_dir(self.run_dir)            # what a crashed run left
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        # The controller's databases (spp.<node>.db, WAL files) and token.
        for stale in [*self.run_dir.glob("spp*.db*"), self.run_dir / "admin.token"]:
            stale.unlink(missing_ok=True)
        (self.run_dir / "pids").mkdir(exist_ok=True)
        features = kernel_features()
        self.tunnel_mode = tunnel_mode(self.forced_tunnel)
        self.netem = features["netem"]
        if not self.netem and self._wants_netem():
            self.notes.append("this kernel has no netem: link delay and loss in the topology "
                              "are NOT applied (bandwidth limits are)")
        # What protects the switches' packet budget, and what cannot (issue 9).
        self.notes += link_notes({n.name: [i.bw_kbps / 1000 for i in n.interfaces]
                                  for n in self.plan.nodes.values()})
        self.notes.append(f"end-host tunnels: {self.tunnel_mode} "
                          f"({'ip fou + ipip' if self.tunnel_mode == 'fou' else 'TUN + socat'})")
        try:
            self._build()
            self.timings["network"] = time.monotonic() - t0
            self._start_controller()
            self.timings["controller"] = time.monotonic() - t0
            if self.with_slices:
                log.info("slices: %s", ", ".join(sh.name for sh in self.plan.slice_hosts))
                self._create_slices()
                log.info("end hosts: tunnels (%s)", self.tunnel_mode)
                self._start_tunnels()
                log.info("slice hosts: configuring meta-routers, starting slow paths")
                self._start_routers()
            self.timings["ready"] = time.monotonic() - t0
        except Bmv2Error as e:
            self.stop()
            raise SppNetError(str(e)) from None
        except BaseException:
            self.stop()
            raise

    def _wants_netem(self) -> bool:
        return any(x.delay_ms or x.loss_pct for x in self.spec.links + self.spec.hosts)

    def _link_params(self, x: LinkParams) -> dict:
        # tbf rather than Mininet's default htb: same limit, no quantum warnings.
        params = {"bw": x.bw_mbps, "use_tbf": True}
        if self.netem:
            if x.delay_ms:
                params["delay"] = f"{x.delay_ms}ms"
            if x.loss_pct:
                params["loss"] = x.loss_pct
        return params

    def _build(self):
        from mininet.link import Link, TCLink
        from mininet.net import Mininet
        from mininet.node import Node

        from .nodes import Bmv2Switch, SppHost

        p = self.plan
        net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                      waitConnected=False)
        self.net = net
        # What no host may see: every run directory (secrets, admin token, database).
        hide = self.hide = tuple(dict.fromkeys([RUN, self.run_dir]))
        # Links to hosts name the other node first: Mininet runs `ip link add ...
        # netns PID` in the first node's shell, and a host sees only its own PIDs.
        log.info("network: %d SPP nodes, %d end hosts, %d slice hosts", len(p.nodes),
                 len(p.hosts), len(p.slice_hosts))
        for node in p.nodes.values():
            for name, g, t in ((node.lc, node.lc_grpc, node.lc_thrift),
                               *((x.name, x.grpc, x.thrift) for x in node.npes)):
                net.addSwitch(name, cls=Bmv2Switch, grpc_port=g, thrift_port=t,
                              grpc_host=SWITCH_CTL_ADDR, run_dir=self.run_dir, pcap=self.pcap,
                              debug=self.debug)
            for x in node.npes:          # NPE J on LC port J (topology.py)
                net.addLink(x.name, node.lc, port1=LC_NPE_PORT, port2=x.lc_port, cls=Link,
                            addr1=x.mac, addr2=x.lc_mac)
        for hs in self.spec.hosts:
            h = p.hosts[hs.name]
            node = p.nodes[h.node]
            iface = next(i for i in node.interfaces if i.neighbor == h.name)
            net.addHost(h.name, cls=SppHost, hide=hide, ip=f"{h.addr}/24", mac=h.mac,
                        defaultRoute=f"via {h.gateway}")
            net.addLink(node.lc, h.name, port1=iface.lc_port, cls=TCLink, addr1=iface.mac,
                        addr2=h.mac, **self._link_params(hs))
        for li, ls in enumerate(self.spec.links, start=1):
            a, b = p.nodes[ls.a], p.nodes[ls.b]
            ia = next(i for i in a.interfaces if i.peering and i.link == li)
            ib = next(i for i in b.interfaces if i.peering and i.link == li)
            net.addLink(a.lc, b.lc, port1=ia.lc_port, port2=ib.lc_port, cls=TCLink,
                        addr1=ia.mac, addr2=ib.mac, **self._link_params(ls))
        # The controller runs in a network namespace of its own ("sppctl"),
        # with a link to the root namespace for the switches' gRPC and Thrift
        # servers (Thrift listens on every address: not to be reachable from
        # a slice host), and a point-to-point management link to each slice
        # host, not a shared bridge: no slice host sees another's requests or
        # can answer for its address, and none can reach past the controller.
        self.ctl = Node("sppctl", inNamespace=True)
        self.root = Node("spproot", inNamespace=False)
        net.addLink(self.ctl, self.root, cls=Link, intfName1="sppctl-eth0",
                    intfName2="sppmctl0")
        mgmt = []
        for i, sh in enumerate(p.slice_hosts):
            node = p.nodes[sh.node]
            d = self.run_dir / sh.name
            slice_dir(d)
            net.addHost(sh.name, cls=SppHost, spp_dir=d, hide=hide, ip=f"{sh.data_addr}/24",
                        mac=sh.mac, defaultRoute=f"via {node.gpe_gateway}")
            net.addLink(node.lc, sh.name, port1=sh.lc_port, cls=Link, addr1=node.gpe_mac,
                        addr2=sh.mac)
            mgmt.append((sh, net.addLink(self.ctl, sh.name, cls=Link,
                                         intfName1=f"sppctl-mg{i}").intf1.name))
            self.mgmt_intf[sh.name] = mgmt[-1][1]
        net.build()
        # ip_no_pmtu_disc=3: "fragmentation needed" errors only for protocols that
        # verify them (TCP): a slice host's forged one naming the periodic push
        # socket would lock the path MTU towards any address at 552 bytes.
        ctl = ["ip link set lo up", f"ip addr add {CONTROLLER_CTL_ADDR}/{CTL_PLEN} dev sppctl-eth0",
               "sysctl -qw net.ipv4.ip_forward=0", "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
               "sysctl -qw net.ipv4.ip_no_pmtu_disc=3"]
        for sh, intf in mgmt:
            ctl += mgmt_commands(sh, intf)
        root = [f"ip addr add {SWITCH_CTL_ADDR}/{CTL_PLEN} dev sppmctl0",
                f"ip route add {CONTROLLER_ADDR}/32 via {CONTROLLER_CTL_ADDR}",
                "sysctl -qw net.ipv6.conf.sppmctl0.disable_ipv6=1"]
        for node, cmds in ((self.ctl, ctl), (self.root, root)):
            for cmd in cmds:
                out = node.cmd(cmd)
                if out.strip():
                    raise SppNetError(f"controller's namespace: {cmd}: {out.strip()}")
        for sh, _ in mgmt:
            net[sh.name].setIP(f"{sh.mgmt_addr}/{MGMT_PLEN}", intf=f"{sh.name}-eth1")
        log.info("network: starting %d switches", len(net.switches))
        net.start()
        self.testbed_path = self.run_dir / "testbed.json"
        self.testbed_path.write_text(json.dumps(testbed_dict(p), indent=2) + "\n")
        self.notes += write_picture(p, self.run_dir)     # run/<topo>/topology.svg (picture.py)

    def _start_controller(self):
        token_file = self.run_dir / "admin.token"
        write_private(token_file, self.admin_token + "\n")
        log.info("controller: starting on %s", self.url)
        log_file = self.run_dir / "controller.log"
        with open(self.run_dir / "controller.err", "w") as err:
            # In the controller's namespace (mnexec -a), its own session (-d).
            self.controller = self.ctl.popen(
                [sys.executable, "-m", "controller", "--testbed", str(self.testbed_path),
                 "--db", str(self.run_dir / "spp.db"), "--admin-token-file", str(token_file),
                 "--listen", f"{CONTROLLER_ADDR}:{CONTROLLER_PORT}", "--log-file", str(log_file),
                 # web view and /metrics: reachable from the root namespace only
                 "--operator", f"{CONTROLLER_CTL_ADDR}:{OPERATOR_PORT}",
                 "--operator-from", SWITCH_CTL_ADDR],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        (self.run_dir / "pids" / "controller.pid").write_text(f"{self.controller.pid}\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.controller.poll() is not None:
                err = (self.run_dir / "controller.err").read_text()[-2000:]
                raise SppNetError(f"the controller exited: {err}\n(see {log_file})")
            try:
                up = httpx.get(f"{self.url}/health", timeout=1).json()["result"]["switches"]
                if all(up.values()):
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise SppNetError(f"the controller did not come up in 60 s (see {log_file})")

    def admin(self, method: str, path: str, **kw):
        rep = httpx.request(method, self.url + path, headers={"X-SPP-Admin": self.admin_token},
                            timeout=30, **kw)
        body = rep.json()
        if rep.status_code != 200:
            raise SppNetError(f"controller: {body.get('error')}: {body.get('message')}")
        return body["result"]

    def _create_slices(self, slice_hosts: list[SliceHostPlan] | None = None):
        for sh in self.plan.slice_hosts if slice_hosts is None else slice_hosts:
            # The plan's meta-interface ports are held for the slice: no other
            # slice can take them, now or while its router restarts.
            res = self.admin("POST", "/admin/slices", json={
                "name": sh.slice, "node": sh.node, "mgmt_addr": sh.mgmt_addr,
                "data_addr": sh.data_addr, "lc_port": sh.lc_port, "mac": sh.mac,
                "ports": [{"ifn": m["ifn"], "port": m["port"]}
                          for m in sh.router["meta_ifs"]]})
            self.secrets[sh.name] = res["secret"]
            d = self.run_dir / sh.name
            (d / "controller").write_text(self.url + "\n")
            write_private(d / "secret", res["secret"] + "\n")
            (d / "router.json").write_text(json.dumps(sh.router, indent=2) + "\n")

    def popen(self, host, args: list[str], log_name: str) -> subprocess.Popen:
        """A long-running program in a Mininet host, logged in the run directory
        (at most LOG_BYTES of its output: the host is root over the program,
        and writes what it likes to its output)."""
        name = f"{host.name}-{log_name}"
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        p = host.popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT),
                       env=env)
        self.logs[name] = threading.Thread(target=log_capped, name=f"log {name}", daemon=True,
                                           args=(p.stdout, self.run_dir / name, LOG_BYTES))
        self.logs[name].start()
        self.procs.append((host, p))
        self.named[name] = p
        (self.run_dir / "pids" / f"{name}.pid").write_text(f"{p.pid}\n")
        return p

    def _start_tunnels(self, slice_name: str | None = None):
        for h in self.plan.hosts.values():
            host = self.net[h.name]
            for t in h.tunnels:
                if slice_name not in (None, t["slice"]):
                    continue
                tun = Tunnel(**{k: v for k, v in t.items() if k != "slice"})
                if self.tunnel_mode == "fou":
                    for cmd in tun.fou_commands():
                        host.cmd(cmd)
                    continue
                self.popen(host, tun.socat_command(), f"socat-{tun.dev}.log")
                deadline = time.monotonic() + 10
                while f"{tun.dev}:" not in host.cmd(f"ip -o link show dev {tun.dev}"):
                    if time.monotonic() > deadline:
                        raise SppNetError(f"{h.name}: socat did not create {tun.dev}")
                    time.sleep(0.05)
                for cmd in tun.tun_commands():
                    host.cmd(cmd)

    def _start_routers(self, slice_hosts: list[SliceHostPlan] | None = None):
        """Each slice host configures its meta-router over REST, then runs its slow path."""
        starts = []
        for sh in self.plan.slice_hosts if slice_hosts is None else slice_hosts:
            p = self.popen(self.net[sh.name], [sys.executable, "-m", "slices.samples.ipv4_router"],
                           "router.log")
            starts.append((sh, p))
        for sh, p in starts:
            try:
                rc = p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                rc = None
            if rc != 0:
                logf = self.run_dir / f"{sh.name}-router.log"
                self.logs[logf.name].join(timeout=5)        # all of its output
                raise SppNetError(f"{sh.name}: ipv4_router failed (rc {rc}): "
                                  f"{logf.read_text()[-1500:] if logf.exists() else ''}")
            self.popen(self.net[sh.name], [sys.executable, "-m", "slices.samples.slowpath"],
                       "slowpath.log")

    # ---- slices while the testbed runs ----
    def add_slice(self, name: str, nodes: list[str] | None = None, overlay: str = "",
                  mi_bw_kbps: int = 5_000) -> list[SliceHostPlan]:
        """A new slice on ``nodes`` (default: every node), while the testbed
        runs: its slot, overlay and addresses from the plan (topology.add_slice),
        its hosts added to the running network as sandboxed as the others (own
        management link, private /var/run/spp with its secret), the slice
        created on each node through the admin API, the end hosts' tunnels,
        and its meta-routers configured and their slow paths started. On any
        failure, whatever was added is removed again (del_slice)."""
        taken = [f"{n}{name}" for n in nodes or self.plan.nodes if f"{n}{name}" in self.net]
        if taken:
            raise SppNetError(f"slice {name}: {', '.join(taken)} already exists")
        new = add_slice(self.plan, SliceSpec(name=name, overlay=overlay, mi_bw_kbps=mi_bw_kbps,
                                             nodes=list(nodes) if nodes else None))
        log.info("slice %s: adding %s", name, ", ".join(sh.name for sh in new))
        try:
            for sh in new:
                self._add_slice_host(sh)
            self._create_slices(new)
            self._start_tunnels(name)
            self._start_routers(new)
        except BaseException:
            self.del_slice(name)
            raise
        return new

    def _add_slice_host(self, sh: SliceHostPlan):
        from mininet.link import Link

        from .nodes import SppHost
        node = self.plan.nodes[sh.node]
        d = self.run_dir / sh.name
        slice_dir(d)
        host = self.net.addHost(sh.name, cls=SppHost, spp_dir=d, hide=self.hide,
                                ip=f"{sh.data_addr}/24", mac=sh.mac,
                                defaultRoute=f"via {node.gpe_gateway}")
        lc = self.net[node.lc]
        link = self.net.addLink(lc, host, port1=sh.lc_port, cls=Link, addr1=node.gpe_mac,
                                addr2=sh.mac)
        used = set(self.mgmt_intf.values())
        intf = next(f"sppctl-mg{i}" for i in range(len(used) + 1) if f"sppctl-mg{i}" not in used)
        self.net.addLink(self.ctl, host, cls=Link, intfName1=intf)
        self.mgmt_intf[sh.name] = intf
        host.configDefault()                 # as Mininet's build does: data address, route
        host.cmd("ip link set lo up")
        for cmd in mgmt_commands(sh, intf):
            out = self.ctl.cmd(cmd)
            if out.strip():
                raise SppNetError(f"controller's namespace: {cmd}: {out.strip()}")
        host.setIP(f"{sh.mgmt_addr}/{MGMT_PLEN}", intf=f"{sh.name}-eth1")
        lc.attach_port(link.intf1.name, sh.lc_port)

    def del_slice(self, name: str):
        """Remove a slice while the testbed runs: its programs, then everything
        it holds on each node through the admin API (fastpaths, meta-interfaces,
        endpoints, filters, the LC's entries for it), its hosts with their
        links and LC ports, the end hosts' tunnels for it, and its directories."""
        shs = self.plan.slice_hosts_of(name)
        if not shs:
            raise SppNetError(f"no slice {name!r}")
        hosts = {sh.name for sh in shs}
        devs = {(h.name, t["dev"], t["local_port"]) for h in self.plan.hosts.values()
                for t in h.tunnels if t["slice"] == name}
        for key, p in list(self.named.items()):
            host = key.split("-", 1)[0]
            if host in hosts or any(key == f"{h}-socat-{dev}.log" for h, dev, _ in devs):
                terminate(p)
                self.procs = [(n, q) for n, q in self.procs if q is not p]
                del self.named[key]
                (self.run_dir / "pids" / f"{key}.pid").unlink(missing_ok=True)
        errors = []
        listed = {(r["name"], r["node"]) for r in self.admin("GET", "/admin/slices")}
        for sh in shs:
            if (name, sh.node) in listed:
                try:
                    self.admin("DELETE", f"/admin/slices/{sh.node}/{name}")
                except (SppNetError, httpx.HTTPError) as e:
                    errors.append(f"{sh.name}: {e}")
            self.secrets.pop(sh.name, None)
            if sh.name in self.net:
                host, lc = self.net[sh.name], self.net[self.plan.nodes[sh.node].lc]
                if lc.intfs.get(sh.lc_port) is not None:
                    try:
                        lc.detach_port(sh.lc_port)
                    except Exception as e:    # noqa: BLE001 (not attached: add_slice failed)
                        log.info("%s: port %d not detached: %s", lc.name, sh.lc_port, e)
                for other in (lc, self.ctl):
                    self.net.delLinkBetween(other, host, allLinks=True)
                self.net.delHost(host)
            self.mgmt_intf.pop(sh.name, None)
            unmount_slice_dirs(self.run_dir / sh.name)
            shutil.rmtree(self.run_dir / sh.name, ignore_errors=True)
            for f in self.run_dir.glob(f"{sh.name}-*.log"):
                f.unlink()
        if self.tunnel_mode == "fou":
            for h, dev, port in devs:
                self.net[h].cmd(f"ip link del {dev}; ip fou del port {port}")
        remove_slice(self.plan, name)
        if errors:
            raise SppNetError("; ".join(errors))

    def router_state(self, slice_host: str) -> dict:
        """The slice host's router.state.json, written by its program. The
        slice host owns the file: a symlink (to /dev/zero, to another slice's
        directory), a FIFO or anything but a regular file is refused, not
        followed or waited for (the CLI's `filters` and `stats` read it)."""
        path = self.run_dir / slice_host / "router.state.json"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise SppNetError(f"{slice_host}: cannot read {path.name}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SppNetError(f"{slice_host}: {path.name} is not a regular file")
            return json.loads(f.read(SLICE_DIR_BYTES))

    def slice_hosts(self, slice_name: str | None = None):
        return [sh for sh in self.plan.slice_hosts if slice_name in (None, sh.slice)]

    def stop(self):
        for _host, p in reversed(self.procs):
            terminate(p)                 # its process group: nsenter and the program
        self.procs.clear()
        if self.controller is not None:
            terminate(self.controller, timeout=10)
            self.controller = None
        if self.net is not None:
            try:
                self.net.stop()
            finally:
                self.net = None
        for node in (self.ctl, self.root):
            if node is not None:
                node.terminate()
        self.ctl = self.root = None
        from .cleanup import cleanup_run_dir
        cleanup_run_dir(self.run_dir)
