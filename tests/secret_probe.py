"""Run inside a testbed host (tests/test_e2e_secrets.py): try every way a root
user on a Mininet host has to read files the testbed keeps from it, and print
what could be read as JSON.

    python tests/secret_probe.py --find S1,S2 FILE [FILE ...]

For each FILE (a path in the testbed's file system: a slice's secret, the admin
token, the database and its WAL), tries: the path itself; the same path through
/proc/PID/root of every process the host can see, and /run/spp/secret and
/var/run/spp/secret there; every open file of every visible process
(/proc/PID/fd/*) and its environment; after unmounting what hides the
directory; and the disks under /dev. Prints {"read": {how: {"bytes": N,
"found": [the strings of --find in what was read]}}, "errors": {how: error},
"pids": [...], "capabilities": hex}.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

LIMIT = 1 << 20


def read(path: str | Path) -> str:
    with open(path, "rb") as f:
        return f.read(LIMIT).decode("latin-1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--find", default="", help="comma-separated strings to look for")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    files, find = args.files, [s for s in args.find.split(",") if s]
    got: dict[str, dict] = {}
    errors: dict[str, str] = {}

    def attempt(how: str, path: str | Path):
        try:
            text = read(path)
        except OSError as e:
            errors[how] = f"{type(e).__name__}: {e.strerror}"
            return
        got[how] = {"bytes": len(text), "found": [s for s in find if s in text]}

    for f in files:
        attempt(f"file {f}", f)
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        for f in [*files, "/run/spp/secret", "/var/run/spp/secret"]:
            attempt(f"/proc/{pid}/root{f}", f"{proc}/root{f}")
        attempt(f"/proc/{pid}/environ", proc / "environ")
        try:
            fds = os.listdir(proc / "fd")
        except OSError as e:
            errors[f"/proc/{pid}/fd"] = f"{type(e).__name__}: {e.strerror}"
            fds = []
        for fd in fds:
            try:
                target = os.readlink(proc / "fd" / fd)
                mode = os.stat(proc / "fd" / fd).st_mode
            except OSError as e:
                errors[f"/proc/{pid}/fd/{fd}"] = f"{type(e).__name__}: {e.strerror}"
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
                continue            # pipes, sockets, terminals, TUN: nothing stored
            attempt(f"/proc/{pid}/fd/{fd} -> {target}", proc / "fd" / fd)
    # Root on the host may try to take away what hides the files: any tmpfs
    # mounted on one of their directories.
    dirs = {str(d) for f in files for d in Path(f).parents if str(d) != "/"}
    for line in read("/proc/self/mountinfo").splitlines():
        fields = line.split()
        mnt, fstype = fields[4], fields[fields.index("-") + 1]
        if mnt in dirs and fstype == "tmpfs":
            p = subprocess.run(["umount", "-l", mnt], capture_output=True, text=True)
            errors[f"umount {mnt}"] = p.stderr.strip() or f"rc {p.returncode}"
            for f in files:
                attempt(f"after umount {mnt}: {f}", f)
    # ... or read the disk itself.
    for dev in sorted(Path("/dev").rglob("*")):
        if dev.is_block_device():
            attempt(f"block device {dev}", dev)
    caps = next((line.split()[1] for line in read("/proc/self/status").splitlines()
                 if line.startswith("CapEff:")), "")
    print(json.dumps({"read": got, "errors": errors, "pids": pids, "capabilities": caps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
