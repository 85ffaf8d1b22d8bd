"""The controller process: SRM, one SCD per switch, the RMP, periodic stats,
and a monitor that brings restarted switches back to their intended state.
"""

from __future__ import annotations

import logging
import threading
import time

from . import scd as tr
from .errors import SppError
from .p4rt import P4RuntimeError
from .periodic import Periodic
from .pipeline import lc_pipeline, npe_pipeline
from .rmp import Rmp
from .scd import Scd
from .srm import Srm
from .store import Store
from .testbed import Testbed
from .thrift_api import ThriftError

log = logging.getLogger(__name__)


class Controller:
    """Everything behind the REST API. ``start()`` connects to every switch
    and reconciles it against the database; ``stop()`` lets go of them."""

    def __init__(self, testbed: Testbed, db_path=":memory:", monitor_interval: float = 1.0):
        self.testbed = testbed
        self.store = Store(db_path)
        self.npe_pipeline = npe_pipeline()
        self.lc_pipeline = lc_pipeline()
        self.srm = Srm(self.store, testbed, self.npe_pipeline)
        self.scds: dict[str, Scd] = {}
        for node in testbed.nodes:
            self.scds[node.lc.name] = Scd(node.lc, self.lc_pipeline, "lc")
            for npe in node.npes:
                self.scds[npe.name] = Scd(npe, self.npe_pipeline, "npe")
        self.rmp = Rmp(self.store, testbed, self.srm, self.scds)
        self.periodic = Periodic(self.rmp)
        self.monitor_interval = monitor_interval
        self._stop = threading.Event()
        self._monitor = None
        self.up: dict[str, bool] = {name: False for name in self.scds}

    def node_of(self, switch_name: str):
        for node in self.testbed.nodes:
            if node.lc.name == switch_name or any(n.name == switch_name for n in node.npes):
                return node
        raise KeyError(switch_name)

    def bring_up(self, name: str, timeout: float = 10.0) -> dict:
        """Connect to one switch and make it hold exactly its intended state."""
        scd = self.scds[name]
        with self.rmp.lock:
            pushed = scd.connect(timeout=timeout)
            intent = tr.node_intent(self.store, self.node_of(name))[name]
            counts = scd.reconcile(intent, pushed=pushed)
        self.up[name] = True
        return {"pushed": pushed, **counts}

    def start(self, timeout: float = 20.0, monitor: bool = True):
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
                if scd.alive():
                    continue
                if self.up[name]:
                    log.warning("%s: lost the switch, reconnecting", name)
                self.up[name] = False
                try:
                    res = self.bring_up(name, timeout=1.0)
                    log.warning("%s: back; %s", name, res)
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
        fps = self.store.q(
            "SELECT f.*, s.name AS slice, "
            "(SELECT COUNT(*) FROM filters x WHERE x.fastpath_id = f.id) AS n_filters_used, "
            "(SELECT COUNT(*) FROM meta_ifs x WHERE x.fastpath_id = f.id) AS n_meta_ifs "
            "FROM fastpaths f JOIN slices s ON s.id = f.slice_id ORDER BY f.node, s.name")
        return {"slices": self.rmp.list_slices(), "fastpaths": fps, "switches": dict(self.up)}

    def stop(self):
        self._stop.set()
        if self._monitor:
            self._monitor.join(timeout=5)
        self.periodic.stop()
        for scd in self.scds.values():
            scd.close()
        self.store.close()
