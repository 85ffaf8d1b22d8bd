"""Mininet node classes of the SPP testbed."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from mininet.node import Host, Switch

from .bmv2 import SwitchSpec, wait_ready
from .netns import terminate

PROJECT = Path(__file__).resolve().parent.parent


class Bmv2Switch(Switch):
    """A BMv2 ``simple_switch_grpc`` as a Mininet switch (root namespace).

    Its BMv2 port numbers are the Mininet port numbers of its interfaces.
    The console log goes to ``<run_dir>/<name>.log`` (and pcaps under
    ``<run_dir>/pcap/`` with ``pcap=True``); start() fails with the log's last
    lines when the switch does not come up.
    """

    def __init__(self, name, grpc_port: int, thrift_port: int, run_dir: Path,
                 device_id: int = 0, pcap: bool = False, debug: bool = False,
                 grpc_host: str = "127.0.0.1", **params):
        params.setdefault("dpid", f"{grpc_port:016x}")
        Switch.__init__(self, name, **params)
        self.grpc_port = grpc_port
        self.thrift_port = thrift_port
        self.grpc_host = grpc_host
        self.run_dir = Path(run_dir)
        self.device_id = device_id
        self.pcap = pcap
        self.debug = debug
        self.proc: subprocess.Popen | None = None

    @property
    def grpc_addr(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    def spec(self) -> SwitchSpec:
        ports = {self.ports[i]: i.name for i in self.intfList() if i.name != "lo"}
        pcap_dir = self.run_dir / "pcap" if self.pcap else None
        if pcap_dir:
            pcap_dir.mkdir(parents=True, exist_ok=True)
        return SwitchSpec(self.name, ports, self.grpc_port, self.thrift_port, self.device_id,
                          log_file=self.run_dir / f"{self.name}.log", pcap_dir=pcap_dir,
                          debug=self.debug, grpc_host=self.grpc_host)

    def start(self, controllers):
        spec = self.spec()
        with open(spec.log_file, "w") as log:
            self.proc = subprocess.Popen(spec.command(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        (self.run_dir / "pids").mkdir(exist_ok=True)
        (self.run_dir / "pids" / f"{self.name}.pid").write_text(f"{self.proc.pid}\n")
        wait_ready(spec, lambda: self.proc.poll() is None)

    def _runtime(self, call):
        """One call to the running switch's runtime API (Thrift, which listens
        on every address of the root namespace)."""
        from bm_runtime.standard import Standard
        from thrift.protocol import TBinaryProtocol, TMultiplexedProtocol
        from thrift.transport import TSocket, TTransport
        sock = TSocket.TSocket("127.0.0.1", self.thrift_port)
        sock.setTimeout(5000)
        transport = TTransport.TBufferedTransport(sock)
        client = Standard.Client(TMultiplexedProtocol.TMultiplexedProtocol(
            TBinaryProtocol.TBinaryProtocol(transport), "standard"))
        transport.open()
        try:
            return call(client)
        finally:
            transport.close()

    def attach_port(self, intf_name: str, port: int):
        """Give the running switch a new interface as BMv2 port ``port``."""
        self._runtime(lambda c: c.bm_dev_mgr_add_port(intf_name, port, ""))

    def detach_port(self, port: int):
        self._runtime(lambda c: c.bm_dev_mgr_remove_port(port))

    def stop(self, deleteIntfs=True):
        if self.proc is not None:
            terminate(self.proc)
            (self.run_dir / "pids" / f"{self.name}.pid").unlink(missing_ok=True)
            self.proc = None
        Switch.stop(self, deleteIntfs)


# What root on a host keeps (its capability bounding set): enough to run and
# configure its own network and processes. Gone, among others: SYS_ADMIN (mount,
# umount, setns: undoing the mounts below), DAC_READ_SEARCH (open_by_handle_at
# reaches files by inode, past any mount), SYS_RAWIO, MKNOD, SYS_MODULE. Kept:
# SYS_PTRACE, which reaches only the host's own processes.
HOST_CAPS = ("chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid",
             "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock",
             "sys_chroot", "sys_ptrace", "sys_nice", "sys_resource", "audit_write")
DROP_CAPS = ["setpriv", "--bounding-set=-all," + ",".join(f"+{c}" for c in HOST_CAPS),
             "--inh-caps=-all", "--"]

# Runs as PID 1 of the host's new PID namespace, in its new mount namespace
# (where unshare --mount-proc has mounted a /proc of that PID namespace), as
# full root, before the host's shell: $SBX_PROJECT is this project, $SBX_SPP_DIR
# the slice host's directory (or empty), $SBX_HIDE the directories to hide
# (newline-separated).
SANDBOX = r"""
set -e
cwd=$PWD
# Every file system read-only here, except /proc (its net sysctls stay writable).
awk '$5 !~ "^/proc" {print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
    mount -o remount,bind,ro "$(printf '%b' "$m")" 2>/dev/null || true
done
# Private, writable /run (with /var/run/spp), /tmp, /var/tmp and root's home;
# the project (read-only) and the slice host's directory stay in view
# wherever they are (descriptors 3 and 4 hold them across the mounts).
exec 3<"$SBX_PROJECT"
if [ -n "$SBX_SPP_DIR" ]; then exec 4<"$SBX_SPP_DIR"; fi
mount -t tmpfs -o mode=0755,size=16m spp-run /run
mount -t tmpfs -o mode=1777,size=256m spp-tmp /tmp
if [ -d /var/tmp ]; then mount -t tmpfs -o mode=1777,size=64m spp-tmp /var/tmp; fi
if [ -d /root ]; then mount -t tmpfs -o mode=0700,size=64m spp-home /root; fi
if [ ! -d "$SBX_PROJECT" ]; then
    mkdir -p "$SBX_PROJECT"; mount --no-canonicalize --bind /proc/self/fd/3 "$SBX_PROJECT"
