"""bench/bmv2_builds.py without switches: it skips without a second build, its
loss-free search finds a switch's capacity, and its report section says what
the results say."""

from bench import bmv2_builds as bb


def test_skips_without_a_second_build(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(bb.ENV, raising=False)
    assert bb.main([]) == 0
    assert "skipped: no performance build" in capsys.readouterr().out
    assert bb.main(["--perf-bmv2", str(tmp_path / "simple_switch_grpc")]) == 0
    assert "is not an executable file" in capsys.readouterr().out
    monkeypatch.setenv(bb.ENV, str(tmp_path / "nowhere"))
    assert bb.perf_binary(None) is None
    monkeypatch.setenv(bb.ENV, "/bin/true")
    assert bb.perf_binary(None) == "/bin/true"


def capacity_model(capacity: int, hiccups=()):
    """A stand-in for paced()'s measurement (arithmetic, not a switch: the search
    is what is tested here; the stage itself runs real BMv2): ``capacity``
    packets/s carried, 5 % lost once at each rate in ``hiccups``."""
    pending = list(hiccups)

    def paced(s, size, pps, seconds):
        sent = round(pps * seconds)
        delivered = sent if pps <= capacity else round(sent * capacity / pps)
        if pps in pending:
            pending.remove(pps)
            delivered = round(sent * 0.95)
        return {"offered_pps": pps, "sent": sent, "delivered": delivered,
                "cpu_us_per_pkt": 1.0, "ctxsw_per_pkt": 1.0}
    return paced


def test_loss_free_search(monkeypatch):
    rates = (5_000, 10_000, 20_000, 40_000)
    monkeypatch.setattr(bb, "paced", capacity_model(30_000))
    r = bb.loss_free(None, 64, rates, 1.0)
    # 20k carried, 40k not (tried twice), then 30k carried, 35k not: 30k
    assert r["pps"] == 30_000
    assert [x["offered_pps"] for x in r["steps"]] == [5_000, 10_000, 20_000, 40_000, 40_000,
                                                       30_000, 35_000, 35_000]
    # one hiccup does not end the search; the same loss twice does
    monkeypatch.setattr(bb, "paced", capacity_model(30_000, hiccups=(10_000,)))
    assert bb.loss_free(None, 64, rates, 1.0)["pps"] == 30_000
    monkeypatch.setattr(bb, "paced", capacity_model(30_000, hiccups=(10_000, 10_000)))
    assert bb.loss_free(None, 64, rates, 1.0)["pps"] == 8_800    # 5k, then 7.5k, 8.8k
    # nothing carried, or everything carried
    monkeypatch.setattr(bb, "paced", capacity_model(1_000))
    assert bb.loss_free(None, 64, rates, 1.0)["pps"] == 0
    monkeypatch.setattr(bb, "paced", capacity_model(10**6))
    assert bb.loss_free(None, 64, rates, 1.0)["pps"] == 40_000


def test_section_reports_speed_ups_and_ratios():
    def cell(pps, offered=100_000):
        return {"pps": pps, "all": [pps], "offered_pps": offered, "cpu_us_per_pkt": 10.0,
                "ctxsw_per_pkt": 2.0}
    info = {"binary": "/x/simple_switch_grpc", "version": "1.15.5", "logging_macros": True,
            "libraries": {"libbmpi": "/x/lib/libbmpi.so.0"}}
    lf = {"pps": 20_000, "all": [20_000], "cpu_us_per_pkt": 30.0, "ctxsw_per_pkt": 6.0,
          "steps": []}
    res = {"runs": 1, "seconds": 3.0, "sizes": [64], "order": "A B", "perf_configure": "-O3",
           "builds": {"default": info, "performance": dict(info, logging_macros=False)},
           "p4": {"npe": {"tables": 7, "as_committed": True, "last_commit": "abc123 date"}},
           "pps": {"default": {"minimal": {"64": cell(40_000)}, "fastpath": {"64": cell(10_000)}},
                   "performance": {"minimal": {"64": cell(40_000)},
                                   "fastpath": {"64": cell(30_000, offered=31_000)}}},
           "loss_free": {"size": 64, "rates": [5_000, 10_000], "seconds": 1.5, "max_loss": 0.01,
                         "cpu_at_pps": 7_500,
                         "builds": {"default": {"minimal": lf,
                                                "fastpath": dict(lf, pps=5_000, all=[5_000])},
                                    "performance": {"minimal": lf,
                                                    "fastpath": dict(lf, cpu_us_per_pkt=15.0)}}}}
    text = "\n".join(bb.section(res))
    assert "## BMv2's performance build" in text
    assert "| 64 B | 40,000 | 40,000 | 1.00x | 10,000 | 30,000 | 3.00x | 0.25 | 0.75 |" in text
    assert "as committed in abc123" in text
    assert "npe.p4 fastpath (c) performance 64 B" in text     # near what tcpreplay offered
    assert "| npe.p4 fastpath (c) | 5,000 (5k) | 20,000 (20k) | 4.00x | 30.0 | 15.0 | 2.00x |" \
        in text
    assert "NPE/minimal by loss-free rate: default 0.25, performance build 1.00" in text
