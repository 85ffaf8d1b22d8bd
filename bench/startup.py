"""Start-up benchmark: from bringing a testbed up to the first packet across
the overlay (first end host to last end host, on the first slice), with the
phases of the bring-up. ``make run`` adds to this only the P4 compile when
p4c is installed (measured separately)."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from mininet_topo.sppnet import SppNet

ROOT = Path(__file__).resolve().parent.parent


def first_packet(topo: str) -> dict:
    t0 = time.monotonic()
    with SppNet(topo) as spp:
        hosts = list(spp.plan.hosts.values())
        src, dst = spp.net[hosts[0].name], hosts[-1].tunnels[0]["overlay_addr"]
        while "1 received" not in src.cmd(f"ping -c 1 -W 1 {dst}"):
            if time.monotonic() - t0 > 180:
                raise RuntimeError(f"{topo}: no packet across the overlay after 180 s")
        first = time.monotonic() - t0
        phases = dict(spp.timings)
    return {"first_packet_s": first, **{f"{k}_s": v for k, v in phases.items()}}


def p4_compile_seconds() -> float | None:
    t = time.monotonic()
    r = subprocess.run(["make", "-s", "p4"], cwd=ROOT, capture_output=True)
    return time.monotonic() - t if r.returncode == 0 else None


def run(runs: int = 3, topos=("default", "geni5"), log=print) -> dict:
    out = {"runs": runs, "p4c_s": p4_compile_seconds(), "topologies": {}}
    for topo in topos:
        samples = [first_packet(topo) for _ in range(runs)]
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        out["topologies"][topo] = {**med, "all_first_packet_s": [s["first_packet_s"]
                                                                 for s in samples]}
        log(f"  {topo:<8} first packet after {med['first_packet_s']:.1f} s "
            f"(network {med['network_s']:.1f} s, controller {med['controller_s']:.1f} s, "
            f"slices ready {med['ready_s']:.1f} s)")
    return out
