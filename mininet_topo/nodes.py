"""Mininet node classes of the SPP testbed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mininet.node import Host, Switch

from .bmv2 import SwitchSpec, wait_ready
from .netns import terminate


class Bmv2Switch(Switch):
    """A BMv2 ``simple_switch_grpc`` as a Mininet switch (root namespace).

    Its BMv2 port numbers are the Mininet port numbers of its interfaces.
    The console log goes to ``<run_dir>/<name>.log`` (and pcaps under
    ``<run_dir>/pcap/`` with ``pcap=True``); start() fails with the log's last
    lines when the switch does not come up.
    """

    def __init__(self, name, grpc_port: int, thrift_port: int, run_dir: Path,
                 device_id: int = 0, pcap: bool = False, debug: bool = False, **params):
        params.setdefault("dpid", f"{grpc_port:016x}")
        Switch.__init__(self, name, **params)
        self.grpc_port = grpc_port
        self.thrift_port = thrift_port
        self.run_dir = Path(run_dir)
        self.device_id = device_id
        self.pcap = pcap
        self.debug = debug
        self.proc: subprocess.Popen | None = None

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def spec(self) -> SwitchSpec:
        ports = {self.ports[i]: i.name for i in self.intfList() if i.name != "lo"}
        pcap_dir = self.run_dir / "pcap" if self.pcap else None
        if pcap_dir:
            pcap_dir.mkdir(parents=True, exist_ok=True)
        return SwitchSpec(self.name, ports, self.grpc_port, self.thrift_port, self.device_id,
                          log_file=self.run_dir / f"{self.name}.log", pcap_dir=pcap_dir,
                          debug=self.debug)

    def start(self, controllers):
        spec = self.spec()
        with open(spec.log_file, "w") as log:
            self.proc = subprocess.Popen(spec.command(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        (self.run_dir / "pids").mkdir(exist_ok=True)
        (self.run_dir / "pids" / f"{self.name}.pid").write_text(f"{self.proc.pid}\n")
        wait_ready(spec, lambda: self.proc.poll() is None)

    def stop(self, deleteIntfs=True):
        if self.proc is not None:
            terminate(self.proc)
            (self.run_dir / "pids" / f"{self.name}.pid").unlink(missing_ok=True)
            self.proc = None
        Switch.stop(self, deleteIntfs)


class SppHost(Host):
    """A Mininet host without IPv6 chatter. Slice hosts also get a private
    /var/run/spp (bind-mounted from the run directory, so the testbed can
    hand them their secret and configuration)."""

    def __init__(self, name, spp_dir: Path | None = None, **params):
        if spp_dir is not None:
            Path(spp_dir).mkdir(parents=True, exist_ok=True)
            params["privateDirs"] = [("/var/run/spp", str(spp_dir))]
        Host.__init__(self, name, **params)
        self.spp_dir = spp_dir

    def config(self, **params):
        r = Host.config(self, **params)
        for opt in ("all", "default"):
            self.cmd(f"sysctl -qw net.ipv6.conf.{opt}.disable_ipv6=1")
        return r
