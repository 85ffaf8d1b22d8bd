"""The PTF suite (ptf_tests/) against real BMv2 switches, run by its runner."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import needs_bmv2

ROOT = Path(__file__).resolve().parent.parent


def count_tests() -> int:
    return sum(len(re.findall(r"^class \w+\((?:Npe|Lc)Test\):", p.read_text(), re.M))
               for p in (ROOT / "ptf_tests").glob("*.py"))


@needs_bmv2
def test_ptf_suite(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ptf_tests.runner", "--log-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    ran = int(re.search(r"Ran (\d+) tests?", log).group(1))
    assert ran == count_tests() >= 19
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "spp-ptf" not in left
