"""RMP, the resource management proxy: the SPP slice API.

Every call names the slice's own local IDs (fastpath, meta-interface, filter,
queue, stats index, endpoint, periodic job); the RMP finds the slice's record
for each and translates it to global IDs, so another slice's resources look
exactly like non-existent ones (ENOENT). Resource requests go through the
SRM; switch programming through the SCDs. Each call is one database
transaction, committed only when the switches took the change.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
from contextlib import contextmanager

from . import pipeline as pl
from . import scd as tr
from .errors import SppError
from .p4rt import DELETE, INSERT, MODIFY
from .srm import META_IF_PORTS, Srm
from .store import dumps, loads
from .testbed import Testbed

log = logging.getLogger(__name__)

CODE_OPTIONS = ("ipv4",)
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


def lowest_free(used, start=1):
    n = start
    while n in used:
        n += 1
    return n


def _ip(v) -> int:
    return int(ipaddress.IPv4Address(v)) if isinstance(v, str) else int(v)


def filter_matches(data: dict, lookup_type: int, key: dict) -> bool:
    """Would a packet with ``key`` hit this filter (the data plane's rule)?"""
    if data["type"] != lookup_type:
        return False
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
    """The slice API over the SRM and the SCDs (thread-safe: one call at a time)."""

    def __init__(self, store, testbed: Testbed, srm: Srm, scds: dict):
        self.store = store
        self.testbed = testbed
        self.srm = srm
        self.scds = scds
        self.lock = threading.RLock()

    # ---- plumbing ----
    def node(self, sl: dict):
        return self.testbed.node(sl["node"])

    def lc(self, sl: dict):
        return self.scds[self.node(sl).lc.name]

    def npe_scd(self, fp: dict):
        return self.scds[fp["npe"]]

    @contextmanager
    def change(self, node_name: str):
        """One transaction; if a switch failed half-way, put the node's
        switches back to what the (rolled back) database says."""
        with self.lock:
            try:
                with self.store.tx():
                    yield
            except SppError as e:
                if e.error.name == "ESWITCH":
                    self.resync(node_name)
                raise

    def resync(self, node_name: str):
        node = self.testbed.node(node_name)
        intents = tr.node_intent(self.store, node)
        for name, intent in intents.items():
            try:
                self.scds[name].reconcile(intent)
            except SppError as e:
                log.warning("resync of %s failed: %s", name, e.message)

    # ---- identity ----
    def authenticate(self, secret: str | None, client_addr: str | None) -> dict:
        if not secret:
            raise SppError("EAUTH", "no slice secret given (Authorization: Bearer <secret>)")
        sl = self.store.one("SELECT * FROM slices WHERE secret = ?", secret)
        if sl is None:
            raise SppError("EAUTH", "unknown slice secret")
        if client_addr != sl["mgmt_addr"]:
            raise SppError("EPERM", f"slice {sl['name']} may only call from {sl['mgmt_addr']}")
        return sl

    # ---- administration (not part of the slice API) ----
    def create_slice(self, name, node, mgmt_addr, data_addr, lc_port, mac) -> dict:
        nd = self.testbed.node(node)
        if nd is None:
            raise SppError("ENOENT", f"no node {node!r}")
        with self.change(node):
            if self.store.one("SELECT 1 FROM slices WHERE name = ? AND node = ?", name, node):
                raise SppError("EEXIST", f"slice {name} already exists on {node}")
            if self.store.one("SELECT 1 FROM slices WHERE node = ? AND "
                              "(data_addr = ? OR lc_port = ?)", node, data_addr, lc_port):
                raise SppError("EEXIST", f"address {data_addr} or LC port {lc_port} already used")
            secret = secrets.token_hex(16)
            sid = self.store.x(
                "INSERT INTO slices (name, node, secret, mgmt_addr, data_addr, lc_port, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                name, node, secret, mgmt_addr, data_addr, lc_port, mac).lastrowid
            sl = self.store.one("SELECT * FROM slices WHERE id = ?", sid)
            self.lc(sl).write([(INSERT, e) for e in tr.slice_entries(sl, nd)])
        return {"name": name, "node": node, "secret": secret}

    def delete_slice(self, name, node):
        sl = self.store.one("SELECT * FROM slices WHERE name = ? AND node = ?", name, node)
        if sl is None:
            raise SppError("ENOENT", f"no slice {name} on {node}")
        for fp in self.store.q("SELECT local_id FROM fastpaths WHERE slice_id = ?", sl["id"]):
            self.free_fastpath(sl, fp["local_id"])
        for ep in self.store.q("SELECT eid FROM endpoints WHERE slice_id = ?", sl["id"]):
            self.free_endpoint(sl, ep["eid"])
        with self.change(node):
            self.store.x("DELETE FROM slices WHERE id = ?", sl["id"])
            self.lc(sl).write([(DELETE, e) for e in tr.slice_entries(sl, self.node(sl))])

    def list_slices(self) -> list[dict]:
        return self.store.q("SELECT id, name, node, mgmt_addr, data_addr, lc_port FROM slices "
                            "ORDER BY node, name")

    # ---- lookups by local ID ----
    def fastpath(self, sl: dict, fpid: int) -> dict:
        fp = self.store.one("SELECT * FROM fastpaths WHERE slice_id = ? AND local_id = ?",
                            sl["id"], fpid)
        if fp is None:
            raise SppError("ENOENT", f"no fastpath {fpid}")
        return fp

    def meta_if(self, fp: dict, mi: int) -> dict:
        row = self.store.one("SELECT * FROM meta_ifs WHERE fastpath_id = ? AND mi = ?",
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
            raise SppError("ENOTSUP", f"code option {copt!r} not supported (have: "
                                      f"{', '.join(CODE_OPTIONS)})")
        node = self.node(sl)
        req = {"bw_kbps": bw, "n_filters": filters, "n_queues": queues, "n_buffers": buffers,
               "n_stats": stats, "sram_words": sram, "dram_bytes": dram}
        with self.change(sl["node"]):
            place = self.srm.place_fastpath(node, req)
            local = lowest_free({r["local_id"] for r in self.store.q(
                "SELECT local_id FROM fastpaths WHERE slice_id = ?", sl["id"])})
            ld_port, exc_port = self.srm.slice_ports(sl["id"], 2)
            fid = self.store.x(
                "INSERT INTO fastpaths (slice_id, local_id, node, npe, gid, copt, bw_kbps, "
                "n_filters, n_queues, n_buffers, n_stats, sram_words, dram_bytes, stats_base, "
                "queue_base, sram_base, ret_port, ld_port, exc_port) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                sl["id"], local, sl["node"], place["npe"], place["gid"], copt, bw, filters,
                queues, buffers, stats, sram, dram, place["stats_base"], place["queue_base"],
                place["sram_base"], place["ret_port"], ld_port, exc_port).lastrowid
            fp = self.store.one("SELECT * FROM fastpaths WHERE id = ?", fid)
            npe_scd = self.npe_scd(fp)
            # The partition starts clean, whatever its previous owner left.
            for counter in (pl.Npe.STATS_PRE, pl.Npe.STATS_POST):
                npe_scd.clear_counters(counter, fp["stats_base"], stats)
            npe_scd.register_fill(pl.Npe.SRAM, fp["sram_base"], sram, 0)
            # Bandwidth is policed from now on: queues closed until bound, the
            # fastpath at its bw, and its inbound packets at the LC, before they
            # cost the NPE anything (the NPE's packet budget, shared anew).
            for q in range(queues):
                npe_scd.set_meter(pl.Npe.QUEUE_RATE, fp["queue_base"] + q,
                                  tr.queue_meter_rate(0))
            npe_scd.set_meter(pl.Npe.FASTPATH_RATE, fp["gid"], tr.queue_meter_rate(bw))
            self._set_police(sl, node.npe(fp["npe"]))
            npe_scd.write([(INSERT, e) for e in
                           tr.fastpath_entries(fp, sl, node.npe(fp["npe"]))])
        return self.fpinfo(sl, fp)

    def free_fastpath(self, sl, fpid):
        fp = self.fastpath(sl, fpid)
        node = self.node(sl)
        npe = node.npe(fp["npe"])
        npe_updates, lc_updates = [], []
        for f in self.store.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
            npe_updates.append((DELETE, tr.filter_entry(fp, f["fid"], loads(f["data"]))))
        for q in self.store.q("SELECT * FROM queues WHERE fastpath_id = ?", fp["id"]):
            npe_updates += [(DELETE, e) for e in tr.queue_entries(fp, q)]
        for mi in self.store.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?", fp["id"]):
            n_e, l_e = tr.meta_if_entries(fp, mi, node, npe)
            npe_updates += [(DELETE, e) for e in n_e]
            lc_updates += [(DELETE, e) for e in l_e]
        npe_updates += [(DELETE, e) for e in tr.fastpath_entries(fp, sl, npe)]
        with self.change(sl["node"]):
            self.store.x("DELETE FROM fastpaths WHERE id = ?", fp["id"])   # cascades
            self.lc(sl).write(lc_updates)
            self.npe_scd(fp).write(npe_updates)
            for q in range(fp["n_queues"]):
                self.npe_scd(fp).set_meter(pl.Npe.QUEUE_RATE, fp["queue_base"] + q, None)
            self.npe_scd(fp).set_meter(pl.Npe.FASTPATH_RATE, fp["gid"], None)
            self.lc(sl).set_meter(pl.Lc.POLICE, tr.lc_police_index(node, npe, fp["gid"]), None)
            self._set_police(sl, npe)

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
    def reserved(self, fp, ifn) -> int:
        return self.store.scalar("SELECT bw_kbps FROM reservations WHERE fastpath_id = ? "
                                 "AND ifn = ?", fp["id"], ifn) or 0

    def mi_bw_on(self, fp, ifn) -> int:
        return self.store.scalar("SELECT COALESCE(SUM(bw_kbps), 0) FROM meta_ifs "
                                 "WHERE fastpath_id = ? AND ifn = ?", fp["id"], ifn)

    def resrv_fpath_ifbw(self, sl, fpid, ifn, bw) -> dict:
        fp = self.fastpath(sl, fpid)
        self.interface(sl, ifn)
        with self.change(sl["node"]):
            total = self.store.scalar("SELECT COALESCE(SUM(bw_kbps), 0) FROM reservations "
                                      "WHERE fastpath_id = ?", fp["id"])
            if total + bw > fp["bw_kbps"]:
                raise SppError("ENOBW", f"fastpath {fpid} was allocated {fp['bw_kbps']} kb/s, "
                                        f"{total} kb/s already reserved")
            self.srm.check_reservation(self.node(sl), ifn, bw)
            now = self.reserved(fp, ifn) + bw
            self.store.x("INSERT OR REPLACE INTO reservations VALUES (?, ?, ?)", fp["id"], ifn, now)
        return {"ifn": ifn, "reserved": now}

    def reles_fpath_ifbw(self, sl, fpid, ifn, bw) -> dict:
        fp = self.fastpath(sl, fpid)
        self.interface(sl, ifn)
        with self.change(sl["node"]):
            have = self.reserved(fp, ifn)
            if bw > have:
                raise SppError("EINVAL", f"only {have} kb/s reserved on interface {ifn}")
            used = self.mi_bw_on(fp, ifn)
            if have - bw < used:
                raise SppError("EBUSY", f"meta-interfaces on interface {ifn} use {used} kb/s")
            if have == bw:
                self.store.x("DELETE FROM reservations WHERE fastpath_id = ? AND ifn = ?",
                             fp["id"], ifn)
            else:
                self.store.x("UPDATE reservations SET bw_kbps = ? WHERE fastpath_id = ? "
                             "AND ifn = ?", have - bw, fp["id"], ifn)
        return {"ifn": ifn, "reserved": have - bw}

    # ---- meta-interfaces ----
    def alloc_udp_tunnel(self, sl, fpid, ifn, port, bw) -> dict:
        fp = self.fastpath(sl, fpid)
        iface = self.interface(sl, ifn)
        node = self.node(sl)
        with self.change(sl["node"]):
            free = self.reserved(fp, ifn) - self.mi_bw_on(fp, ifn)
            if bw > free:
                raise SppError("ENOBW", f"fastpath {fpid} has {free} kb/s reserved and unused "
                                        f"on interface {ifn}; reserve more with resrv_fpath_ifbw")
            cap = self.srm.capacity[fp["npe"]].meta_ifs
            if self.store.scalar("SELECT COUNT(*) FROM meta_ifs m JOIN fastpaths f ON "
                                 "f.id = m.fastpath_id WHERE f.npe = ? AND f.node = ?",
                                 fp["npe"], fp["node"]) >= cap:
                raise SppError("ENORES", f"{fp['npe']} has no meta-interface left")
            port = self.srm.alloc_port(sl["node"], iface.addr, 17, port, META_IF_PORTS)
            mi = lowest_free({r["mi"] for r in self.store.q(
                "SELECT mi FROM meta_ifs WHERE fastpath_id = ?", fp["id"])})
            self.store.x("INSERT INTO meta_ifs VALUES (?, ?, ?, ?, ?, ?, ?)",
                         fp["id"], mi, sl["node"], ifn, iface.addr, port, bw)
            row = self.meta_if(fp, mi)
            n_e, l_e = tr.meta_if_entries(fp, row, node, node.npe(fp["npe"]))
            self.npe_scd(fp).write([(INSERT, e) for e in n_e])
            self.lc(sl).write([(INSERT, e) for e in l_e])
        return {"mi": mi, **self._endpoint(row, iface)}

    @staticmethod
    def _endpoint(row, iface) -> dict:
        out = {"ifn": row["ifn"], "addr": row["addr"], "port": row["port"], "proto": 17,
               "bw": row["bw_kbps"], "peering": iface.peering}
        if iface.peering:
            out["peer"] = iface.peer
        return out

    def get_endpoint(self, sl, fpid, mi) -> dict:
        fp = self.fastpath(sl, fpid)
        row = self.meta_if(fp, mi)
        return {"mi": mi, **self._endpoint(row, self.interface(sl, row["ifn"]))}

    def free_udp_tunnel(self, sl, fpid, mi):
        fp = self.fastpath(sl, fpid)
        row = self.meta_if(fp, mi)
        for f in self.store.q("SELECT fid, data FROM filters WHERE fastpath_id = ?", fp["id"]):
            d = loads(f["data"])
            if d["result"]["action"] == "forward" and d["result"]["meta_if"] == mi:
                raise SppError("EBUSY", f"filter {f['fid']} forwards to meta-interface {mi}")
        if self.store.one("SELECT qid FROM queues WHERE fastpath_id = ? AND mi = ?", fp["id"], mi):
            raise SppError("EBUSY", f"queues are bound to meta-interface {mi}")
        node = self.node(sl)
        n_e, l_e = tr.meta_if_entries(fp, row, node, node.npe(fp["npe"]))
        with self.change(sl["node"]):
            self.store.x("DELETE FROM meta_ifs WHERE fastpath_id = ? AND mi = ?", fp["id"], mi)
            self.lc(sl).write([(DELETE, e) for e in l_e])
            self.npe_scd(fp).write([(DELETE, e) for e in n_e])

    # ---- endpoints (LC NAT) ----
    def alloc_endpoint(self, sl, ifn, port, proto, slice_port) -> dict:
        iface = self.interface(sl, ifn)
        if proto not in PROTOCOLS:
            raise SppError("EINVAL", f"protocol must be one of {', '.join(PROTOCOLS)}")
        pnum = PROTOCOLS[proto]
        with self.change(sl["node"]):
            port = self.srm.alloc_port(sl["node"], iface.addr, pnum, port, range(30000, 40000))
            if slice_port == 0:
                slice_port = port
            if self.store.one("SELECT 1 FROM endpoints WHERE slice_id = ? AND proto = ? AND "
                              "slice_port = ?", sl["id"], pnum, slice_port):
                raise SppError("EEXIST", f"slice port {slice_port}/{proto} already forwarded")
            eid = lowest_free({r["eid"] for r in self.store.q(
                "SELECT eid FROM endpoints WHERE slice_id = ?", sl["id"])})
            self.store.x("INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sl["id"], eid,
                         sl["node"], ifn, iface.addr, pnum, port, slice_port)
            ep = self.store.one("SELECT * FROM endpoints WHERE slice_id = ? AND eid = ?",
                                sl["id"], eid)
            self.lc(sl).write([(INSERT, e) for e in tr.endpoint_entries(ep, sl)])
        return self._ep_view(ep)

    @staticmethod
    def _ep_view(ep) -> dict:
        proto = {v: k for k, v in PROTOCOLS.items()}[ep["proto"]]
        return {"eid": ep["eid"], "ifn": ep["ifn"], "addr": ep["addr"], "port": ep["port"],
                "proto": proto, "slice_port": ep["slice_port"]}

    def free_endpoint(self, sl, eid):
        ep = self.store.one("SELECT * FROM endpoints WHERE slice_id = ? AND eid = ?", sl["id"], eid)
        if ep is None:
            raise SppError("ENOENT", f"no endpoint {eid}")
        with self.change(sl["node"]):
            self.store.x("DELETE FROM endpoints WHERE slice_id = ? AND eid = ?", sl["id"], eid)
            self.lc(sl).write([(DELETE, e) for e in tr.endpoint_entries(ep, sl)])

    # ---- filters ----
    def _filter(self, fp, fid) -> dict:
        row = self.store.one("SELECT data FROM filters WHERE fastpath_id = ? AND fid = ?",
                             fp["id"], fid)
        if row is None:
            raise SppError("ENOENT", f"no filter {fid} on fastpath {fp['local_id']}")
        return loads(row["data"])

    def _check_result(self, fp, result: dict):
        if result["stats"] >= fp["n_stats"] and (fp["n_stats"] or result["stats"]):
            raise SppError("ERANGE", f"stats index {result['stats']} outside 0.."
                                     f"{fp['n_stats'] - 1}")
        if result["action"] != "forward":
            return
        self.meta_if(fp, result["meta_if"])
        if result["queue"] >= fp["n_queues"]:
            raise SppError("ERANGE", f"queue {result['queue']} outside 0..{fp['n_queues'] - 1}")
        q = self.store.one("SELECT mi FROM queues WHERE fastpath_id = ? AND qid = ?",
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
        fp = self.fastpath(sl, fpid)
        if not 0 <= fid <= pl.MAX_FILTER_ID:
            raise SppError("ERANGE", f"filter id {fid} outside 0..{pl.MAX_FILTER_ID}")
        self._check_result(fp, result)
        key, mask = normalize_key(key, mask)
        data = {"type": lookup_type, "key": key, "mask": mask, "result": result}
        with self.change(sl["node"]):
            if self.store.one("SELECT 1 FROM filters WHERE fastpath_id = ? AND fid = ?",
                              fp["id"], fid):
                raise SppError("EEXIST", f"filter {fid} exists (update_result changes it)")
            n = self.store.scalar("SELECT COUNT(*) FROM filters WHERE fastpath_id = ?", fp["id"])
            if n >= fp["n_filters"]:
                raise SppError("EQUOTA", f"fastpath {fpid} has all its {fp['n_filters']} filters")
            self.store.x("INSERT INTO filters VALUES (?, ?, ?)", fp["id"], fid, dumps(data))
            self.npe_scd(fp).write([(INSERT, tr.filter_entry(fp, fid, data))])
        return self._filter_view(fid, data)

    def update_result(self, sl, fpid, fid, result) -> dict:
        fp = self.fastpath(sl, fpid)
        data = self._filter(fp, fid)
        self._check_result(fp, result)
        data["result"] = result
        with self.change(sl["node"]):
            self.store.x("UPDATE filters SET data = ? WHERE fastpath_id = ? AND fid = ?",
                         dumps(data), fp["id"], fid)
            self.npe_scd(fp).write([(MODIFY, tr.filter_entry(fp, fid, data))])
        return self._filter_view(fid, data)

    def get_fltr_byfid(self, sl, fpid, fid) -> dict:
        fp = self.fastpath(sl, fpid)
        return self._filter_view(fid, self._filter(fp, fid))

    def _fid_bykey(self, fp, lookup_type, key, mask) -> int:
        key, mask = normalize_key(key, mask)
        for f in self.store.q("SELECT fid, data FROM filters WHERE fastpath_id = ? ORDER BY fid",
                              fp["id"]):
            d = loads(f["data"])
            if d["type"] == lookup_type and d["key"] == key and d["mask"] == mask:
                return f["fid"]
        raise SppError("ENOENT", "no filter with that key and mask")

    def get_fltr_bykey(self, sl, fpid, lookup_type, key, mask) -> dict:
        fp = self.fastpath(sl, fpid)
        fid = self._fid_bykey(fp, lookup_type, key, mask)
        return self._filter_view(fid, self._filter(fp, fid))

    def lookup_fltr(self, sl, fpid, lookup_type, key) -> dict:
        """The filter a packet with this key would hit (lowest matching ID)."""
        fp = self.fastpath(sl, fpid)
        for f in self.store.q("SELECT fid, data FROM filters WHERE fastpath_id = ? ORDER BY fid",
                              fp["id"]):
            d = loads(f["data"])
            if filter_matches(d, lookup_type, key):
                return self._filter_view(f["fid"], d)
        raise SppError("ENOENT", "no filter matches that key")

    def rem_fltr_byfid(self, sl, fpid, fid):
        fp = self.fastpath(sl, fpid)
        data = self._filter(fp, fid)
        with self.change(sl["node"]):
            self.store.x("DELETE FROM filters WHERE fastpath_id = ? AND fid = ?", fp["id"], fid)
            self.npe_scd(fp).write([(DELETE, tr.filter_entry(fp, fid, data))])

    def rem_fltr_bykey(self, sl, fpid, lookup_type, key, mask) -> dict:
        fp = self.fastpath(sl, fpid)
        fid = self._fid_bykey(fp, lookup_type, key, mask)
        self.rem_fltr_byfid(sl, fpid, fid)
        return {"fid": fid}

    # ---- queues ----
    def _queue(self, fp, qid) -> dict:
        if not 0 <= qid < fp["n_queues"]:
            raise SppError("ERANGE", f"queue {qid} outside 0..{fp['n_queues'] - 1}")
        q = self.store.one("SELECT * FROM queues WHERE fastpath_id = ? AND qid = ?", fp["id"], qid)
        if q is None:
            raise SppError("ENOENT", f"queue {qid} is not bound (bind_queue)")
        return q

    def _queue_bw_on(self, fp, mi, but_qid) -> int:
        return self.store.scalar("SELECT COALESCE(SUM(bw_kbps), 0) FROM queues WHERE "
                                 "fastpath_id = ? AND mi = ? AND qid != ?", fp["id"], mi, but_qid)

    def _set_police(self, sl, npe):
        """The LC packet meters of all the NPE's fastpaths (police_rates)."""
        node = self.node(sl)
        fps = self.store.q("SELECT * FROM fastpaths WHERE node = ? AND npe = ?", node.name,
                           npe.name)
        for gid, rate in tr.police_rates(npe, fps).items():
            self.lc(sl).set_meter(pl.Lc.POLICE, tr.lc_police_index(node, npe, gid), rate)

    def _queue_rates(self, fp) -> dict[int, int]:
        return tr.queue_rates(fp, self.store.q("SELECT * FROM queues WHERE fastpath_id = ?",
                                               fp["id"]),
                              self.store.q("SELECT * FROM meta_ifs WHERE fastpath_id = ?",
                                           fp["id"]))

    def _set_queue_meters(self, fp, before: dict[int, int]):
        """Meters of the fastpath's queues whose rate is not ``before``'s."""
        for qid, kbps in self._queue_rates(fp).items():
            if before.get(qid) != kbps:
                self.npe_scd(fp).set_meter(pl.Npe.QUEUE_RATE, fp["queue_base"] + qid,
                                           tr.queue_meter_rate(kbps))

    def bind_queue(self, sl, fpid, mi, qids: list[int]) -> dict:
        fp = self.fastpath(sl, fpid)
        mrow = self.meta_if(fp, mi)
        for qid in qids:
            if not 0 <= qid < fp["n_queues"]:
                raise SppError("ERANGE", f"queue {qid} outside 0..{fp['n_queues'] - 1}")
        with self.change(sl["node"]):
            before = self._queue_rates(fp)
            for qid in qids:
                q = self.store.one("SELECT * FROM queues WHERE fastpath_id = ? AND qid = ?",
                                   fp["id"], qid)
                bw = q["bw_kbps"] if q else 0
                if bw and self._queue_bw_on(fp, mi, qid) + bw > mrow["bw_kbps"]:
                    raise SppError("ENOBW", f"queue {qid}'s {bw} kb/s do not fit in "
                                            f"meta-interface {mi}")
                self.store.x("INSERT INTO queues (fastpath_id, qid, mi) VALUES (?, ?, ?) "
                             "ON CONFLICT DO UPDATE SET mi = excluded.mi", fp["id"], qid, mi)
            # Policed from now on, also without set_queue_params (queue_rates).
            self._set_queue_meters(fp, before)
        return {"mi": mi, "queues": qids}

    def set_queue_params(self, sl, fpid, qid, threshold, bw) -> dict:
        fp = self.fastpath(sl, fpid)
        q = self._queue(fp, qid)
        mrow = self.meta_if(fp, q["mi"])
        if threshold > fp["n_buffers"]:
            raise SppError("EQUOTA", f"threshold {threshold} over the fastpath's "
                                     f"{fp['n_buffers']} buffers")
        if self._queue_bw_on(fp, q["mi"], qid) + bw > mrow["bw_kbps"]:
            raise SppError("ENOBW", f"meta-interface {q['mi']} has {mrow['bw_kbps']} kb/s; "
                                    f"its other queues use {self._queue_bw_on(fp, q['mi'], qid)}")
        new = dict(q, threshold=threshold, bw_kbps=bw)
        with self.change(sl["node"]):
            before = self._queue_rates(fp)
            self.store.x("UPDATE queues SET threshold = ?, bw_kbps = ? WHERE fastpath_id = ? "
                         "AND qid = ?", threshold, bw, fp["id"], qid)
            old_e, new_e = tr.queue_entries(fp, q), tr.queue_entries(fp, new)
            if old_e and new_e:
                ups = [(MODIFY, e) for e in new_e]
            else:
                ups = [(DELETE, e) for e in old_e] + [(INSERT, e) for e in new_e]
            scd = self.npe_scd(fp)
            scd.write(ups)
            self._set_queue_meters(fp, before)
        return self.get_queue_params(sl, fpid, qid)

    def get_queue_params(self, sl, fpid, qid) -> dict:
        q = self._queue(self.fastpath(sl, fpid), qid)
        return {"qid": qid, "mi": q["mi"], "threshold": q["threshold"], "bw": q["bw_kbps"]}

    def get_queue_len(self, sl, fpid, qid) -> dict:
        fp = self.fastpath(sl, fpid)
        self._queue(fp, qid)
        n = self.npe_scd(fp).register_read(pl.Npe.QUEUE_LEN, fp["queue_base"] + qid, 1)[0]
        return {"qid": qid, "length": n}

    # ---- stats ----
    def _stats_index(self, fp, index):
        if not 0 <= index < fp["n_stats"]:
            raise SppError("ERANGE", f"stats index {index} outside 0..{fp['n_stats'] - 1}")
        return fp["stats_base"] + index

    def read_stats(self, sl, fpid, index, flags) -> dict:
        fp = self.fastpath(sl, fpid)
        g = self._stats_index(fp, index)
        check_flags(flags)
        scd = self.npe_scd(fp)
        pre = scd.read_counter(pl.Npe.STATS_PRE, g)
        post = scd.read_counter(pl.Npe.STATS_POST, g)
        return {"index": index, **stats_view(flags, pre, post)}

    def clear_stats(self, sl, fpid, index):
        fp = self.fastpath(sl, fpid)
        g = self._stats_index(fp, index)
        scd = self.npe_scd(fp)
        for counter in (pl.Npe.STATS_PRE, pl.Npe.STATS_POST):
            scd.write_counter(counter, g)

    # ---- memory ----
    def _mem_range(self, fp, offset, count):
        if offset < 0 or count < 0 or offset + count > fp["sram_words"]:
            raise SppError("ERANGE", f"words {offset}..{offset + count - 1} outside the "
                                     f"fastpath's {fp['sram_words']} words of SRAM")

    def mem_write(self, sl, fpid, offset, values: list[int]):
        fp = self.fastpath(sl, fpid)
        self._mem_range(fp, offset, len(values))
        with self.change(sl["node"]):
            self.store.db.executemany(
                "INSERT OR REPLACE INTO sram VALUES (?, ?, ?)",
                [(fp["id"], offset + i, v) for i, v in enumerate(values)])
            self.npe_scd(fp).register_write(
                pl.Npe.SRAM, {fp["sram_base"] + offset + i: v for i, v in enumerate(values)})

    def mem_read(self, sl, fpid, offset, count) -> list[int]:
        fp = self.fastpath(sl, fpid)
        self._mem_range(fp, offset, count)
        if count == 0:
            return []
        return self.npe_scd(fp).register_read(pl.Npe.SRAM, fp["sram_base"] + offset, count)