fi
mkdir -p /run/spp
if [ -n "$SBX_SPP_DIR" ]; then
    mount --no-canonicalize --bind /proc/self/fd/4 /run/spp
    mount -o remount,bind,rw /run/spp; exec 4<&-
fi
exec 3<&-
# The run directories (secrets, admin token, database, logs): an empty tmpfs.
printf '%s\n' "$SBX_HIDE" | while read -r d; do
    if [ -n "$d" ] && [ -d "$d" ]; then mount -t tmpfs -o ro,mode=0755,size=4k spp-hidden "$d"; fi
done
# A /dev with no disks: the character devices programs use, a private devpts.
mount -t tmpfs -o mode=0755,size=64k spp-dev /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
mkdir /dev/net /dev/pts /dev/shm; mknod -m 666 /dev/net/tun c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,size=64m spp-shm /dev/shm
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
# Kernel settings read-only, but the network namespace's own.
mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys
mount --bind /proc/sys/net /proc/sys/net; mount -o remount,bind,rw /proc/sys/net
if [ -e /proc/sysrq-trigger ]; then
    mount --bind /proc/sysrq-trigger /proc/sysrq-trigger
    mount -o remount,bind,ro /proc/sysrq-trigger
fi
cd "$cwd" 2>/dev/null || cd /
unset SBX_PROJECT SBX_SPP_DIR SBX_HIDE
exec "$@"
"""


def sandbox_command(spp_dir: Path | None, hide: list[Path]) -> list[str]:
    """The command that sets up a host's namespaces and runs what follows it there."""
    env = ["env", f"SBX_PROJECT={PROJECT}", f"SBX_SPP_DIR={spp_dir or ''}",
           "SBX_HIDE=" + "\n".join(str(d) for d in hide)]
    return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--",
            *env, "sh", "-c", SANDBOX, "spp-sandbox", *DROP_CAPS]


@lru_cache(maxsize=1)
def check_sandbox():
    """Set a sandbox up once, outside Mininet: a host whose set-up fails would
    leave Mininet waiting for its shell forever."""
    p = subprocess.run(sandbox_command(None, []) + ["true"], capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise RuntimeError("cannot set up a host's namespaces (unshare, mount, setpriv from "
                           f"util-linux): {p.stderr.strip()[-500:]}")


class SppHost(Host):
    """A Mininet host that other hosts cannot look into, and that cannot look
    into them or into the testbed.

    Besides its network namespace (Mininet's), each host has its own mount,
    PID and IPC namespaces: its /proc shows only its own processes; every file
    system is read-only; /run, /tmp, /var/tmp and /root are private; the run
    directories (``hide``: secrets, admin token, database) are covered by an
    empty tmpfs; /dev has no disks; and its root keeps only the capabilities
    in HOST_CAPS. A slice host (``spp_dir``) sees its own directory of the run
    directory, and only that, as /var/run/spp: the testbed hands it its secret
    and configuration there. Programs the testbed starts in a host (popen)
    enter the same namespaces with the same capabilities.

    Mininet runs ``ip link add ... netns PID`` in the shell of a link's first
    node, and a host sees only its own PIDs: add links to a host with the
    other node first. ``xterm`` (Mininet's X11 tunnel enters PID 1's
    namespaces) does not reach the display from a host."""

    def __init__(self, name, spp_dir: Path | None = None, hide: tuple[Path, ...] = (),
                 **params):
        self.spp_dir = Path(spp_dir) if spp_dir is not None else None
        if self.spp_dir is not None:
            self.spp_dir.mkdir(parents=True, exist_ok=True)
        self.hide = [Path(d) for d in hide]
        self.init_pid: int | None = None
        check_sandbox()
        Host.__init__(self, name, **params)

    def _popen(self, cmd, **params):
        # Node.startShell runs [mnexec, opts, env, PS1=..., bash, ...]: the
        # sandbox goes between mnexec (new network namespace) and the shell.
        if self.shell is None and cmd[:1] == ["mnexec"] and f"mininet:{self.name}" in cmd:
            cmd = cmd[:2] + sandbox_command(self.spp_dir, self.hide) + cmd[2:]
        return Host._popen(self, cmd, **params)

    def startShell(self, mnopts=None):
        Host.startShell(self, mnopts)
        # unshare forked the shell: it is PID 1 of the host's PID namespace.
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        self.init_pid = int(children[0])

    def popen(self, *args, **kwargs):
        """A process in this host: its network, mount, IPC and PID namespaces,
        its capabilities, started in ``cwd`` as the host sees it."""
        cwd = str(kwargs.pop("cwd", None) or os.getcwd())
        kwargs["mncmd"] = ["nsenter", "-t", str(self.init_pid), "-n", "-m", "-i", "-p", "--",
                           *DROP_CAPS, "sh", "-c", 'cd "$0" 2>/dev/null || cd /; exec "$@"',
                           cwd]
        kwargs.setdefault("start_new_session", True)
        return Host.popen(self, *args, **kwargs)

    def config(self, **params):
        r = Host.config(self, **params)
        for opt in ("all", "default"):
            self.cmd(f"sysctl -qw net.ipv6.conf.{opt}.disable_ipv6=1")
        return r
