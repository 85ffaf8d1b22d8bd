"""Front ends without a testbed: what they print and where they write."""

from __future__ import annotations

from pathlib import Path

from bench.run import ROOT, shown


def test_bench_out_path_shown_anywhere(tmp_path, monkeypatch):
    """`python -m bench.run --out FILE` names FILE when it is done, wherever FILE
    is: in the repository, outside it, or relative to the current directory."""
    assert shown(ROOT / "docs" / "benchmarks.md") == "docs/benchmarks.md"
    assert shown(tmp_path / "b.md") == str(tmp_path / "b.md")
    monkeypatch.chdir(tmp_path)
    assert shown(Path("b.md")) == str(tmp_path / "b.md")
    monkeypatch.chdir(ROOT)
    assert shown(Path("b.md")) == "b.md"

