"""Controller logic that needs no switch: allocation, filter semantics,
names and encodings against the committed P4Info, the meta-net layer."""

import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP

from controller import pipeline as pl
from controller.errors import BY_CODE, CODES, SppError
from controller.p4rt import P4Type
from controller.rmp import filter_matches, normalize_key
from controller.srm import first_fit
from controller.store import Store
from slices import metanet as mn

ROOT = Path(__file__).resolve().parent.parent


def test_first_fit():
    assert first_fit([], 10, 100) == 0
    assert first_fit([(0, 10), (20, 5)], 10, 100) == 10
    assert first_fit([(0, 10), (20, 5)], 11, 100) == 25
    assert first_fit([(0, 10), (10, 0), (15, 80)], 5, 100) == 10
    assert first_fit([(0, 95)], 6, 100) is None
    assert first_fit([(0, 100)], 0, 100) == 0


def test_filter_matching_and_keys():
    key, mask = normalize_key({"dst_addr": "10.1.2.3", "protocol": 6},
                              {"dst_addr": "255.255.0.0", "protocol": 0})
    assert key == {"dst_addr": 0x0A010000} and mask == {"dst_addr": 0xFFFF0000}
    f = {"type": 0, "key": key, "mask": mask}
    assert filter_matches(f, 0, {"dst_addr": "10.1.99.1"})
    assert not filter_matches(f, 0, {"dst_addr": "10.2.0.1"})
    assert not filter_matches(f, 1, {"dst_addr": "10.1.99.1"})
    assert filter_matches({"type": 1, "key": {}, "mask": {}}, 1, {"src_port": 5})


def test_names_and_builders_match_the_p4info():
    npe, lc = pl.npe_pipeline(), pl.lc_pipeline()
    for names, pipe in ((pl.Npe, npe), (pl.Lc, lc)):
        for attr, name in vars(names).items():
            if attr.startswith("_") or name in (pl.Npe.SRAM, pl.Npe.QUEUE_LEN):
                continue
            found = any(pipe.context.get_obj(t, name) for t in
                        (P4Type.table, P4Type.counter, P4Type.meter))
            assert found, name
    assert npe.register_size(pl.Npe.SRAM) > 0 and npe.register_size(pl.Npe.QUEUE_LEN) > 0
    entries = [
        (npe, pl.npe_fastpath(1, 1, "10.0.2.10", 50000, 50001, "10.0.1.2", 40000)),
        (npe, pl.npe_meta_if_tunnel(pl.Partition(1, 0, 8, 0, 4), 1, "192.168.1.1", 20000)),
        (npe, pl.npe_meta_if_tunnel(pl.Partition(1, 0, 8, 0, 4), 2, "192.168.2.1", 20000,
                                    "192.168.2.2")),
        (npe, pl.npe_slice_tunnel(pl.Partition(1, 0, 8, 0, 4), "10.0.1.2", 40000, "10.0.2.10", 2)),
        (npe, pl.npe_filter(1, 5, 0, {"dst_addr": "10.1.0.0"}, {"dst_addr": "255.255.0.0"},
                            pl.FilterResult("forward", stats=1, meta_if=2, nh_addr="10.9.9.9",
                                            nh_port=30000, queue=1),
                            pl.MetaIfEncap("192.168.2.1", 20000, "192.168.2.2"))),
        (npe, pl.npe_queue_params(3, 10)),
        (npe, pl.npe_route("0.0.0.0", 0, 0, "02:00:00:00:00:01", "02:00:00:00:00:02")),
        (lc, pl.lc_arp("192.168.1.1", "02:00:00:00:00:01")),
        (lc, pl.lc_slice_port(2, "10.0.2.10")),
        (lc, pl.lc_meta_if("192.168.1.1", 20000, 1, "02:00:00:00:00:01", "02:00:00:00:00:02",
                           1)),
        (lc, pl.lc_src_owner("10.0.2.10", 2)),
        (lc, pl.lc_npe_addr("10.0.1.2")),
        (lc, pl.lc_endpoint("192.168.1.1", 17, 8053, "10.0.2.10", 53)[0]),
        (lc, pl.lc_local_addr("192.168.1.1")),
    ]
    for pipe, e in entries:
        assert pipe.entry_from_msg(pipe.table_entry(e)) == pipe.canonical(e)


