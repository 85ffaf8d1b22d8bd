"""The REST boundary in front of a live controller on BMv2 (issue 11)."""

from __future__ import annotations

import httpx
from conftest import SLICE_B_MGMT, needs_bmv2

from controller import pipeline as pl

pytestmark = needs_bmv2


def test_a_forwarded_header_cannot_write_another_slices_sram(controller, slices):
    """B's secret from 127.0.0.1 with ``X-Forwarded-For: <B's address>`` is
    EPERM, and B's SRAM (database and switch register) keeps its words."""
    _, b = slices
    fp = b.alloc_fastpath(bw=1_000, filters=1, queues=1, buffers=8, stats=1, sram=8)
    b.mem_write(fp["fpid"], 0, [7] * 8)
    ctl = controller.ctl
    row = ctl.store.one("SELECT npe, sram_base FROM fastpaths WHERE local_id = ? AND slice_id = "
                        "(SELECT id FROM slices WHERE name = 'b')", fp["fpid"])

    def sram():
        return (ctl.store.q("SELECT offset, value FROM sram ORDER BY offset"),
                ctl.scds[row["npe"]].register_read(pl.Npe.SRAM, row["sram_base"], 8))

    before = sram()
    for header in ({"X-Forwarded-For": SLICE_B_MGMT}, {"Forwarded": f"for={SLICE_B_MGMT}"}):
        rep = httpx.post(f"{controller.url}/api/mem_write",
                         json={"fpid": fp["fpid"], "offset": 0, "values": [0xBAD] * 8},
                         headers={"Authorization": f"Bearer {b.secret}", **header})
        assert (rep.status_code, rep.json().get("error")) == (403, "EPERM"), rep.text
    assert sram() == before and before[1] == [7] * 8
    assert b.mem_read(fp["fpid"], 0, 8) == [7] * 8
