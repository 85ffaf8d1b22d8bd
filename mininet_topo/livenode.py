"""A live SPP node without Mininet: real BMv2 switches in a private namespace,
for tests and benchmarks.

    LC port 0 -- ext0t   end-host side of interface 1 (192.168.1.1/24)
    LC port 1 -- NPE port 0
    LC port 2 -- sliceA  slice host A (10.0.2.10)
    LC port 3 -- sliceB  slice host B (10.0.2.11)
    LC port 4 -- ext1t   peering interface 2 (192.168.2.1, peer 192.168.2.2)

The switches' gRPC and Thrift servers listen on the namespace end of a
management veth (10.250.N.2), which the controller, in the test process,
reaches from the root namespace (10.250.N.1). Packets are injected and
captured on the *t ends with scapy, run inside the namespace.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from controller.testbed import Interface, Node, Npe, Route, Switch, Testbed
from mininet_topo.bmv2 import SwitchSpec, wait_ready
from mininet_topo.netns import InNamespace, Namespace, terminate

ROOT = Path(__file__).resolve().parent.parent
LC_IF1_MAC, LC_IF2_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
LC_NPE_MAC, NPE_MAC = "02:00:00:00:01:01", "02:00:00:00:01:02"
GPE_MAC = "02:00:00:00:02:01"
IF1, IF2, PEER2 = "192.168.1.1", "192.168.2.1", "192.168.2.2"
NPE_ADDR, GW = "10.0.1.2", "10.0.2.1"
SLICE_A, SLICE_B = "10.0.2.10", "10.0.2.11"
END_HOST = "192.168.1.100"


class LiveNode(InNamespace):
    """Start with ``with LiveNode(tmpdir) as node:``; ``node.testbed`` describes it."""

    def __init__(self, workdir: Path, tag: str | None = None):
        self.workdir = Path(workdir)
        self.tag = tag or str(os.getpid() % 200 + 20)
        self.ns = Namespace(f"spp-test-{self.tag}")
        self.mgmt_root = f"10.250.{self.tag}.1"
        self.mgmt_ns = f"10.250.{self.tag}.2"
        self.procs = {}

    def spec(self, name, ports, grpc_port, thrift_port):
        return SwitchSpec(name, ports, grpc_port, thrift_port,
                          log_file=self.workdir / f"{name}.log",
                          extra_args=[], debug=False)

    def _build(self):
        ns = self.ns
        ns.link_to_root(f"sppm{self.tag}", "mgmt0", f"{self.mgmt_root}/30", f"{self.mgmt_ns}/30")
        for a, b in (("lc0", "ext0t"), ("lc1", "npe0"), ("lc2", "sliceA"), ("lc3", "sliceB"),
                     ("lc4", "ext1t")):
            ns.veth(a, b)
        self.specs = {
            "lc": self.spec("lc", {0: "lc0", 1: "lc1", 2: "lc2", 3: "lc3", 4: "lc4"}, 9559, 9090),
            "npe": self.spec("npe", {0: "npe0"}, 9560, 9091),
        }
        for name in self.specs:
            self.start_switch(name)
        ext0_mac, ext1_mac = ns.mac("ext0t"), ns.mac("ext1t")
        self.slice_macs = {"A": ns.mac("sliceA"), "B": ns.mac("sliceB")}
        node = Node(
            name="node1",
            lc=Switch("lc", f"{self.mgmt_ns}:9559", 9090),
            npes=[Npe("npe", f"{self.mgmt_ns}:9560", 9091, addr=NPE_ADDR, port=0, mac=NPE_MAC,
                      lc_port=1, lc_mac=LC_NPE_MAC)],
            interfaces=[Interface(1, IF1, 0, LC_IF1_MAC, 100_000),
                        Interface(2, IF2, 4, LC_IF2_MAC, 50_000, peering=True, peer=PEER2)],
            routes=[Route("192.168.1.0/24", 0, ext0_mac), Route("192.168.2.2/32", 4, ext1_mac)],
            gpe_gateway=GW, gpe_mac=GPE_MAC)
        self.testbed = Testbed("test", [node])
        self.testbed_path = self.workdir / "testbed.json"
        self.testbed.save(self.testbed_path)

    def start_switch(self, name):
        spec = self.specs[name]
        cmd = spec.command()
        # gRPC on the management address, so the root namespace reaches it.
        cmd[cmd.index("--grpc-server-addr") + 1] = f"{self.mgmt_ns}:{spec.grpc_port}"
        proc = self.ns.popen(cmd, spec.log_file)
        self.procs[name] = proc
        wait_ready(spec, lambda: proc.poll() is None,
                   probe=lambda port: self.ns.probe(port, self.mgmt_ns))

    def stop_switch(self, name):
        terminate(self.procs.pop(name))

    def scapy(self, code: str, timeout: float = 30) -> str:
        """Run scapy code inside the namespace; returns its stdout."""
        prog = "from scapy.all import *\nconf.verb = 0\n" + textwrap.dedent(code)
        out = self.ns.run("env", f"PYTHONPATH={ROOT}",
                          sys.executable, "-c", prog, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"scapy in namespace failed:\n{out.stderr}")
        return out.stdout

    def send_and_capture(self, send_if: str, frames: list[bytes], capture_if: str,
                         wait: float = 1.0) -> list[bytes]:
        """Send raw frames on one *t end, return what arrives on another."""
        code = f"""
            import json, time
            frames = [bytes.fromhex(h) for h in {json.dumps([f.hex() for f in frames])}]
            sniffer = AsyncSniffer(iface={capture_if!r}, store=True)
            sniffer.start(); time.sleep(0.3)
            for f in frames:
                sendp(Raw(f), iface={send_if!r})
            time.sleep({wait})
            got = sniffer.stop()
            print(json.dumps([bytes(p).hex() for p in got]))
        """
        return [bytes.fromhex(h) for h in json.loads(self.scapy(code).strip().splitlines()[-1])]

