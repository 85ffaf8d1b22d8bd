"""make bench: data plane, control plane, start-up and scale, side by side.

    sudo .venv/bin/python -m bench.run                 # everything (about 15-20 min)
    sudo .venv/bin/python -m bench.run --only dataplane --runs 1

Writes docs/benchmarks.md (tables, ratios, what each number means), the
plots under docs/bench/, and the raw numbers in docs/bench/results.json.
Every figure is the median of the stated number of runs, all taken in one
sitting on this machine: compare ratios, not absolute numbers, across
machines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mininet_topo.bmv2 import bmv2_version

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OUT = DOCS / "bench"
STAGES = ("dataplane", "controlplane", "startup", "scale", "isolation", "bmv2_builds")


def logging_macros_compiled_in() -> bool | None:
    """BMv2 warns at start-up when built with --disable-logging-macros."""
    from mininet_topo.netns import Namespace
    try:
        with Namespace("spp-bench-probe") as ns:
            p = ns.run("timeout", "3", "simple_switch", "--log-console", "--log-level", "debug",
                       "--no-p4", "--thrift-port", "19999", "-i", "0@lo", check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return "disabled logging macros" not in (p.stdout + p.stderr)


def _version(cmd) -> str:
    """The line a tool prints its version on (some print it on stderr)."""
    if shutil.which(cmd[0]) is None:
        return "not installed"
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = (p.stdout + p.stderr).strip().splitlines()
    return next((line for line in lines if "ersion" in line), lines[0] if lines else "unknown")


def environment() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "bmv2": bmv2_version(), "p4c": _version(["p4c-bm2-ss", "--version"]),
        "bmv2_logging_macros": logging_macros_compiled_in(),
        "bmv2_runtime_logging": "--log-level off, no console or file logger (data plane); "
                                "--log-console --log-level warn (testbeds)",
        "tcpreplay": _version(["tcpreplay", "--version"]),
    }


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def preflight():
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root (namespaces, Mininet)")
    for tool, pkg in (("simple_switch_grpc", "BMv2 (README, Prerequisites)"),
                      ("tcpreplay", "apt-get install tcpreplay"),
                      ("tcpdump", "apt-get install tcpdump")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} missing: {pkg}")
    if problems:
        sys.exit("bench: " + "; ".join(problems))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(STAGES),
                    help=f"comma-separated stages (default: all: {','.join(STAGES)})")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median; default 3)")
    ap.add_argument("--out", type=Path, default=DOCS / "benchmarks.md")
    ap.add_argument("--perf-bmv2", metavar="PATH",
                    help="BMv2's performance build (its simple_switch_grpc; default: "
                         "$SPP_PERF_BMV2): stage bmv2_builds compares it with the default "
                         "build, and is skipped without it")
    ap.add_argument("--report-only", action="store_true",
                    help="only rewrite the report from docs/bench/results.json")
    args = ap.parse_args(argv)
    if args.report_only:
        from .report import write_report
        write_report(json.loads((OUT / "results.json").read_text()), args.out, OUT)
        return 0
    stages = [s for s in args.only.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        ap.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    if "bmv2_builds" in stages:
        from .bmv2_builds import skip_reason
        if skip_reason(args.perf_bmv2):
            print(skip_reason(args.perf_bmv2), flush=True)
            stages.remove("bmv2_builds")
            if not stages:
                return 0
    preflight()
    from mininet_topo.cleanup import cleanup_all
    cleanup_all(verbose=False, mininet=False)

    OUT.mkdir(parents=True, exist_ok=True)
    results_file = OUT / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["environment"] = environment()
    durations = results.setdefault("durations_s", {})
    dates = results.setdefault("dates", {})      # when each stage last ran
    t_all = time.monotonic()
    for stage in stages:
        print(f"== {stage}", flush=True)
        t = time.monotonic()
        dates[stage] = datetime.datetime.now().isoformat(timespec="seconds")
        if stage == "dataplane":
            from . import dataplane
            results["dataplane"] = dataplane.run(runs=args.runs)
        elif stage == "controlplane":
            from . import controlplane
            results["controlplane"] = controlplane.run()
        elif stage == "startup":
            from . import startup
            results["startup"] = startup.run(runs=args.runs)
        elif stage == "scale":
            from . import scale
            results["scale"] = scale.run()
        elif stage == "isolation":
            from . import isolation
            results["isolation"] = isolation.run()
        elif stage == "bmv2_builds":
            from . import bmv2_builds
            results["bmv2_builds"] = bmv2_builds.run(bmv2_builds.perf_binary(args.perf_bmv2),
                                                     runs=args.runs)
        durations[stage] = time.monotonic() - t
        results_file.write_text(json.dumps(results, indent=1) + "\n")
    print(f"== done in {time.monotonic() - t_all:.0f} s", flush=True)
    from .report import write_report
    write_report(results, args.out, OUT)
    print(f"wrote {shown(args.out)} and plots in {shown(OUT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
