"""The committed compiler outputs are those of the current P4 sources."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = {"npe": "p4", "lc": "p4", "minimal": "bench/p4"}


def test_outputs_are_committed():
    for p, d in PROGRAMS.items():
        for suffix in (".json", ".p4info.txtpb"):
            assert (ROOT / d / "build" / f"{p}{suffix}").stat().st_size > 0


@pytest.mark.skipif(shutil.which("p4c-bm2-ss") is None,
                    reason="p4c-bm2-ss not installed: cannot check p4/build/ is up to date")
@pytest.mark.parametrize("program", PROGRAMS)
def test_outputs_are_not_stale(program, tmp_path):
    out = subprocess.run(
        ["p4c-bm2-ss", "--arch", "v1model", "--std", "p4-16", "-o", str(tmp_path / "x.json"),
         "--p4runtime-files", str(tmp_path / "x.p4info.txtpb"),
         f"{PROGRAMS[program]}/{program}.p4"],
        cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", f"p4c warnings:\n{out.stderr}"
    for suffix in (".json", ".p4info.txtpb"):
        fresh = (tmp_path / f"x{suffix}").read_text()
        committed = (ROOT / PROGRAMS[program] / "build" / f"{program}{suffix}").read_text()
        assert fresh == committed, f"{PROGRAMS[program]}/build/{program}{suffix} is stale: " \
                                   "run `make p4`"
