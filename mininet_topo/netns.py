"""Network namespaces for tests and benchmarks: created, used, and removed
with every process and link in them, also when something fails."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def terminate(proc: subprocess.Popen, timeout: float = 5.0):
    """Stop a process started with start_new_session=True, and its children:
    SIGTERM to its process group, SIGKILL if it is still there after ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class InNamespace:
    """A set-up built in the namespace ``self.ns`` (a context manager):
    entering creates the namespace and runs ``_build()``; if that fails,
    ``close()`` removes everything again before the error goes on; leaving
    calls ``close()`` (by default: the namespace, with its processes and links)."""

    ns: Namespace

    def _build(self):
        raise NotImplementedError

    def __enter__(self):
        self.ns.__enter__()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.ns.close()


class Namespace:
    """A network namespace that is deleted, with its processes, on exit."""

    def __init__(self, name: str):
        self.name = name
        self.procs: list[subprocess.Popen] = []
        self.root_links: list[str] = []

    def __enter__(self):
        sh("ip", "netns", "add", self.name)
        self.run("ip", "link", "set", "lo", "up")
        # No IPv6 chatter (router solicitations) on test ports.
        self.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        self.run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        return self

    def run(self, *args, check=True):
        return sh("ip", "netns", "exec", self.name, *args, check=check)

    def popen(self, args, log: Path, env=None):
        with open(log, "w") as out:
            p = subprocess.Popen(["ip", "netns", "exec", self.name, *args], stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.procs.append(p)
        return p

    def probe(self, port: int, host: str = "127.0.0.1") -> bool:
        return self.run("bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}",
                        check=False).returncode == 0

    def veth(self, name: str, peer: str):
        """A veth pair inside the namespace, both ends up."""
        self.run("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        for intf in (name, peer):
            self.run("ip", "link", "set", intf, "up")

    def link_to_root(self, root_if: str, ns_if: str, root_addr: str, ns_addr: str):
        """A veth pair from the root namespace into this one, with addresses
        (``a.b.c.d/len``): how processes outside reach servers inside."""
        sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", ns_if)
        self.root_links.append(root_if)
        sh("ip", "link", "set", ns_if, "netns", self.name)
        sh("ip", "addr", "add", root_addr, "dev", root_if)
        sh("ip", "link", "set", root_if, "up")
        self.run("ip", "addr", "add", ns_addr, "dev", ns_if)
        self.run("ip", "link", "set", ns_if, "up")

    def mac(self, intf: str) -> str:
        return self.run("cat", f"/sys/class/net/{intf}/address").stdout.strip()

    def close(self):
        for p in self.procs:
            terminate(p)
        for link in self.root_links:
            sh("ip", "link", "del", link, check=False)
        sh("ip", "netns", "del", self.name, check=False)

    def __exit__(self, *exc):
        self.close()
