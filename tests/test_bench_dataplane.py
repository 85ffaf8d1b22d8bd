"""bench/dataplane.py's side-by-side rounds of minimal.p4 and the NPE, without switches:
the order alternates, each round's ratio pairs the two runs of that round, the figure is the
median with its range, and the report shows that figure (not the ratio of two medians)."""

from bench import bmv2_builds as bb
from bench import dataplane as dp
from bench import report


class FakeSetup:
    """A stand-in for a Setup (arithmetic, not a switch: the pairing is what is tested)."""

    def __init__(self, case, rates, cpu_us, calls):
        self.case, self.rates, self.cpu_us, self.calls = case, list(rates), cpu_us, calls

    def cpu(self):
        return 0.0

    def throughput(self, size, seconds):
        self.calls.append(self.case)
        return {"pps": self.rates.pop(0), "mbps": 0.0, "offered_pps": 100_000, "received": 1}


def fake_paced(s, size, pps, seconds):
    n = round(pps * seconds)
    return {"offered_pps": pps, "sent": n, "delivered": n, "cpu_us_per_pkt": s.cpu_us,
            "ctxsw_per_pkt": 1.0}


def test_paired_rounds_alternate_and_pair(monkeypatch):
    monkeypatch.setattr(bb, "paced", fake_paced)
    calls = []
    setups = {"minimal": FakeSetup("minimal", [40_000, 20_000, 30_000, 25_000], 25.0, calls),
              "fastpath": FakeSetup("fastpath", [16_000, 15_000, 18_000, 20_000], 50.0, calls)}
    p = dp.paired_rounds(setups, 64, 4, 1.0, log=lambda m: None)
    assert calls == ["minimal", "fastpath", "fastpath", "minimal"] * 2
    assert p["ratios"] == [0.4, 0.75, 0.6, 0.8]
    assert abs(p["ratio"] - 0.675) < 1e-9                  # median of the pairs' ratios
    assert p["cpu_ratio"] == 0.5 and p["paced_lost_max"] == 0.0
    # not the ratio of the medians (16,000-18,000 over 25,000-30,000: 0.6)
    assert round(17_000 / 27_500, 2) != round(p["ratio"], 2)


def test_report_shows_the_paired_median_and_its_range():
    def row(pps, cpu):
        return {"pps": pps, "mbps": 1.0, "p50_us": 1, "p90_us": 2, "p99_us": 3,
                "offered_pps": 1e5, "all_pps": [pps - 1000, pps, pps + 1000],
                "cpu_us_per_pkt": cpu}
    sizes = {s: {"ratios": [0.45, 0.52, 0.61], "ratio": 0.52, "cpu_ratios": [0.55, 0.57, 0.6],
                 "cpu_ratio": 0.57, "paced_pps": 7500, "paced_s": 1.0, "paced_lost_max": 0.0,
                 "other_cpu_s_max": 0.01} for s in dp.SIZES}
    res = {"runs": 3, "seconds": 3.0,
           "cases": {"minimal": {str(s): row(30_000, 28.0) for s in dp.SIZES},
                     "fastpath": {str(s): row(20_000, 49.0) for s in dp.SIZES}},
           "paired": {"rounds": 3, "seconds": 2.0, "sizes": {str(s): v for s, v in sizes.items()},
                      "pinned": {"size": 64, "rounds": 3, "seconds": 2.0, "generator_cpu": "0",
                                 "switch_cpu": "1", "ratios": [0.6, 0.66, 0.7], "ratio": 0.66,
                                 "pps": {"minimal": [24_000, 23_000, 23_500],
                                         "fastpath": [14_400, 15_180, 16_450]}}}}
    text = "\n".join(report.dataplane_section(res))
    assert "| 64 B | 0.52 |" in text                     # not 20,000 / 30,000 = 0.67
    assert "**0.52** (0.45–0.61)" in text and "0.57 (0.55–0.60)" in text
    assert "all sizes (9 pairs)" in text and "64 B 0.45, 0.52, 0.61" in text
    assert "| 64 B, pinned | 23,500 (23,000–24,000) |" in text and "**0.66** (0.60–0.70)" in text
