"""Slices: who they are (authentication) and their lifetime (administration).

Not part of the slice API: the testbed (or an operator, with the admin
token) creates a slice on a node and hands its secret to the slice host; the
RMP then serves calls that present that secret from the slice host's
management address. The database keeps only a hash of each secret
(store.secret_hash): a copy of the database lets nobody act as a slice.
"""

from __future__ import annotations

import secrets

from . import translate as tr
from .errors import SppError
from .p4rt import DELETE, INSERT, MODIFY
from .rmp import Rmp
from .srm import SliceQuota
from .store import secret_hash


class SliceAdmin:
    def __init__(self, rmp: Rmp):
        self.rmp = rmp

    def authenticate(self, secret: str | None, client_addr: str | None) -> dict:
        """The slice whose secret this is, if the call comes from its host."""
        if not secret:
            raise SppError("EAUTH", "no slice secret given (Authorization: Bearer <secret>)")
        h = secret_hash(secret)
        for store in self.rmp.stores.values():
            sl = store.one("SELECT * FROM slices WHERE secret_hash = ?", h)
            if sl is not None:
                break
        else:
            raise SppError("EAUTH", "unknown slice secret")
        if client_addr != sl["mgmt_addr"]:
            raise SppError("EPERM", f"slice {sl['name']} may only call from {sl['mgmt_addr']}")
        return sl

    def create_slice(self, name, node, mgmt_addr, data_addr, lc_port, mac,
                     quota: SliceQuota | None = None,
                     ports: list[tuple[int, int]] = ()) -> dict:
        """A new slice on ``node``; ``ports``: (ifn, UDP port) held for it."""
        nd = self.rmp.testbed.node(node)
        if nd is None:
            raise SppError("ENOENT", f"no node {node[:40]!r}")
        secret = secrets.token_hex(16)
        quota = quota or SliceQuota()
        db = self.rmp.stores[node]

        def change(ch):
            if db.one("SELECT 1 FROM slices WHERE name = ?", name):
                raise SppError("EEXIST", f"slice {name} already exists on {node}")
            if db.one("SELECT 1 FROM slices WHERE data_addr = ? OR lc_port = ?",
                      data_addr, lc_port):
                raise SppError("EEXIST", f"address {data_addr} or LC port {lc_port} already used")
            if db.scalar("SELECT COUNT(*) FROM slices") + 1 > self.rmp.srm.lc_capacity.slice_ports:
                raise SppError("ENORES", f"the line card of {node} has no slice port left")
            sid = db.x(
                "INSERT INTO slices (name, node, secret_hash, mgmt_addr, data_addr, lc_port, mac, "
                "quota) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", name, node, secret_hash(secret),
                mgmt_addr, data_addr, lc_port, mac, quota.to_json()).lastrowid
            sl = db.one("SELECT * FROM slices WHERE id = ?", sid)
            for ifn, port in ports:
                iface = nd.interface(ifn)
                if iface is None:
                    raise SppError("ENOENT", f"no interface {ifn} on {node}")
                self.rmp.srm.hold_port(node, iface.addr, port, sl)
            # Its port's meters first: the host is policed from its first packet.
            ch.write(nd.lc.name, [(MODIFY, c) for c in tr.host_meter_cells(sl)]
                     + [(INSERT, e) for e in tr.slice_entries(sl, nd)])
        self.rmp.executors[node].run(change)
        return {"name": name, "node": node, "secret": secret}

    def delete_slice(self, name, node):
        """Free everything the slice holds on the node, then the slice."""
        if node not in self.rmp.stores:
            raise SppError("ENOENT", f"no node {node[:40]!r}")
        db = self.rmp.stores[node]
        rmp = self.rmp

        def change(ch):
            sl = db.one("SELECT * FROM slices WHERE name = ?", name)
            if sl is None:
                raise SppError("ENOENT", f"no slice {name[:40]} on {node}")
            for fp in db.q("SELECT * FROM fastpaths WHERE slice_id = ?", sl["id"]):
                rmp._fastpath_teardown(sl, fp, ch)
            for ep in db.q("SELECT * FROM endpoints WHERE slice_id = ?", sl["id"]):
                rmp._endpoint_teardown(sl, ep, ch)
            db.x("DELETE FROM slices WHERE id = ?", sl["id"])      # cascades
            nd = rmp.node(sl)
            ch.write(nd.lc.name, [(DELETE, e) for e in tr.slice_entries(sl, nd)])
        rmp.executors[node].run(change)

    def list_slices(self) -> list[dict]:
        out = []
        for store in self.rmp.stores.values():
            out += store.q("SELECT id, name, node, mgmt_addr, data_addr, lc_port, quota "
                           "FROM slices ORDER BY name")
        return out
