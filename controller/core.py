"""The controller process: SRM, one SCD per switch, one executor and one
database per node, the RMP, periodic stats, and a monitor that brings
stalled or restarted switches back to their intended state.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from . import translate as tr
from .admin import SliceAdmin
from .errors import SppError
from .executor import NodeExecutor
from .metrics import Metrics
from .p4rt import P4RuntimeError
from .periodic import Periodic
from .pipeline import lc_pipeline, npe_pipeline
from .rmp import Rmp
from .scd import DEADLINE, Scd
from .srm import Srm
from .store import Store
from .testbed import Testbed
from .thrift_api import ThriftError

log = logging.getLogger(__name__)


def node_db_path(db_path, node: str) -> Path:
    """Each node's database, next to ``db_path``: spp.db -> spp.<node>.db."""
    p = Path(db_path)
    return p.with_name(f"{p.stem}.{node}{p.suffix or '.db'}")


class Controller:
    """Everything behind the REST API. ``start()`` connects to every switch
    and reconciles it against the database; ``stop()`` lets go of them."""

    def __init__(self, testbed: Testbed, db_path, monitor_interval: float = 1.0,
                 deadline: float = DEADLINE):
        self.testbed = testbed
        self.db_path = Path(db_path)
        self.stores = {n.name: Store(node_db_path(db_path, n.name)) for n in testbed.nodes}
        self.npe_pipeline = npe_pipeline()
        self.lc_pipeline = lc_pipeline()
        self.srm = Srm(self.stores, testbed, self.npe_pipeline, self.lc_pipeline)
        self.scds: dict[str, Scd] = {}
        self.executors: dict[str, NodeExecutor] = {}
        for node in testbed.nodes:
            mine = {node.lc.name: Scd(node.lc, self.lc_pipeline, "lc", deadline)}
            for npe in node.npes:
                mine[npe.name] = Scd(npe, self.npe_pipeline, "npe", deadline)
            self.scds.update(mine)
            self.executors[node.name] = NodeExecutor(
                node.name, self.stores[node.name], mine,
                lambda names, node=node: self.repair(node, names))
        self.rmp = Rmp(testbed, self.srm, self.scds, self.stores, self.executors)
        self.admin = SliceAdmin(self.rmp)
        self.periodic = Periodic(self.rmp)
        self.metrics = Metrics(self)        # /metrics and the web view (metrics.py)
        self.monitor_interval = monitor_interval
        self._stop = threading.Event()
        self._monitor = None
        self._verify: set[str] = set()

    @property
    def store(self) -> Store:
        """The database of a one-node testbed (tests and tools)."""
        if len(self.stores) != 1:
            raise AttributeError("this testbed has several nodes: use stores[node]")
        return next(iter(self.stores.values()))

    @property
    def up(self) -> dict[str, bool]:
        return {name: scd.up for name, scd in self.scds.items()}

    def node_of(self, switch_name: str):
        for node in self.testbed.nodes:
            if node.lc.name == switch_name or any(n.name == switch_name for n in node.npes):
                return node
        raise KeyError(switch_name)

    def repair(self, node, names: set[str]):
        """In the node's executor, after a failed group: put these switches
        back to what the database says (a down switch is repaired by the
        monitor when it answers again)."""
        intents = tr.node_intent(self.stores[node.name], node)
        for name in names:
            scd = self.scds[name]
            if not scd.up:
                continue
            try:
                scd.reconcile(intents[name])
            except SppError as e:
                log.warning("repair of %s failed: %s", name, e.message)
                scd.mark_down(e.message)

    def bring_up(self, name: str, timeout: float = 10.0) -> dict:
        """Connect to one switch and make it hold exactly its intended state.
        The connection is made outside the node's executor (it may take a
        while); the reconcile runs inside it (no write slips in between)."""
        scd = self.scds[name]
        node = self.node_of(name)
        pushed = scd.connect(timeout=timeout)

        def reconcile():
            intent = tr.node_intent(self.stores[node.name], node)[name]
            counts = scd.reconcile(intent, pushed=pushed)
            scd.mark_up()
            return counts
        counts = self.executors[node.name].exclusive(reconcile)
        return {"pushed": pushed, **counts}

    def start(self, timeout: float = 20.0, monitor: bool = True):
        for scd in self.scds.values():
            if scd.role == "npe":           # where filters are loaded by the thousand
                scd.start_encoder()
        for name in self.scds:
            self.bring_up(name, timeout=timeout)
        self.periodic.start()
        if monitor:
            self._monitor = threading.Thread(target=self._watch, name="switch-monitor",
                                             daemon=True)
            self._monitor.start()

    def _watch(self):
        while not self._stop.wait(self.monitor_interval):
            for name, scd in self.scds.items():
                if self._stop.is_set():
                    return
                alive = scd.alive(deadline=min(1.0, self.monitor_interval))
                if alive and scd.up:
                    if name in self._verify:
                        # A write may have been in flight when the switch
                        # stalled: look once more after it settled.
                        self._verify.discard(name)
                        node = self.node_of(name)
                        self.executors[node.name].exclusive(lambda node=node, name=name: (
                            self.repair(node, {name})))
                    continue
                if scd.up:
                    scd.mark_down("no answer to the liveness probe")
                try:
                    res = self.bring_up(name, timeout=1.0)
                    log.warning("%s: back; %s", name, res)
                    self._verify.add(name)
                except (SppError, P4RuntimeError, ThriftError, OSError) as e:
                    log.debug("%s: still down: %s", name, e)

    def wait_switches_up(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.up.values()):
                return True
            time.sleep(0.1)
        return False

    def describe(self) -> dict:
        """Slices, fastpaths and switches, for the Mininet CLI and /admin/state."""
        fps = []
        for store in self.stores.values():
            fps += store.q(
                "SELECT f.*, s.name AS slice, "
                "(SELECT COUNT(*) FROM filters x WHERE x.fastpath_id = f.id) AS n_filters_used, "
                "(SELECT COUNT(*) FROM meta_ifs x WHERE x.fastpath_id = f.id) AS n_meta_ifs "
                "FROM fastpaths f JOIN slices s ON s.id = f.slice_id ORDER BY s.name")
        return {"slices": self.admin.list_slices(), "fastpaths": fps, "switches": self.up}

    def stop(self):
        self._stop.set()
        if self._monitor:
            self._monitor.join(timeout=5)
        self.periodic.stop()
        for ex in self.executors.values():
            ex.stop()
        for scd in self.scds.values():
            scd.close()
            scd.stop_encoder()
        for store in self.stores.values():
            store.close()
