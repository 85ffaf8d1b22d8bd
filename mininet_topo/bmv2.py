"""Starting and checking BMv2 ``simple_switch_grpc`` processes.

Shared by the PTF runner (switches in a private namespace) and the Mininet
switch class. Importing this module needs neither Mininet nor root.
"""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

BMV2 = "simple_switch_grpc"

INSTALL_HINT = (
    "BMv2's simple_switch_grpc (built with PI/P4Runtime and Thrift) is not on PATH.\n"
    "It is not packaged: build p4lang/PI and p4lang/behavioral-model, BMv2 with PI and "
    "Thrift support, and install them into /usr/local.\n"
    "README.md, Prerequisites, gives the steps."
)


class Bmv2Error(Exception):
    """A switch is missing, did not start, or died."""


def find_bmv2() -> str:
    """Path of simple_switch_grpc, or Bmv2Error with what to install."""
    path = shutil.which(BMV2)
    if path is None:
        raise Bmv2Error(INSTALL_HINT)
    return path


def bmv2_version() -> str:
    import subprocess
    try:
        out = subprocess.run([find_bmv2(), "--version"], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or out.stderr.strip()
    except (Bmv2Error, OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class SwitchSpec:
    """How to start one switch.

    ``ports`` maps BMv2 port numbers to interface names. ``log_file`` gets
    the switch's console log: warnings and errors by default, BMv2's
    per-packet trace with ``debug`` (slow: for debugging P4), nothing but
    start-up lines with ``quiet`` (no logger at all: for measuring).
    """

    name: str
    ports: dict[int, str]
    grpc_port: int
    thrift_port: int
    device_id: int = 0
    log_file: Path | None = None
    pcap_dir: Path | None = None
    debug: bool = False
    quiet: bool = False
    extra_args: list[str] = field(default_factory=list)
    grpc_host: str = "127.0.0.1"        # gRPC listens here (Thrift on every address)

    @property
    def grpc_addr(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    def command(self) -> list[str]:
        cmd = [find_bmv2(), "--device-id", str(self.device_id),
               "--thrift-port", str(self.thrift_port), "--no-p4"]
        for num, intf in sorted(self.ports.items()):
            cmd += ["-i", f"{num}@{intf}"]
        if self.debug:
            cmd += ["--log-console", "--log-level", "debug"]
        elif self.quiet:
            # No logger is not enough: BMv2's default level (trace) still
            # formats every message for its null sink.
            cmd += ["--log-level", "off"]
        else:
            cmd += ["--log-console", "--log-level", "warn"]
        if self.pcap_dir:
            cmd += ["--pcap", str(self.pcap_dir)]
        cmd += self.extra_args
        cmd += ["--", "--grpc-server-addr", self.grpc_addr]
        return cmd


def tail(path: Path | None, lines: int = 15) -> str:
    if not path or not Path(path).exists():
        return "(no log)"
    text = Path(path).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(empty log)"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_ready(spec: SwitchSpec, alive, timeout: float = 20.0, probe=None):
    """Wait until the switch answers on its gRPC and Thrift ports.

    ``alive()`` says whether the process still runs; ``probe(port)`` checks a
    port (default: on the gRPC address, from here). Raises Bmv2Error with the
    last lines of the switch's log.
    """
    probe = probe or (lambda port: port_open(port, spec.grpc_host))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise Bmv2Error(f"{spec.name}: simple_switch_grpc exited at start-up. "
                            f"Last lines of {spec.log_file}:\n{tail(spec.log_file)}")
        if probe(spec.grpc_port) and probe(spec.thrift_port):
            return
        time.sleep(0.1)
    raise Bmv2Error(f"{spec.name}: simple_switch_grpc not answering on ports "
                    f"{spec.grpc_port}/{spec.thrift_port} after {timeout:.0f}s. "
                    f"Last lines of {spec.log_file}:\n{tail(spec.log_file)}")
