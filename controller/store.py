"""Controller state in SQLite: the one durable copy of every slice's resources.

The database is the only state the controller keeps (no cache to fall out
of step): each API call runs in one transaction (or a savepoint of a group
commit), which is committed only after the switches accepted the change,
and rolled back otherwise. Foreign
keys with ON DELETE CASCADE make freeing a fastpath or a slice release
everything it held; UNIQUE constraints guard IDs and UDP ports twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slices (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: a stale ID finds nothing
    name      TEXT NOT NULL,
    node      TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,      -- store.secret_hash(secret), never the secret
    mgmt_addr TEXT NOT NULL,
    data_addr TEXT NOT NULL,
    lc_port   INTEGER NOT NULL,
    mac       TEXT NOT NULL,
    quota     TEXT NOT NULL DEFAULT '{}',         -- per-slice limits (srm.SliceQuota)
    UNIQUE (name, node),
    UNIQUE (node, data_addr),
    UNIQUE (node, lc_port)
);
CREATE TABLE IF NOT EXISTS fastpaths (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused (gid is, per NPE)
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
-- Filters by lookup type, key and mask (get_fltr_bykey, rem_fltr_bykey): one
-- index lookup, not a decode of each of the fastpath's filters (27 ms with
-- 8,000, in the node's executor for rem_fltr_bykey). Keys and masks are
-- stored normalized (rmp.normalize_key) and with sorted keys (dumps), so
-- equal ones are equal text.
CREATE INDEX IF NOT EXISTS filters_bykey ON filters (
    fastpath_id, json_extract(data, '$.type'), json_extract(data, '$.key'),
    json_extract(data, '$.mask'));
-- How many filters a fastpath has, kept by the database itself: write_fltr's
-- quota check must not count thousands of rows per call.
CREATE TABLE IF NOT EXISTS filter_counts (
    fastpath_id INTEGER PRIMARY KEY REFERENCES fastpaths(id) ON DELETE CASCADE,
    n           INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS filter_added AFTER INSERT ON filters BEGIN
    INSERT INTO filter_counts VALUES (NEW.fastpath_id, 1)
        ON CONFLICT (fastpath_id) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS filter_removed AFTER DELETE ON filters BEGIN
    UPDATE filter_counts SET n = n - 1 WHERE fastpath_id = OLD.fastpath_id;
END;
CREATE TABLE IF NOT EXISTS queues (
    fastpath_id INTEGER NOT NULL REFERENCES fastpaths(id) ON DELETE CASCADE,
    qid         INTEGER NOT NULL,
    mi          INTEGER,                    -- bound meta-interface
    threshold   INTEGER NOT NULL DEFAULT 0,
    bw_kbps     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (fastpath_id, qid)
);
CREATE TABLE IF NOT EXISTS held_ports (    -- UDP ports the administrator holds for a slice
    slice_id   INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    addr       TEXT NOT NULL,              -- an interface address of the node
    port       INTEGER NOT NULL,
    PRIMARY KEY (addr, port)
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
    """One node's SQLite database (the SPP keeps one control processor, and one
    state, per node: a node whose switch stalls never holds another's locks).

    Every thread gets its own connection. Writes happen only in the node's
    executor thread (controller/executor.py), inside ``tx()``; any other thread
    reads committed state only, and ``read()`` groups its reads into one
    snapshot. ``q`` / ``one`` / ``scalar`` read rows as dicts and values.

    Durability: WAL with ``synchronous = FULL``: a transaction is on disk when
    COMMIT returns, so an acknowledged call survives a crash of the controller
    and of the machine (NORMAL would lose the last commits on power loss).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Created with its final mode (SQLite gives its WAL files the same):
        # the database holds no secret, but it is nobody else's business.
        # Only here, before any connection: closing another descriptor of
        # the file would drop SQLite's POSIX locks on it.
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        db = self.db
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        have = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        if have != str(SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: database schema {have}, this controller needs "
                               f"{SCHEMA_VERSION}: remove the file (or the run directory)")

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self):
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()

    @contextmanager
    def tx(self):
        """One write transaction; rolled back if the block raises. Nested
        calls join the outer one."""
        db = self.db
        if db.in_transaction:
            yield self
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def abort(self):
        """Roll back this thread's transaction if one is still open (a
        COMMIT that failed may leave it so)."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    @contextmanager
    def savepoint(self):
        """A nested unit inside ``tx()``: rolled back alone if the block raises."""
        db = self.db
        db.execute("SAVEPOINT unit")
        try:
            yield self
        except BaseException:
            db.execute("ROLLBACK TO unit")
            db.execute("RELEASE unit")
            raise
        db.execute("RELEASE unit")

    @contextmanager
    def read(self):
        """Several reads from one committed snapshot."""
        db = self.db
        if db.in_transaction:
            yield self
            return
        db.execute("BEGIN")
        try:
            yield self
        finally:
            db.execute("COMMIT")

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


def secret_hash(secret: str) -> str:
    """What the database keeps of a slice secret. Secrets are 128 random bits,
    so the hash can be neither inverted nor guessed, and it is useless as a
    credential: a stolen database lets nobody act as a slice."""
    return hashlib.sha256(secret.encode()).hexdigest()


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def loads(text: str):
    return json.loads(text)
