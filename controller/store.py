"""Controller state in SQLite: the one durable copy of every slice's resources.

The database is the only state the controller keeps (no cache to fall out
of step): each API call runs in one transaction, which is committed only
after the switches accepted the change, and rolled back otherwise. Foreign
keys with ON DELETE CASCADE make freeing a fastpath or a slice release
everything it held; UNIQUE constraints guard IDs and UDP ports twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slices (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    node      TEXT NOT NULL,
    secret    TEXT NOT NULL UNIQUE,
    mgmt_addr TEXT NOT NULL,
    data_addr TEXT NOT NULL,
    lc_port   INTEGER NOT NULL,
    mac       TEXT NOT NULL,
    UNIQUE (name, node),
    UNIQUE (node, data_addr),
    UNIQUE (node, lc_port)
);
CREATE TABLE IF NOT EXISTS fastpaths (
    id         INTEGER PRIMARY KEY,
    slice_id   INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    local_id   INTEGER NOT NULL,
    node       TEXT NOT NULL,
    npe        TEXT NOT NULL,
    gid        INTEGER NOT NULL,            -- fastpath id in the NPE's tables
    copt       TEXT NOT NULL,
    bw_kbps    INTEGER NOT NULL,
    n_filters  INTEGER NOT NULL,
    n_queues   INTEGER NOT NULL,
    n_buffers  INTEGER NOT NULL,
    n_stats    INTEGER NOT NULL,
    sram_words INTEGER NOT NULL,
    dram_bytes INTEGER NOT NULL,
    stats_base INTEGER NOT NULL,
    queue_base INTEGER NOT NULL,
    sram_base  INTEGER NOT NULL,
    ret_port   INTEGER NOT NULL,            -- NPE endpoint the slice sends back to
    ld_port    INTEGER NOT NULL,            -- slice host's local-delivery port
    exc_port   INTEGER NOT NULL,            -- slice host's exception port
    UNIQUE (slice_id, local_id),
    UNIQUE (node, npe, gid)
);
CREATE TABLE IF NOT EXISTS reservations (
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    ifn         INTEGER NOT NULL,
    bw_kbps     INTEGER NOT NULL CHECK (bw_kbps > 0),
    PRIMARY KEY (fastpath_id, ifn)
);
CREATE TABLE IF NOT EXISTS meta_ifs (
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    mi          INTEGER NOT NULL,
    node        TEXT NOT NULL,
    ifn         INTEGER NOT NULL,
    addr        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    bw_kbps     INTEGER NOT NULL,
    PRIMARY KEY (fastpath_id, mi),
    UNIQUE (node, addr, port)
);
CREATE TABLE IF NOT EXISTS filters (
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    fid         INTEGER NOT NULL,
    data        TEXT NOT NULL,              -- {"type", "key", "mask", "result"}
    PRIMARY KEY (fastpath_id, fid)
);
CREATE TABLE IF NOT EXISTS queues (
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    qid         INTEGER NOT NULL,
    mi          INTEGER,                    -- bound meta-interface
    threshold   INTEGER NOT NULL DEFAULT 0,
    bw_kbps     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (fastpath_id, qid)
);
CREATE TABLE IF NOT EXISTS endpoints (
    slice_id   INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    eid        INTEGER NOT NULL,
    node       TEXT NOT NULL,
    ifn        INTEGER NOT NULL,
    addr       TEXT NOT NULL,
    proto      INTEGER NOT NULL,
    port       INTEGER NOT NULL,
    slice_port INTEGER NOT NULL,
    PRIMARY KEY (slice_id, eid),
    UNIQUE (node, addr, proto, port)
);
CREATE TABLE IF NOT EXISTS periodic (
    slice_id    INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    pid         INTEGER NOT NULL,
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    data        TEXT NOT NULL,              -- index, flags, interval, size, model, port, callback
    next_slot   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slice_id, pid)
);
CREATE TABLE IF NOT EXISTS samples (
    slice_id INTEGER NOT NULL,
    pid      INTEGER NOT NULL,
    slot     INTEGER NOT NULL,
    data     TEXT NOT NULL,                 -- {"seq", "time", counters...}
    PRIMARY KEY (slice_id, pid, slot),
    FOREIGN KEY (slice_id, pid) REFERENCES periodic(slice_id, pid) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS sram (
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    offset      INTEGER NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (fastpath_id, offset)
);
"""


class Store:
    """A SQLite database with the controller's schema.

    ``with store.tx():`` groups statements into one transaction (nested
    calls join the outer one); ``store.q`` / ``store.one`` read rows as dicts.
    """

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        self._lock = threading.RLock()
        self._depth = 0

    def close(self):
        self.db.close()

    @contextmanager
    def tx(self):
        """One transaction; rolled back if the block raises."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self.db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self.db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self.db.execute("COMMIT")

    def x(self, sql: str, *args) -> sqlite3.Cursor:
        return self.db.execute(sql, args)

    def q(self, sql: str, *args) -> list[dict]:
        return [dict(r) for r in self.db.execute(sql, args)]

    def one(self, sql: str, *args) -> dict | None:
        r = self.db.execute(sql, args).fetchone()
        return dict(r) if r else None

    def scalar(self, sql: str, *args):
        r = self.db.execute(sql, args).fetchone()
        return r[0] if r else None


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def loads(text: str):
    return json.loads(text)