def test_filter_priority_follows_filter_id():
    r = pl.FilterResult("drop")
    p = [pl.npe_filter(1, fid, 0, {}, {}, r).priority for fid in (0, 1, 7, pl.MAX_FILTER_ID)]
    assert p == sorted(p, reverse=True) and p[-1] >= 1
    with pytest.raises(ValueError):
        pl.npe_filter(1, pl.MAX_FILTER_ID + 1, 0, {}, {}, r)


def test_drop_reasons_match_define_p4():
    text = (ROOT / "p4/include/define.p4").read_text()
    for prefix, table in (("NPE", pl.NPE_DROPS), ("LC", pl.LC_DROPS)):
        found = {int(v): k.lower() for k, v in
                 re.findall(rf"const drop_reason_t {prefix}_DROP_(\w+)\s*=\s*(\d+);", text)}
        assert found == table


def test_error_codes():
    assert len(BY_CODE) == len(CODES) and 0 not in BY_CODE
    e = SppError("EQUOTA", "too many")
    assert e.to_json() == {"code": 6, "error": "EQUOTA", "message": "too many"}
    assert all(400 <= c.http < 600 for c in CODES)


def test_docs_list_every_function_and_error():
    from controller.api import SLICE_API
    from controller.errors import markdown_table
    text = (ROOT / "docs/api.md").read_text()
    assert markdown_table() in text, "docs/api.md: error table out of date"
    for name in SLICE_API:
        assert f"`POST /api/{name}`" in text, name


def test_store_cascades_and_constraints(tmp_path):
    st = Store(tmp_path / "x.db")
    with st.tx():
        st.x("INSERT INTO slices VALUES (1, 'a', 'n', 's1', '1.1.1.1', '10.0.0.1', 2, 'm', '{}')")
        st.x("INSERT INTO fastpaths VALUES (1, 1, 1, 'n', 'npe', 1, 'ipv4', 1, 1, 1, 1, 1, 0, 0,"
             " 0, 0, 0, 40000, 50000, 50001)")
        st.x("INSERT INTO filters VALUES (1, 3, '{}')")
    with pytest.raises(sqlite3.IntegrityError):
        with st.tx():
            st.x("INSERT INTO slices VALUES (2, 'a', 'n', 's2', '1.1.1.2', '10.0.0.2', 3, 'm', "
                 "'{}')")
    with pytest.raises(RuntimeError):
        with st.tx():
            st.x("DELETE FROM filters")
            raise RuntimeError("rolled back")
    assert st.scalar("SELECT COUNT(*) FROM filters") == 1
    with st.tx():
        st.x("DELETE FROM slices WHERE id = 1")
    assert st.scalar("SELECT COUNT(*) FROM filters") == 0
    st.close()
    assert Store(tmp_path / "x.db").scalar("SELECT COUNT(*) FROM fastpaths") == 0


def test_metanet_layer_matches_header_p4():
    text = (ROOT / "p4/include/header.p4").read_text()
    body = re.search(r"header metanet_t \{(.*?)\}", text, re.S).group(1)
    widths = {"fastpath_id_t": 16, "meta_if_t": 16, "ipv4_addr_t": 32, "l4_port_t": 16}
    bits = sum(int(t[4:-1]) if t.startswith("bit<") else widths[t]
               for t in re.findall(r"^\s*(bit<\d+>|\w+_t)\s+\w+;", body, re.M))
    assert bits == 8 * mn.HEADER_LEN == 8 * len(mn.MetaNet())
    assert len(mn.FwdKey()) == mn.KEY_LEN
    pkt = mn.MetaNet(kind=mn.EXCEPTION, reason=mn.TTL_EXPIRED, fastpath=3, meta_if=2,
                     tunnel_src_addr="1.2.3.4", tunnel_src_port=9) / IP(dst="10.0.0.1") / UDP()
    raw = bytes(pkt)
    assert raw[0] == mn.MAGIC and raw[0] >> 4 != 4
    back = mn.MetaNet(raw)
    assert back.reason == mn.TTL_EXPIRED and back[IP].dst == "10.0.0.1"
    fk = mn.MetaNet(bytes(mn.MetaNet() / mn.FwdKey(dst_addr="5.6.7.8", src_port=1) / IP()))
    assert fk[mn.FwdKey].dst_addr == "5.6.7.8" and IP in fk


