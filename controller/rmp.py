"""RMP, the resource management proxy: the SPP slice API.

Every call names the slice's own local IDs (fastpath, meta-interface, filter,
queue, stats index, endpoint, periodic job); the RMP finds the slice's record
for each and translates it to global IDs, so another slice's resources look
exactly like non-existent ones (ENOENT). Resource requests go through the
SRM; table entries come from translate.py; every change runs in its node's
executor (executor.py): one consistent view, committed only when the
switches took it. Slice administration and authentication are in slices.py.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from contextlib import contextmanager

from . import pipeline as pl
from . import translate as tr
from .errors import SppError
from .limits import MAX_FILTER_ID
from .p4rt import DELETE, INSERT, MODIFY, CounterCell, Entry, MeterCell
from .srm import ENDPOINT_PORTS, META_IF_PORTS, Srm, lowest_free
from .store import dumps, loads
from .testbed import Testbed

log = logging.getLogger(__name__)

CODE_OPTIONS = ("ipv4",)
#: lookup_fltr looks a key up under each mask the fastpath's filters use, up
#: to this many masks; past it, it scans the filters (in SQLite)
MAX_LOOKUP_MASKS = 64

#: the slice API functions that change state (each runs as a change in its
#: node's executor); the others only read
CHANGES = frozenset({
    "alloc_fastpath", "free_fastpath", "resrv_fpath_ifbw", "reles_fpath_ifbw",
    "alloc_udp_tunnel", "free_udp_tunnel", "alloc_endpoint", "free_endpoint", "write_fltr",
    "update_result", "rem_fltr_byfid", "rem_fltr_bykey", "bind_queue", "set_queue_params",
    "clear_stats", "mem_write", "create_periodic", "delete_periodic", "set_callback"})
#: changes of one table entry, found by its key in the database: a small
#: fixed cost (a batch may queue more of them at once, api.call_batch)
ENTRY_CHANGES = frozenset({"write_fltr", "update_result", "rem_fltr_byfid", "rem_fltr_bykey"})
PROTOCOLS = {"udp": 17, "tcp": 6}

# read_stats flags (one byte, as in the SPP): which of the four counters.
STATS_PRE_PACKETS = 0x01
STATS_PRE_BYTES = 0x02
STATS_POST_PACKETS = 0x04
STATS_POST_BYTES = 0x08
STATS_ALL = 0x0F


def check_flags(flags: int):
    if not 0 < flags <= STATS_ALL:
        raise SppError("EINVAL", f"flags {flags:#x}: use bits 0x01 0x02 0x04 0x08")


def stats_view(flags: int, pre, post) -> dict:
    out = {}
    if flags & STATS_PRE_PACKETS:
        out["pre_packets"] = pre.packets
    if flags & STATS_PRE_BYTES:
        out["pre_bytes"] = pre.bytes
    if flags & STATS_POST_PACKETS:
        out["post_packets"] = post.packets
    if flags & STATS_POST_BYTES:
        out["post_bytes"] = post.bytes
    return out


#: local IDs a slice sees (fastpaths, meta-interfaces, endpoints, periodic jobs)
LOCAL_IDS = range(1, 1 << 16)


def local_id(used: set[int], what: str) -> int:
    """The lowest free local ID (1..65535, what the API's U16 fields carry)."""
    n = lowest_free(used, LOCAL_IDS)
    if n is None:
        raise SppError("EQUOTA", f"all {len(LOCAL_IDS)} {what} IDs in use")
    return n


def _ip(v) -> int:
    """An address (dotted quad, already valid) or integer as an integer."""
    return int.from_bytes(socket.inet_aton(v), "big") if isinstance(v, str) else int(v)


def lookup_key(lookup_type: int, key: dict) -> dict:
    """The key a lookup of this type matches with. A substrate-only lookup
    (type 1, a packet the slice sent back) carries no meta-interface, source
    address or protocol: filter.p4 looks them up as 0, whatever the caller
    puts in ``key``."""
    if lookup_type == pl.LOOKUP_SUBSTRATE:
        return {**key, "meta_if": 0, "src_addr": 0, "protocol": 0}
    return key


def filter_matches(data: dict, lookup_type: int, key: dict) -> bool:
    """Would a packet with ``key`` hit this filter (the data plane's rule)?"""
    if data["type"] != lookup_type:
        return False
    key = lookup_key(lookup_type, key)
    for f in pl.FILTER_KEY_FIELDS:
        m = _ip(data["mask"].get(f, 0))
        if (_ip(key.get(f, 0)) & m) != (_ip(data["key"].get(f, 0)) & m):
            return False
    return True


def normalize_key(key: dict, mask: dict) -> tuple[dict, dict]:
    """Keys compare equal when they match the same packets."""
    k, m = {}, {}
    for f in pl.FILTER_KEY_FIELDS:
        mv = _ip(mask.get(f, 0))
        if mv:
            k[f], m[f] = _ip(key.get(f, 0)) & mv, mv
    return k, m


class Rmp:
    """The slice API over the SRM, the translation and the node executors.

    A call that changes state is a *change* run by its node's executor
    (``self.change``): its lookups, checks and writes see one consistent
    state, and no other change of that node runs in between. A call that
    only reads uses the calling thread's connection (committed state) and,
    where it reads a switch, checks afterwards that what it read still
    belongs to the slice.
    """

    def __init__(self, testbed: Testbed, srm: Srm, scds: dict, stores: dict, executors: dict):
        self.testbed = testbed
        self.srm = srm
        self.scds = scds
        self.stores = stores          # node name -> Store
        self.executors = executors    # node name -> NodeExecutor
        self._tl = threading.local()

    # ---- plumbing ----
    def node(self, sl: dict):
        return self.testbed.node(sl["node"])

    def db(self, sl: dict):
        return self.stores[sl["node"]]

    def lc_name(self, sl: dict) -> str:
        return self.node(sl).lc.name

    def change(self, sl: dict, fn):
        """Run ``fn(slice, change)`` in the slice's node executor, with the
        slice's record re-read there (a slice deleted meanwhile is unknown).
        Inside ``deferred()``, return its Future instead of waiting."""
        def run(ch):
            cur = self.db(sl).one("SELECT * FROM slices WHERE id = ?", sl["id"])
            if cur is None:
                raise SppError("EAUTH", f"slice {sl['name']} no longer exists")
            return fn(cur, ch)
        fut = self.executors[sl["node"]].submit(run)
        return fut if getattr(self._tl, "deferred", False) else fut.result()

    @contextmanager
    def deferred(self):
        """Calls that change state return Futures instead of waiting for them,
        so a batch of calls is grouped into one commit (api.py's batch)."""
        self._tl.deferred = True
        try:
            yield
        finally:
            self._tl.deferred = False

    # ---- lookups by local ID ----
    def fastpath(self, sl: dict, fpid: int) -> dict:
        fp = self.db(sl).one("SELECT * FROM fastpaths WHERE slice_id = ? AND local_id = ?",
                             sl["id"], fpid)
        if fp is None:
            raise SppError("ENOENT", f"no fastpath {fpid}")
        return fp

    def read_cells(self, sl: dict, fp: dict, read):
        """``read()`` of the fastpath's cells on its NPE (counters, SRAM, queue
        lengths), not overlapped by a group freeing it (executor.read_cells),
        then checked: was the partition this fastpath's all along? (Fastpath
        row IDs are never reused, so if the row is still there it was there
        throughout.)"""
        out = self.executors[sl["node"]].read_cells(fp["id"], read)
        if self.db(sl).one("SELECT 1 FROM fastpaths WHERE id = ?", fp["id"]) is None:
            raise SppError("ENOENT", f"no fastpath {fp['local_id']}")
        return out

    def meta_if(self, sl: dict, fp: dict, mi: int) -> dict:
        row = self.db(sl).one("SELECT * FROM meta_ifs WHERE fastpath_id = ? AND mi = ?",
                              fp["id"], mi)
        if row is None:
            raise SppError("ENOENT", f"no meta-interface {mi} on fastpath {fp['local_id']}")
        return row

    def interface(self, sl: dict, ifn: int):
        iface = self.node(sl).interface(ifn)
        if iface is None:
            raise SppError("ENOENT", f"no interface {ifn}")
        return iface

    def fpinfo(self, sl: dict, fp: dict) -> dict:
        npe = self.node(sl).npe(fp["npe"])
        return {"fpid": fp["local_id"], "copt": fp["copt"], "npe_addr": npe.addr,
                "ld_endpoint": {"addr": sl["data_addr"], "port": fp["ld_port"], "proto": 17},
                "exc_endpoint": {"addr": sl["data_addr"], "port": fp["exc_port"], "proto": 17},
                "ret_endpoint": {"addr": npe.addr, "port": fp["ret_port"], "proto": 17},
                "bw": fp["bw_kbps"], "filters": fp["n_filters"], "queues": fp["n_queues"],
                "buffers": fp["n_buffers"], "stats": fp["n_stats"], "sram": fp["sram_words"],
                "dram": fp["dram_bytes"]}

    # ---- fastpaths ----
    def alloc_fastpath(self, sl, copt, bw, filters, queues, buffers, stats, sram, dram) -> dict:
        if copt not in CODE_OPTIONS:
            raise SppError("ENOTSUP", f"code option {copt[:16]!r} not supported (have: "
                                      f"{', '.join(CODE_OPTIONS)})")
        req = {"bw_kbps": bw, "n_filters": filters, "n_queues": queues, "n_buffers": buffers,
               "n_stats": stats, "sram_words": sram, "dram_bytes": dram}

        def change(sl, ch):
            db, node = self.db(sl), self.node(sl)
            self.srm.check_quota(sl, "fastpaths")
            place = self.srm.place_fastpath(node, req, sl)
            local = local_id({r["local_id"] for r in db.q(
                "SELECT local_id FROM fastpaths WHERE slice_id = ?", sl["id"])}, "fastpath")
            ld_port, exc_port = self.srm.slice_ports(sl, 2)
            fid = db.x(
                "INSERT INTO fastpaths (slice_id, local_id, node, npe, gid, copt, bw_kbps, "
                "n_filters, n_queues, n_buffers, n_stats, sram_words, dram_bytes, stats_base, "
                "queue_base, sram_base, ret_port, ld_port, exc_port) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                sl["id"], local, sl["node"], place["npe"], place["gid"], copt, bw, filters,
                queues, buffers, stats, sram, dram, place["stats_base"], place["queue_base"],
                place["sram_base"], place["ret_port"], ld_port, exc_port).lastrowid
            fp = db.one("SELECT * FROM fastpaths WHERE id = ?", fid)
            npe = fp["npe"]
            # The partition starts clean, whatever its previous owner left.
            ch.write(npe, [(MODIFY, CounterCell(c, fp["stats_base"] + i))
                           for c in (pl.Npe.STATS_PRE, pl.Npe.STATS_POST) for i in range(stats)])
            ch.register_fill(npe, pl.Npe.QUEUE_LEN, fp["queue_base"], queues)
            # Bandwidth is policed from now on: queues closed until bound, the
            # fastpath at its bw (docs/npe.md).
            ch.write(npe, [(MODIFY, MeterCell(pl.Npe.QUEUE_RATE, fp["queue_base"] + q,
                                              *tr.queue_meter_rate(0)))
                           for q in range(queues)]
                     + [(MODIFY, MeterCell(pl.Npe.FASTPATH_RATE, fp["gid"],
                                           *tr.queue_meter_rate(bw)))])
            # ... and its inbound packets at the LC, before they cost the NPE
            # anything: the NPE's packet budget, shared anew by its fastpaths.
            ch.write(self.lc_name(sl), self._police_meters(sl, node.npe(npe)))
            ch.register_fill(npe, pl.Npe.SRAM, fp["sram_base"], sram)
            ch.write(npe, [(INSERT, e) for e in
                           tr.fastpath_entries(fp, sl, node.npe(npe))])
            return self.fpinfo(sl, fp)
        return self.change(sl, change)

    def _fastpath_teardown(self, sl, fp, ch):
        """Everything a fastpath holds on the switches, deleted."""
        db, node = self.db(sl), self.node(sl)
        npe = node.npe(fp["npe"])
        npe_ups, lc_ups = [], []
        for f in db.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
            npe_ups.append((DELETE, self._filter_entry(sl, fp, f["fid"], loads(f["data"]))))
        for q in db.q("SELECT * FROM queues WHERE fastpath_id = ?", fp["id"]):
            npe_ups += [(DELETE, e) for e in tr.queue_entries(fp, q)]
        for mi in db.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?", fp["id"]):
            n_e, l_e = tr.meta_if_entries(fp, mi, node, npe)
            npe_ups += [(DELETE, e) for e in n_e]
            lc_ups += [(DELETE, e) for e in l_e]
        npe_ups += [(DELETE, e) for e in tr.fastpath_entries(fp, sl, npe)]
        npe_ups += [(MODIFY, MeterCell(pl.Npe.QUEUE_RATE, fp["queue_base"] + q))
                    for q in range(fp["n_queues"])]
        npe_ups.append((MODIFY, MeterCell(pl.Npe.FASTPATH_RATE, fp["gid"])))
        lc_ups.append((MODIFY, MeterCell(pl.Lc.POLICE,
                                         tr.lc_police_index(node, npe, fp["gid"]))))
        ch.write(self.lc_name(sl), lc_ups)
        ch.write(fp["npe"], npe_ups)
        db.x("DELETE FROM fastpaths WHERE id = ?", fp["id"])   # cascades
        ch.free(fp["id"])
        ch.write(self.lc_name(sl), self._police_meters(sl, npe))

    def free_fastpath(self, sl, fpid):
        def change(sl, ch):
            self._fastpath_teardown(sl, self.fastpath(sl, fpid), ch)
        return self.change(sl, change)

    # ---- interfaces ----
    def get_interfaces(self, sl) -> list[int]:
        return [i.ifn for i in self.node(sl).interfaces]

    def get_ifn(self, sl, addr) -> int:
        for i in self.node(sl).interfaces:
            if i.addr == addr:
                return i.ifn
        raise SppError("ENOENT", f"no interface with address {addr}")

    def get_ifattrs(self, sl, ifn) -> dict:
        iface = self.interface(sl, ifn)
        return {"ifn": ifn, "addr": iface.addr,
                "type": "peering" if iface.peering else "non-peering",
                "linkbw": iface.bandwidth_kbps,
                "availbw": self.srm.available_bw(self.node(sl), ifn)}

    def get_ifpeer(self, sl, ifn) -> str:
        iface = self.interface(sl, ifn)
        if not iface.peering:
            raise SppError("EINVAL", f"interface {ifn} is not a peering interface")
        return iface.peer

    # ---- bandwidth ----
    def reserved(self, sl, fp, ifn) -> int:
        return self.db(sl).scalar("SELECT bw_kbps FROM reservations WHERE fastpath_id = ? "
                                  "AND ifn = ?", fp["id"], ifn) or 0

    def mi_bw_on(self, sl, fp, ifn) -> int:
        return self.db(sl).scalar("SELECT COALESCE(SUM(bw_kbps), 0) FROM meta_ifs "
                                  "WHERE fastpath_id = ? AND ifn = ?", fp["id"], ifn)

    def resrv_fpath_ifbw(self, sl, fpid, ifn, bw) -> dict:
        self.interface(sl, ifn)

        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            total = db.scalar("SELECT COALESCE(SUM(bw_kbps), 0) FROM reservations "
                              "WHERE fastpath_id = ?", fp["id"])
            if total + bw > fp["bw_kbps"]:
                raise SppError("ENOBW", f"fastpath {fpid} was allocated {fp['bw_kbps']} kb/s, "
                                        f"{total} kb/s already reserved")
            self.srm.check_reservation(self.node(sl), ifn, bw, sl)
            now = self.reserved(sl, fp, ifn) + bw
            db.x("INSERT OR REPLACE INTO reservations VALUES (?, ?, ?)", fp["id"], ifn, now)
            return {"ifn": ifn, "reserved": now}
        return self.change(sl, change)

    def reles_fpath_ifbw(self, sl, fpid, ifn, bw) -> dict:
        self.interface(sl, ifn)

        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            have = self.reserved(sl, fp, ifn)
            if bw > have:
                raise SppError("EINVAL", f"only {have} kb/s reserved on interface {ifn}")
            used = self.mi_bw_on(sl, fp, ifn)
            if have - bw < used:
                raise SppError("EBUSY", f"meta-interfaces on interface {ifn} use {used} kb/s")
            if have == bw:
                db.x("DELETE FROM reservations WHERE fastpath_id = ? AND ifn = ?", fp["id"], ifn)
            else:
                db.x("UPDATE reservations SET bw_kbps = ? WHERE fastpath_id = ? AND ifn = ?",
                     have - bw, fp["id"], ifn)
            return {"ifn": ifn, "reserved": have - bw}
        return self.change(sl, change)

    # ---- meta-interfaces ----
    def alloc_udp_tunnel(self, sl, fpid, ifn, port, bw) -> dict:
        iface = self.interface(sl, ifn)

        def change(sl, ch):
            db, node, fp = self.db(sl), self.node(sl), self.fastpath(sl, fpid)
            free = self.reserved(sl, fp, ifn) - self.mi_bw_on(sl, fp, ifn)
            if bw > free:
                raise SppError("ENOBW", f"fastpath {fpid} has {free} kb/s reserved and unused "
                                        f"on interface {ifn}; reserve more with resrv_fpath_ifbw")
            self.srm.check_quota(sl, "meta_ifs")
            self.srm.check_meta_if_room(node, fp["npe"])
            port_ = self.srm.alloc_port(sl["node"], iface.addr, 17, port, META_IF_PORTS, sl)
            mi = local_id({r["mi"] for r in db.q(
                "SELECT mi FROM meta_ifs WHERE fastpath_id = ?", fp["id"])}, "meta-interface")
            db.x("INSERT INTO meta_ifs VALUES (?, ?, ?, ?, ?, ?, ?)",
                 fp["id"], mi, sl["node"], ifn, iface.addr, port_, bw)
            row = self.meta_if(sl, fp, mi)
            n_e, l_e = tr.meta_if_entries(fp, row, node, node.npe(fp["npe"]))
            ch.write(fp["npe"], [(INSERT, e) for e in n_e])
            ch.write(self.lc_name(sl), [(INSERT, e) for e in l_e])
            return {"mi": mi, **self._endpoint(row, iface)}
        return self.change(sl, change)

    @staticmethod
    def _endpoint(row, iface) -> dict:
        out = {"ifn": row["ifn"], "addr": row["addr"], "port": row["port"], "proto": 17,
               "bw": row["bw_kbps"], "peering": iface.peering}
        if iface.peering:
            out["peer"] = iface.peer
        return out

    def get_endpoint(self, sl, fpid, mi) -> dict:
        with self.db(sl).read():
            fp = self.fastpath(sl, fpid)
            row = self.meta_if(sl, fp, mi)
        return {"mi": mi, **self._endpoint(row, self.interface(sl, row["ifn"]))}

    def free_udp_tunnel(self, sl, fpid, mi):
        def change(sl, ch):
            db, node, fp = self.db(sl), self.node(sl), self.fastpath(sl, fpid)
            row = self.meta_if(sl, fp, mi)
            for f in db.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
                d = loads(f["data"])
                if d["result"]["action"] == "forward" and d["result"]["meta_if"] == mi:
                    raise SppError("EBUSY", f"filter {f['fid']} forwards to meta-interface {mi}")
                # A filter keyed on the meta-interface would match packets of
                # the next tunnel given the same number: remove it first.
                m = d["mask"].get("meta_if", 0)
                keyed = d["key"].get("meta_if", 0) & m == mi & m
                if d["type"] == pl.LOOKUP_META_IF and m and keyed:
                    raise SppError("EBUSY", f"filter {f['fid']}'s key names meta-interface {mi}")
            if db.one("SELECT qid FROM queues WHERE fastpath_id = ? AND mi = ?", fp["id"], mi):
                raise SppError("EBUSY", f"queues are bound to meta-interface {mi}")
            n_e, l_e = tr.meta_if_entries(fp, row, node, node.npe(fp["npe"]))
            db.x("DELETE FROM meta_ifs WHERE fastpath_id = ? AND mi = ?", fp["id"], mi)
            ch.write(self.lc_name(sl), [(DELETE, e) for e in l_e])
            ch.write(fp["npe"], [(DELETE, e) for e in n_e])
        return self.change(sl, change)

    # ---- endpoints (LC NAT) ----
    def alloc_endpoint(self, sl, ifn, port, proto, slice_port) -> dict:
        iface = self.interface(sl, ifn)
        if proto not in PROTOCOLS:
            raise SppError("EINVAL", f"protocol must be one of {', '.join(PROTOCOLS)}")
        pnum = PROTOCOLS[proto]

        def change(sl, ch):
            db = self.db(sl)
            self.srm.check_quota(sl, "endpoints")
            self.srm.check_endpoint_room(self.node(sl))
            port_ = self.srm.alloc_port(sl["node"], iface.addr, pnum, port, ENDPOINT_PORTS, sl)
            sport = slice_port or port_
            if db.one("SELECT 1 FROM endpoints WHERE slice_id = ? AND proto = ? AND "
                      "slice_port = ?", sl["id"], pnum, sport):
                raise SppError("EEXIST", f"slice port {sport}/{proto} already forwarded")
            eid = local_id({r["eid"] for r in db.q(
                "SELECT eid FROM endpoints WHERE slice_id = ?", sl["id"])}, "endpoint")
            db.x("INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sl["id"], eid,
                 sl["node"], ifn, iface.addr, pnum, port_, sport)
            ep = db.one("SELECT * FROM endpoints WHERE slice_id = ? AND eid = ?", sl["id"], eid)
            ch.write(self.lc_name(sl), [(INSERT, e) for e in tr.endpoint_entries(ep, sl)])
            return self._ep_view(ep)
        return self.change(sl, change)

    @staticmethod
    def _ep_view(ep) -> dict:
        proto = {v: k for k, v in PROTOCOLS.items()}[ep["proto"]]
        return {"eid": ep["eid"], "ifn": ep["ifn"], "addr": ep["addr"], "port": ep["port"],
                "proto": proto, "slice_port": ep["slice_port"]}

    def _endpoint_teardown(self, sl, ep, ch):
        self.db(sl).x("DELETE FROM endpoints WHERE slice_id = ? AND eid = ?", sl["id"],
                      ep["eid"])
        ch.write(self.lc_name(sl), [(DELETE, e) for e in tr.endpoint_entries(ep, sl)])

    def free_endpoint(self, sl, eid):
        def change(sl, ch):
            ep = self.db(sl).one("SELECT * FROM endpoints WHERE slice_id = ? AND eid = ?",
                                 sl["id"], eid)
            if ep is None:
                raise SppError("ENOENT", f"no endpoint {eid}")
            self._endpoint_teardown(sl, ep, ch)
        return self.change(sl, change)

    # ---- filters ----
    def _filter(self, sl, fp, fid) -> dict:
        row = self.db(sl).one("SELECT data FROM filters WHERE fastpath_id = ? AND fid = ?",
                              fp["id"], fid)
        if row is None:
            raise SppError("ENOENT", f"no filter {fid} on fastpath {fp['local_id']}")
        return loads(row["data"])

    def _filter_entry(self, sl, fp, fid, data) -> Entry:
        """The filter's entry; one that forwards carries its meta-interface's
        outer header (which exists: _check_result, free_udp_tunnel)."""
        r = data["result"]
        encap = (tr.meta_if_encap(self.meta_if(sl, fp, r["meta_if"]), self.node(sl))
                 if r["action"] == "forward" else None)
        return tr.filter_entry(fp, fid, data, encap)

    def _check_result(self, sl, fp, result: dict):
        if result["stats"] >= fp["n_stats"] and (fp["n_stats"] or result["stats"]):
            raise SppError("ERANGE", f"stats index {result['stats']} outside 0.."
                                     f"{fp['n_stats'] - 1}")
        if result["action"] != "forward":
            return
        mrow = self.meta_if(sl, fp, result["meta_if"])
        self.srm.check_next_hop(self.node(sl), mrow["ifn"], result["nh_addr"])
        if result["queue"] >= fp["n_queues"]:
            raise SppError("ERANGE", f"queue {result['queue']} outside 0..{fp['n_queues'] - 1}")
        q = self.db(sl).one("SELECT mi FROM queues WHERE fastpath_id = ? AND qid = ?",
                            fp["id"], result["queue"])
        if q is None or q["mi"] != result["meta_if"]:
            raise SppError("EINVAL", f"queue {result['queue']} is not bound to meta-interface "
                                     f"{result['meta_if']} (bind_queue)")

    @staticmethod
    def _filter_view(fid, data) -> dict:
        """Keys are stored as integers; addresses are shown as dotted quads."""
        view = {"fid": fid, **data}
        for part in ("key", "mask"):
            view[part] = {f: (str(ipaddress.IPv4Address(v)) if f.endswith("_addr") else v)
                          for f, v in data[part].items()}
        return view

    def write_fltr(self, sl, fpid, fid, lookup_type, key, mask, result) -> dict:
        if not 0 <= fid <= MAX_FILTER_ID:
            raise SppError("ERANGE", f"filter id {fid} outside 0..{MAX_FILTER_ID}")
        key, mask = normalize_key(key, mask)
        data = {"type": lookup_type, "key": key, "mask": mask, "result": result}

        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            self._check_result(sl, fp, result)
            if db.one("SELECT 1 FROM filters WHERE fastpath_id = ? AND fid = ?", fp["id"], fid):
                raise SppError("EEXIST", f"filter {fid} exists (update_result changes it)")
            n = db.scalar("SELECT n FROM filter_counts WHERE fastpath_id = ?", fp["id"]) or 0
            if n >= fp["n_filters"]:
                raise SppError("EQUOTA", f"fastpath {fpid} has all its {fp['n_filters']} filters")
            db.x("INSERT INTO filters VALUES (?, ?, ?)", fp["id"], fid, dumps(data))
            ch.write(fp["npe"], [(INSERT, self._filter_entry(sl, fp, fid, data))])
            return self._filter_view(fid, data)
        return self.change(sl, change)

    def update_result(self, sl, fpid, fid, result) -> dict:
        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            data = self._filter(sl, fp, fid)
            self._check_result(sl, fp, result)
            data["result"] = result
            db.x("UPDATE filters SET data = ? WHERE fastpath_id = ? AND fid = ?",
                 dumps(data), fp["id"], fid)
            ch.write(fp["npe"], [(MODIFY, self._filter_entry(sl, fp, fid, data))])
            return self._filter_view(fid, data)
        return self.change(sl, change)

    def get_fltr_byfid(self, sl, fpid, fid) -> dict:
        with self.db(sl).read():
            fp = self.fastpath(sl, fpid)
            return self._filter_view(fid, self._filter(sl, fp, fid))

    _BYKEY = ("SELECT fid FROM filters INDEXED BY filters_bykey WHERE fastpath_id = ? "
              "AND json_extract(data, '$.type') = ? AND json_extract(data, '$.key') = ? "
              "AND json_extract(data, '$.mask') = ? ORDER BY fid LIMIT 1")

    def _fid_bykey(self, sl, fp, lookup_type, key, mask) -> int:
        key, mask = normalize_key(key, mask)
        row = self.db(sl).one(self._BYKEY, fp["id"], lookup_type, dumps(key), dumps(mask))
        if row is None:
            raise SppError("ENOENT", "no filter with that key and mask")
        return row["fid"]

    def _fid_matching(self, sl, fp, lookup_type, key) -> int | None:
        """The lowest ID of the fastpath's filters a packet with ``key`` hits
        (filter_matches' rule), found by SQLite, which holds no Python lock
        meanwhile: for each mask the filters use, the key under that mask
        looked up in the filters_bykey index; with more than MAX_LOOKUP_MASKS
        masks, one scan of the filters, each matched in SQL."""
        key = lookup_key(lookup_type, key)
        db = self.db(sl)
        masks = db.q("SELECT DISTINCT json_extract(data, '$.mask') AS mask FROM filters "
                     "INDEXED BY filters_bykey WHERE fastpath_id = ? "
                     "AND json_extract(data, '$.type') = ? LIMIT ?",
                     fp["id"], lookup_type, MAX_LOOKUP_MASKS + 1)
        if len(masks) <= MAX_LOOKUP_MASKS:
            fids = [db.scalar(self._BYKEY, fp["id"], lookup_type,
                              dumps(normalize_key(key, loads(m["mask"]))[0]), m["mask"])
                    for m in masks]
            return min((f for f in fids if f is not None), default=None)
        match = " AND ".join(f"(? & ifnull(json_extract(data, '$.mask.{f}'), 0)) = "
                             f"ifnull(json_extract(data, '$.key.{f}'), 0)"
                             for f in pl.FILTER_KEY_FIELDS)
        return db.scalar(f"SELECT fid FROM filters WHERE fastpath_id = ? "
                         f"AND json_extract(data, '$.type') = ? AND {match} ORDER BY fid LIMIT 1",
                         fp["id"], lookup_type, *(_ip(key.get(f, 0))
                                                  for f in pl.FILTER_KEY_FIELDS))

    def get_fltr_bykey(self, sl, fpid, lookup_type, key, mask) -> dict:
        with self.db(sl).read():
            fp = self.fastpath(sl, fpid)
            fid = self._fid_bykey(sl, fp, lookup_type, key, mask)
            return self._filter_view(fid, self._filter(sl, fp, fid))

    def lookup_fltr(self, sl, fpid, lookup_type, key) -> dict:
        """The filter a packet with this key would hit (lowest matching ID)."""
        with self.db(sl).read():
            fp = self.fastpath(sl, fpid)
            fid = self._fid_matching(sl, fp, lookup_type, key)
            if fid is not None:
                return self._filter_view(fid, self._filter(sl, fp, fid))
        raise SppError("ENOENT", "no filter matches that key")

    def _rem_fltr(self, sl, fp, fid, ch):
        data = self._filter(sl, fp, fid)
        self.db(sl).x("DELETE FROM filters WHERE fastpath_id = ? AND fid = ?", fp["id"], fid)
        ch.write(fp["npe"], [(DELETE, self._filter_entry(sl, fp, fid, data))])

    def rem_fltr_byfid(self, sl, fpid, fid):
        def change(sl, ch):
            self._rem_fltr(sl, self.fastpath(sl, fpid), fid, ch)
        return self.change(sl, change)

    def rem_fltr_bykey(self, sl, fpid, lookup_type, key, mask) -> dict:
        def change(sl, ch):
            fp = self.fastpath(sl, fpid)
            fid = self._fid_bykey(sl, fp, lookup_type, key, mask)
            self._rem_fltr(sl, fp, fid, ch)
            return {"fid": fid}
        return self.change(sl, change)

    # ---- queues ----
    def _queue(self, sl, fp, qid) -> dict:
        if not 0 <= qid < fp["n_queues"]:
            raise SppError("ERANGE", f"queue {qid} outside 0..{fp['n_queues'] - 1}")
        q = self.db(sl).one("SELECT * FROM queues WHERE fastpath_id = ? AND qid = ?",
                            fp["id"], qid)
        if q is None:
            raise SppError("ENOENT", f"queue {qid} is not bound (bind_queue)")
        return q

    def _queue_bw_on(self, sl, fp, mi, but_qid) -> int:
        return self.db(sl).scalar("SELECT COALESCE(SUM(bw_kbps), 0) FROM queues WHERE "
                                  "fastpath_id = ? AND mi = ? AND qid != ?", fp["id"], mi,
                                  but_qid)

    def _police_meters(self, sl, npe) -> list:
        """The LC packet meters of all the NPE's fastpaths (translate.police_rates)."""
        node = self.node(sl)
        fps = self.db(sl).q("SELECT * FROM fastpaths WHERE node = ? AND npe = ?",
                            node.name, npe.name)
        return [(MODIFY, MeterCell(pl.Lc.POLICE, tr.lc_police_index(node, npe, gid),
                                   *(rate or (None, 0))))
                for gid, rate in tr.police_rates(npe, fps).items()]

    def _queue_rates(self, sl, fp) -> dict[int, int]:
        db = self.db(sl)
        return tr.queue_rates(fp, db.q("SELECT * FROM queues WHERE fastpath_id = ?", fp["id"]),
                              db.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?", fp["id"]))

    def _queue_meters(self, sl, fp, before: dict[int, int]) -> list:
        """Meter cells of the fastpath's queues whose rate is not ``before``'s."""
        return [(MODIFY, MeterCell(pl.Npe.QUEUE_RATE, fp["queue_base"] + qid,
                                   *tr.queue_meter_rate(kbps)))
                for qid, kbps in self._queue_rates(sl, fp).items() if before.get(qid) != kbps]

    def bind_queue(self, sl, fpid, mi, qids: list[int]) -> dict:
        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            mrow = self.meta_if(sl, fp, mi)
            before = self._queue_rates(sl, fp)
            for qid in qids:
                if not 0 <= qid < fp["n_queues"]:
                    raise SppError("ERANGE", f"queue {qid} outside 0..{fp['n_queues'] - 1}")
            # A filter forwards through a queue to the meta-interface it was
            # bound to (_check_result); moved to another, the queue would
            # carry that one's rate onto the filter's interface, past its
            # reservation there.
            for f in db.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
                r = loads(f["data"])["result"]
                if r["action"] == "forward" and r["queue"] in qids and r["meta_if"] != mi:
                    raise SppError("EBUSY", f"filter {f['fid']} forwards through queue "
                                            f"{r['queue']} to meta-interface {r['meta_if']}")
            for qid in qids:
                q = db.one("SELECT * FROM queues WHERE fastpath_id = ? AND qid = ?",
                           fp["id"], qid)
                bw = q["bw_kbps"] if q else 0
                if bw and self._queue_bw_on(sl, fp, mi, qid) + bw > mrow["bw_kbps"]:
                    raise SppError("ENOBW", f"queue {qid}'s {bw} kb/s do not fit in "
                                            f"meta-interface {mi}")
                db.x("INSERT INTO queues (fastpath_id, qid, mi) VALUES (?, ?, ?) "
                     "ON CONFLICT DO UPDATE SET mi = excluded.mi", fp["id"], qid, mi)
            # Policed from now on, also without set_queue_params (queue_rates).
            ch.write(fp["npe"], self._queue_meters(sl, fp, before))
            return {"mi": mi, "queues": qids}
        return self.change(sl, change)

    def set_queue_params(self, sl, fpid, qid, threshold, bw) -> dict:
        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            q = self._queue(sl, fp, qid)
            mrow = self.meta_if(sl, fp, q["mi"])
            if threshold > fp["n_buffers"]:
                raise SppError("EQUOTA", f"threshold {threshold} over the fastpath's "
                                         f"{fp['n_buffers']} buffers")
            others = self._queue_bw_on(sl, fp, q["mi"], qid)
            if others + bw > mrow["bw_kbps"]:
                raise SppError("ENOBW", f"meta-interface {q['mi']} has {mrow['bw_kbps']} kb/s; "
                                        f"its other queues use {others}")
            new = dict(q, threshold=threshold, bw_kbps=bw)
            before = self._queue_rates(sl, fp)
            db.x("UPDATE queues SET threshold = ?, bw_kbps = ? WHERE fastpath_id = ? "
                 "AND qid = ?", threshold, bw, fp["id"], qid)
            old_e, new_e = tr.queue_entries(fp, q), tr.queue_entries(fp, new)
            if old_e and new_e:
                ups = [(MODIFY, e) for e in new_e]
            else:
                ups = [(DELETE, e) for e in old_e] + [(INSERT, e) for e in new_e]
            ch.write(fp["npe"], ups + self._queue_meters(sl, fp, before))
            return {"qid": qid, "mi": q["mi"], "threshold": threshold, "bw": bw}
        return self.change(sl, change)

    def get_queue_params(self, sl, fpid, qid) -> dict:
        with self.db(sl).read():
            q = self._queue(sl, self.fastpath(sl, fpid), qid)
        return {"qid": qid, "mi": q["mi"], "threshold": q["threshold"], "bw": q["bw_kbps"]}

    def get_queue_len(self, sl, fpid, qid) -> dict:
        with self.db(sl).read():
            fp = self.fastpath(sl, fpid)
            self._queue(sl, fp, qid)
        n = self.read_cells(sl, fp, lambda: self.scds[fp["npe"]].register_read(
            pl.Npe.QUEUE_LEN, fp["queue_base"] + qid, 1)[0])
        return {"qid": qid, "length": n}

    # ---- stats ----
    @staticmethod
    def _stats_index(fp, index):
        if not 0 <= index < fp["n_stats"]:
            raise SppError("ERANGE", f"stats index {index} outside the fastpath's "
                                     f"{fp['n_stats']} (0..{fp['n_stats'] - 1})")
        return fp["stats_base"] + index

    def read_stats(self, sl, fpid, index, flags) -> dict:
        check_flags(flags)
        fp = self.fastpath(sl, fpid)
        g = self._stats_index(fp, index)
        scd = self.scds[fp["npe"]]
        pre, post = self.read_cells(sl, fp, lambda: (
            scd.read_counter(pl.Npe.STATS_PRE, g), scd.read_counter(pl.Npe.STATS_POST, g)))
        return {"index": index, **stats_view(flags, pre, post)}

    def clear_stats(self, sl, fpid, index):
        def change(sl, ch):
            fp = self.fastpath(sl, fpid)
            g = self._stats_index(fp, index)
            ch.write(fp["npe"], [(MODIFY, CounterCell(c, g))
                                 for c in (pl.Npe.STATS_PRE, pl.Npe.STATS_POST)])
        return self.change(sl, change)

    # ---- memory ----
    @staticmethod
    def _mem_range(fp, offset, count):
        if offset < 0 or count < 0 or offset + count > fp["sram_words"]:
            raise SppError("ERANGE", f"words {offset}..{offset + count - 1} outside the "
                                     f"fastpath's {fp['sram_words']} words of SRAM")

    def mem_write(self, sl, fpid, offset, values: list[int]):
        def change(sl, ch):
            db, fp = self.db(sl), self.fastpath(sl, fpid)
            self._mem_range(fp, offset, len(values))
            old = {fp["sram_base"] + offset + i: 0 for i in range(len(values))}
            for r in db.q("SELECT offset, value FROM sram WHERE fastpath_id = ? AND offset "
                          "BETWEEN ? AND ?", fp["id"], offset, offset + len(values) - 1):
                old[fp["sram_base"] + r["offset"]] = r["value"]
            db.db.executemany("INSERT OR REPLACE INTO sram VALUES (?, ?, ?)",
                              [(fp["id"], offset + i, v) for i, v in enumerate(values)])
            ch.register_write(fp["npe"], pl.Npe.SRAM, {fp["sram_base"] + offset + i: v
                                                       for i, v in enumerate(values)}, old)
        return self.change(sl, change)

    def mem_read(self, sl, fpid, offset, count) -> list[int]:
        fp = self.fastpath(sl, fpid)
        self._mem_range(fp, offset, count)
        if count == 0:
            return []
        return self.read_cells(sl, fp, lambda: self.scds[fp["npe"]].register_read(
            pl.Npe.SRAM, fp["sram_base"] + offset, count))
