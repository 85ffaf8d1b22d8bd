"""The switches' packet capacity on this machine, as `make bench` measured it
(docs/bench/results.json: the data-plane cases c, the NPE fastpath, and e, the
LC's demux), and what it means for a topology's links.

BMv2 processes packets one by one in software: a link can offer more small
packets than a switch can process, and a switch that cannot keep up loses
everyone's packets before any meter runs. The controller shares each NPE's
packet budget among its fastpaths and the LC polices each fastpath to its
share (translate.police_rates), which protects the NPE; nothing in P4 can
protect a switch from more packets than it can read. So: the testbed gives
the controller the NPE's budget, and says when its links can offer more
minimum-size packets than the switches handle.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "bench" / "results.json"
MIN_FRAME = 64          # bytes: the smallest Ethernet frame a flood uses


def measured(path: Path = RESULTS) -> dict:
    """{"npe_pps", "lc_pps", "date"}: 64-byte packets/s, 0 where not measured."""
    try:
        r = json.loads(Path(path).read_text())
        cases = r["dataplane"]["cases"]
    except (OSError, ValueError, KeyError):
        return {"npe_pps": 0, "lc_pps": 0, "date": None}

    def pps(case):
        return int(cases.get(case, {}).get("64", {}).get("pps") or 0)
    return {"npe_pps": pps("fastpath"), "lc_pps": pps("lc"),
            "date": r.get("dates", {}).get("dataplane") or r.get("environment", {}).get("date")}


# The share of its measured capacity (the NPE alone on the machine) that an NPE
# is given as its budget in a running testbed, where it shares the cores with
# the LCs, the other nodes' switches and the end hosts.
NPE_SHARE = 0.5


def npe_budget(cap: dict | None = None) -> int:
    """Packets/s the controller shares among an NPE's fastpaths (testbed.json
    ``pps``); 0 when nothing was measured (then nothing is policed)."""
    cap = cap or measured()
    return int(cap["npe_pps"] * NPE_SHARE)


def link_notes(node_links: dict[str, list[float]], cap: dict | None = None) -> list[str]:
    """Start-up notes: per node, the packets/s its links (Mb/s) can offer in
    minimum-size frames, against the measured capacity of its switches."""
    cap = cap or measured()
    notes = []
    if not cap["npe_pps"]:
        return ["switch packet capacity not measured (run `make bench`): the LC does NOT "
                "police fastpaths' packet rates"]
    notes.append(f"packet budget: each NPE {npe_budget(cap):,} packets/s ({NPE_SHARE:.0%} of "
                 f"the {cap['npe_pps']:,} make bench measured, {cap['date']}), shared by its "
                 f"fastpaths in proportion to their bw and policed at the LC")
    for node, links in node_links.items():
        offered = int(sum(links) * 1e6 / 8 / MIN_FRAME)
        lc = cap["lc_pps"]
        if offered > (lc or cap["npe_pps"]):
            lc_text = f"about {lc:,} packets/s" if lc else "an unmeasured number of packets/s"
            notes.append(
                f"{node}: its links can offer {offered:,} packets/s of {MIN_FRAME}-byte frames; "
                f"its LC processes {lc_text}, its NPE about "
                f"{cap['npe_pps']:,} packets/s on this machine (make bench, {cap['date']}). "
                f"The LC polices each fastpath to its share of the NPE's packets; a flood "
                f"beyond what the LC itself can read still delays everyone's packets")
    return notes