def test_slice_library_finds_its_settings(tmp_path, monkeypatch):
    from slices.client import Slice
    from slices.client import SppError as LibError
    monkeypatch.delenv("SPP_CONTROLLER", raising=False)
    monkeypatch.delenv("SPP_SECRET", raising=False)
    monkeypatch.setenv("SPP_DIR", str(tmp_path))
    with pytest.raises(LibError) as e:
        Slice()
    assert e.value.code == 1
    (tmp_path / "controller").write_text("http://127.0.0.1:1\n")
    (tmp_path / "secret").write_text("abc\n")
    s = Slice()
    assert (s.controller, s.secret) == ("http://127.0.0.1:1", "abc")
    with pytest.raises(LibError) as e:
        s.get_interfaces()                       # nobody listens on port 1
    assert e.value.name == "EUNREACH"


def test_a_change_cancelled_before_it_runs_changes_nothing(tmp_path):
    """A request's task cancelled while its change waits in the node's queue
    (the caller left): the change never runs, and the group it would have
    joined commits without it; a running change cannot be cancelled."""
    from controller.executor import NodeExecutor

    store = Store(tmp_path / "db")
    ex = NodeExecutor("n", store, {}, repair=lambda switches: None)
    try:
        gate, ran = threading.Event(), []
        blocker = ex.submit(lambda ch: gate.wait(5))       # holds the executor
        time.sleep(0.1)
        assert not blocker.cancel()                          # running: too late
        left = ex.submit(lambda ch: ran.append("left"))
        stays = ex.submit(lambda ch: ran.append("stays") or "ok")
        assert left.cancel()
        gate.set()
        assert stays.result(timeout=5) == "ok"
        assert blocker.result(timeout=5) is True
        assert ran == ["stays"] and left.cancelled()
    finally:
        ex.stop()
        store.close()


def test_a_failed_commit_is_answered_and_repaired(tmp_path):
    """COMMIT itself fails (here a deferred foreign key; in life a full disk):
    the group is rolled back, the node's switches are repaired to the
    database, each change is answered (EINTERNAL, nothing changed; a change
    refused on its own keeps its own error), and the executor goes on."""
    from controller.executor import NodeExecutor

    store = Store(tmp_path / "db")
    store.db.executescript(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);")
    repaired = []
    ex = NodeExecutor("n", store, {}, repair=lambda switches: repaired.append(switches))
    try:
        gate = threading.Event()
        first = ex.submit(lambda ch: gate.wait(5))              # holds the queue
        time.sleep(0.1)

        def orphan(ch):
            store.x("INSERT INTO child VALUES (42)")            # no parent 42: COMMIT fails
        def refused(ch):
            raise SppError("ENOENT", "no such thing")

        bad, own = ex.submit(orphan), ex.submit(refused)
        gate.set()
        first.result(timeout=5)
        with pytest.raises(SppError) as e:
            bad.result(timeout=5)
        assert e.value.error.name == "EINTERNAL" and "nothing was changed" in e.value.message
        with pytest.raises(SppError) as e:
            own.result(timeout=5)
        assert e.value.error.name == "ENOENT"
        assert repaired == [set()]                  # (no switch here: none to repair)
        assert ex.submit(lambda ch: store.scalar("SELECT COUNT(*) FROM child")).result(5) == 0
    finally:
        ex.stop()
        store.close()
