"""A controller whose switches are absent: the REST and validation layers,
the database and the RMP's checks, with no switch behind them. Whatever
needs a switch fails with ESWITCH, as it does when a switch is down.
Slices are put into the database directly (creating one through the admin
API programs the LC)."""

from __future__ import annotations

from controller.core import Controller
from controller.testbed import Interface, Node, Npe, Route, Switch, Testbed


def switchless_testbed() -> Testbed:
    """One node, as complete as a real one (the LC and NPE gRPC addresses
    have nobody listening): interface 1, peering interface 2."""
    node = Node("n", Switch("lc", "127.0.0.1:1", 1),
                [Npe("npe", "127.0.0.1:2", 2, addr="10.0.1.2", port=0, mac="02:00:00:00:01:02",
                     lc_port=1, lc_mac="02:00:00:00:01:01")],
                [Interface(1, "192.168.1.1", 0, "02:00:00:00:00:01", 1000),
                 Interface(2, "192.168.2.1", 4, "02:00:00:00:00:02", 500, peering=True,
                           peer="192.168.2.2")],
                routes=[Route("192.168.1.0/24", 0, "02:00:00:00:09:01")],
                gpe_gateway="10.0.2.1", gpe_mac="02:00:00:00:02:01")
    return Testbed("t", [node])


def add_slice(ctl: Controller, name: str, secret: str, mgmt_addr: str, lc_port: int) -> dict:
    row = {"name": name, "node": "n", "mgmt_addr": mgmt_addr,
           "data_addr": f"10.0.2.{10 + lc_port}", "lc_port": lc_port,
           "mac": f"02:00:00:00:02:{lc_port:02x}"}
    columns = {c["name"] for c in ctl.store.q("PRAGMA table_info(slices)")}
    if "secret" in columns:
        row["secret"] = secret
    else:                                   # the database keeps a hash of the secret
        from controller import store
        row["secret_hash"] = store.secret_hash(secret)
    ctl.store.x(f"INSERT INTO slices ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                *row.values())
    return ctl.store.one("SELECT * FROM slices WHERE name = ?", name)
