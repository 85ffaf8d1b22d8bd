"""Remove what a crashed testbed, test or benchmark run left behind.

    sudo .venv/bin/python -m mininet_topo.cleanup      (make clean)

Kills the processes recorded in run/*/pids (switches, controller, socat,
slice programs; only if the pid still runs one of those), runs Mininet's
own cleanup (mn -c), and deletes the network namespaces and links this
project names spp-*/sppm*.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("simple_switch_grpc", "controller", "socat", "slices.samples", "iperf3")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


#: the file system of a slice host's directory of the run directory (sppnet.slice_dir)
SLICE_DIR_FS = "spp-slice"


def unmount_slice_dirs(under: Path):
    """Unmount the slice host directories (SLICE_DIR_FS) at or under ``under``."""
    under = str(Path(under).resolve())
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        target = target.encode().decode("unicode_escape")      # \040 in names
        if source == SLICE_DIR_FS and (target == under or target.startswith(under + "/")):
            subprocess.run(["umount", "-l", target], capture_output=True)


def cleanup_run_dir(run_dir: Path) -> int:
    """Kill the live processes recorded under run_dir/pids, and unmount its
    slice host directories; returns how many processes."""
    killed = 0
    unmount_slice_dirs(run_dir)
    pids = Path(run_dir) / "pids"
    if not pids.is_dir():
        return 0
    for f in pids.glob("*.pid"):
        try:
            pid = int(f.read_text().strip())
        except ValueError:
            pid = 0
        cmd = _cmdline(pid) if pid else ""
        if cmd and any(k in cmd for k in OURS):
            try:
                os.killpg(pid, signal.SIGTERM) if os.getpgid(pid) == pid else \
                    os.kill(pid, signal.SIGTERM)
                killed += 1
            except ProcessLookupError:
                pass
            for _ in range(50):
                if not _cmdline(pid):
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        f.unlink(missing_ok=True)
    return killed


def run(*args):
    return subprocess.run(args, capture_output=True, text=True)


def mininet_cleanup():
    """Mininet's own cleanup (mn -c). Note: it also deletes /tmp/*.log."""
    try:
        from mininet.clean import cleanup as mn_cleanup
        from mininet.log import lg
    except ImportError:
        return
    level = lg.level                  # quiet for this, without changing it for the caller
    lg.setLevel("ERROR")
    try:
        mn_cleanup()
    finally:
        lg.setLevel(level)


def cleanup_all(verbose: bool = True, mininet: bool = True) -> dict:
    """Everything this project may have left; with ``mininet``, also Mininet's
    own cleanup (every Mininet link and process on the machine)."""
    out = {"processes": 0, "namespaces": [], "links": []}
    for d in sorted((ROOT / "run").glob("*")):
        out["processes"] += cleanup_run_dir(d)
    if mininet:
        mininet_cleanup()
    for line in run("ip", "netns", "list").stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith("spp-"):
            run("ip", "netns", "del", ns)
            out["namespaces"].append(ns)
    for line in run("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith("sppm"):
            run("ip", "link", "del", name)
            out["links"].append(name)
    if verbose:
        print(f"cleanup: {out['processes']} process(es) killed, namespaces removed: "
              f"{out['namespaces'] or 'none'}, links removed: {out['links'] or 'none'}")
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("cleanup needs root", file=sys.stderr)
        return 2
    cleanup_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
