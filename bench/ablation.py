"""What each stage of npe.p4 costs (issue 9.5): the data-plane benchmark's
fastpath case (bench/dataplane.py, case c) on variants of npe.p4, each with
one stage taken out of the source (a copy, compiled with p4c), side by side
with minimal.p4 and the full program. A stage the packet needs to be forwarded
at all (tunnel, filter, encapsulation, route) cannot be taken out; the others
can, and full minus stage says what that stage costs.

Besides packets/s, each row says how many tables the compiled program has and
how many a forwarded packet walks: counted in BMv2's own trace of three
packets (a switch run once with --log-level trace), since BMv2's cost per
packet follows the tables walked far more than anything else (docs/npe.md).

    sudo .venv/bin/python -m bench.ablation        # about 2 minutes
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from controller import pipeline as pl
from mininet_topo import bmv2

from . import dataplane

ROOT = Path(__file__).resolve().parent.parent

# name -> [(file under p4/, text, replacement)]: the stage's work, skipped.
VARIANTS = {
    "full npe.p4": [],
    "- stats (pre and post counters)": [
        ("include/control/encap.p4", "            stats.apply(meta);\n", ""),
        ("include/control/encap.p4", "        stats_pre.count(meta.stats_global);\n", ""),
        ("npe.p4", "        } else {\n            stats.apply(meta);\n        }", "        }")],
    "- meters (queue and fastpath)": [
        ("include/control/encap.p4",
         "        queue_rate.execute_meter(meta.queue_global, meta.queue_color);\n"
         "        fastpath_rate.execute_meter(\n"
         "            meta.queue_color == V1MODEL_METER_COLOR_RED ? 32w0 : "
         "(index_t)meta.fastpath,\n"
         "            meta.fastpath_color);\n", ""),
        ("include/control/encap.p4",
         "        fastpath_rate.execute_meter((index_t)meta.fastpath, meta.fastpath_color);\n",
         "")],
    "- validation (inner IPv4, checksum)": [
        ("include/control/tunnel.p4", "hdr.metanet.isValid() || IPV4_MALFORMED(",
         "hdr.metanet.isValid() || false && IPV4_MALFORMED("),
        ("include/control/tunnel.p4", "!hdr.fwd_key.isValid() || IPV4_MALFORMED(",
         "!hdr.fwd_key.isValid() || false && IPV4_MALFORMED("),
        ("include/npe_parser.p4", "        verify_checksum(", "        verify_checksum(false &&")],
    "- egress (threshold, occupancy)": [
        ("npe.p4", "        queue.apply(meta, std_meta);\n", "")],
}


def build(variant: list, out: Path) -> Path:
    src = out / "src"
    shutil.copytree(ROOT / "p4", src)
    for path, old, new in variant:
        f = src / path
        text = f.read_text()
        if old not in text:
            raise RuntimeError(f"ablation: {old!r} not in {path}")
        f.write_text(text.replace(old, new, 1))
    build_dir = out / "build"
    build_dir.mkdir()
    subprocess.run(["p4c-bm2-ss", "--arch", "v1model", "--std", "p4-16", "-o",
                    str(build_dir / "npe.json"), "--p4runtime-files",
                    str(build_dir / "npe.p4info.txtpb"), str(src / "npe.p4")],
                   check=True, capture_output=True)
    shutil.copy(ROOT / "p4/build/lc.json", build_dir)
    shutil.copy(ROOT / "p4/build/lc.p4info.txtpb", build_dir)
    return build_dir


def tables(json_path: Path) -> int:
    return sum(len(p["tables"]) for p in json.loads(json_path.read_text())["pipelines"])


class _TraceSpec(bmv2.SwitchSpec):
    """A switch that logs BMv2's per-packet trace to its log file."""

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("--log-level")
        cmd[i + 1] = "trace"
        cmd.insert(i, "--log-console")
        return cmd


@contextmanager
def _tracing():
    saved = dataplane.SwitchSpec
    dataplane.SwitchSpec = _TraceSpec
    try:
        yield
    finally:
        dataplane.SwitchSpec = saved


def walk(work: Path, case: str = "fastpath", packets: int = 3) -> dict:
    """What one packet of ``case`` walks in BMv2, from its trace: tables
    applied, conditions evaluated, action primitives, headers extracted and
    deparsed, trace lines (each a formatted message, even with logging
    off in a build with logging macros)."""
    with _tracing(), dataplane.Setup(case, work) as s:
        pcap = work / f"walk-{case}.pcap"
        wrpcap(str(pcap), [Ether(s.frame(64, i)) for i in range(packets)])
        s.ns.run("tcpreplay", "-q", "-i", "gen0", str(pcap))
        log = work / ("npe.log" if case in ("fastpath", "slowpath") else f"{case}.log")
        deadline = time.monotonic() + 10
        while log.read_text(errors="replace").count("Transmitting packet") < packets:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ablation: {case} did not forward the trace packets")
            time.sleep(0.2)
        text = log.read_text(errors="replace")
    per = {}
    for line in text.splitlines():
        m = re.search(r"\[(\d+)\.\d+\] \[cxt \d+\] (.*)", line)
        if m:
            per.setdefault(m.group(1), []).append(m.group(2))
    kinds = (("tables", "Applying table"), ("conditions", "Condition"),
             ("primitives", "Primitive"), ("extracted", "Extracting header"),
             ("deparsed", "Deparsing header"))
    first = next(iter(per.values()))
    c = Counter()
    for msg in first:
        for name, pattern in kinds:
            if re.match(r"(\S+\(\d+\) )?" + pattern, msg):
                c[name] += 1
    return {**{name: c[name] for name, _ in kinds}, "trace_lines": len(first)}


def run(size: int = 64, seconds: float = 3.0, runs: int = 2, log=print) -> dict:
    out = {"size": size, "rows": []}
    with tempfile.TemporaryDirectory(prefix="spp-ablation-") as tmp:
        work = Path(tmp)
        # minimal.p4 is measured before and after the variants and its best
        # run is the reference: on a shared machine its rate varies far more
        # than the NPE's (it saturates no thread of its own, so it gets what
        # the generator and other processes leave).
        def minimal() -> list[float]:
            with dataplane.Setup("minimal", work) as s:
                return [s.throughput(size, seconds)["pps"] for _ in range(runs)]

        first = minimal()
        log(f"  minimal.p4: {max(first):,.0f} packets/s")
        saved = pl.BUILD
        try:
            for i, (name, variant) in enumerate(VARIANTS.items()):
                pl.BUILD = build(variant, work / f"v{i}")
                with dataplane.Setup("fastpath", work) as s:
                    pps = max(s.throughput(size, seconds)["pps"] for _ in range(runs))
                row = {"variant": name, "pps": pps,
                       "tables": tables(pl.BUILD / "npe.json"), "walk": walk(work)}
                out["rows"].append(row)
                log(f"  {name:<36} {pps:>8,.0f} packets/s, {row['tables']} tables, "
                    f"walks {row['walk']}")
        finally:
            pl.BUILD = saved
        last = minimal()
        base = max(first + last)
        out.update(minimal_pps=base, minimal_runs=first + last,
                   minimal_walk=walk(work, "minimal"))
        log(f"  minimal.p4: {max(last):,.0f} packets/s; reference {base:,.0f}")
        for row in out["rows"]:
            row["ratio"] = row["pps"] / base if base else None
            log(f"  {row['variant']:<36} {row['ratio']:.2f}x minimal.p4")
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
