"""What each stage of npe.p4 costs (issue 9.5): the data-plane benchmark's
fastpath case (bench/dataplane.py, case c) on variants of npe.p4, each with
one stage taken out of the source (a copy, compiled with p4c), side by side
with minimal.p4 and the full program. A stage the packet needs to be forwarded
at all (tunnel, filter, encapsulation, route) cannot be taken out; the others
can, and full minus stage says what that stage costs.

    sudo .venv/bin/python -m bench.ablation        # about 2 minutes
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from controller import pipeline as pl

from . import dataplane

ROOT = Path(__file__).resolve().parent.parent

# name -> (file under p4/, text, replacement): the stage's call, skipped.
VARIANTS = {
    "full npe.p4": [],
    "- stats (pre and post counters)": [
        ("npe.p4", "                stats.apply(meta);", "                meta.counted = 0;"),
        ("npe.p4", "            stats.apply(meta);\n        }\n    }\n}",
         "        }\n    }\n}")],
    "- meters (queue and fastpath)": [
        ("npe.p4", "            queue.apply(meta);", "            meta.queued = 0;"),
        ("npe.p4", "            bandwidth.apply(meta);", "            meta.queued = meta.queued;")],
    "- validation (inner IPv4, checksum)": [
        ("npe.p4", "        validate.apply(hdr, meta, std_meta);", "        meta.malformed = 0;"),
        ("include/npe_parser.p4", "        verify_checksum(", "        verify_checksum(false &&")],
    "- egress (threshold, occupancy)": [
        ("npe.p4", "        queue.apply(meta, std_meta);", "")],
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
    import json
    return sum(len(p["tables"]) for p in json.loads(json_path.read_text())["pipelines"])


def run(size: int = 64, seconds: float = 3.0, runs: int = 2, log=print) -> dict:
    out = {"size": size, "rows": []}
    with tempfile.TemporaryDirectory(prefix="spp-ablation-") as tmp:
        work = Path(tmp)
        with dataplane.Setup("minimal", work) as s:
            base = max(s.throughput(size, seconds)["pps"] for _ in range(runs))
        out["minimal_pps"] = base
        log(f"  minimal.p4: {base:,.0f} packets/s")
        saved = pl.BUILD
        try:
            for i, (name, variant) in enumerate(VARIANTS.items()):
                pl.BUILD = build(variant, work / f"v{i}")
                with dataplane.Setup("fastpath", work) as s:
                    pps = max(s.throughput(size, seconds)["pps"] for _ in range(runs))
                row = {"variant": name, "pps": pps, "ratio": pps / base if base else None,
                       "tables": tables(pl.BUILD / "npe.json")}
                out["rows"].append(row)
                log(f"  {name:<36} {pps:>8,.0f} packets/s  {row['ratio']:.2f}x minimal, "
                    f"{row['tables']} tables")
        finally:
            pl.BUILD = saved
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=1))
