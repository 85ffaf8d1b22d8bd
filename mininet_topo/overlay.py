"""End hosts' tunnels into meta-interfaces: real Linux IP-in-UDP.

A meta-interface is a UDP tunnel carrying IPv4 datagrams. An end host gets
one tunnel device per slice it talks to, with its overlay address on it, so
that ping, iperf3 and traceroute work unchanged over the overlay. Two ways,
chosen at start-up by what the kernel has:

* ``fou``: ``ip fou`` + an ``ipip`` device with FOU encapsulation, all in
  the kernel (any Ubuntu Mininet VM);
* ``tun``: a TUN device and socat relaying it to a connected UDP socket
  (kernels without fou/ipip, like the small VM kernel these tests run on).

Link delay and loss need netem; ``kernel_features()`` says whether it is
there, so the testbed can say clearly what it could not apply.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from functools import lru_cache

TUNNEL_MTU = 1400          # leaves room for outer IPv4 + UDP (+ meta-net) on 1500-byte links


def _probe(*cmds: list[str]) -> bool:
    """Run commands in a scratch namespace; True if all succeed."""
    ns = f"spp-probe-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        for cmd in cmds:
            if subprocess.run(["ip", "netns", "exec", ns, *cmd],
                              capture_output=True).returncode != 0:
                return False
        return True
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@lru_cache(maxsize=1)
def kernel_features() -> dict[str, bool]:
    """What this kernel offers the testbed (probed once, needs root)."""
    return {
        "fou": _probe(["ip", "fou", "add", "port", "5555", "ipproto", "4"],
                      ["ip", "link", "add", "t0", "type", "ipip", "remote", "10.0.0.1",
                       "local", "10.0.0.2", "encap", "fou", "encap-sport", "5555",
                       "encap-dport", "5555"]),
        "netem": _probe(["ip", "link", "set", "lo", "up"],
                        ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]),
    }


def tunnel_mode(forced: str | None = None) -> str:
    if forced:
        if forced == "fou" and not kernel_features()["fou"]:
            raise RuntimeError("tunnel mode 'fou' asked for, but this kernel has no fou/ipip")
        return forced
    return "fou" if kernel_features()["fou"] else "tun"


@dataclass
class Tunnel:
    """One end host's tunnel into one meta-interface."""

    dev: str                 # tunnel device name on the host (ovl0, ovl1, ...)
    overlay_addr: str        # the host's overlay address
    overlay_prefix: str      # routed through the tunnel
    local_addr: str          # host's substrate address
    local_port: int          # host's UDP port (the meta-router's next hop for it)
    remote_addr: str         # meta-interface endpoint
    remote_port: int

    def fou_commands(self) -> list[str]:
        return [
            f"ip fou add port {self.local_port} ipproto 4",
            f"ip link add {self.dev} type ipip remote {self.remote_addr} local {self.local_addr}"
            f" encap fou encap-sport {self.local_port} encap-dport {self.remote_port}",
            f"ip link set {self.dev} mtu {TUNNEL_MTU} up",
            f"ip addr add {self.overlay_addr}/32 dev {self.dev}",
            f"ip route add {self.overlay_prefix} dev {self.dev} src {self.overlay_addr}",
        ]

    def socat_command(self) -> list[str]:
        return ["socat", "-b", "65535",
                f"TUN:{self.overlay_addr}/32,tun-type=tun,tun-name={self.dev},iff-no-pi,iff-up",
                f"UDP:{self.remote_addr}:{self.remote_port},bind={self.local_addr}:"
                f"{self.local_port}"]

    def tun_commands(self) -> list[str]:
        """Run once socat has made the device."""
        return [f"ip link set {self.dev} mtu {TUNNEL_MTU}",
                f"ip route add {self.overlay_prefix} dev {self.dev} src {self.overlay_addr}"]
