"""Per-node serialisation with group commit: how every change reaches a node.

Each SPP node has one executor thread, its only writer. A change is a
function ``fn(change)`` that reads and validates the node's database, writes
its rows, and lists what the switches must do (``change.write``,
``change.register_write``); it runs in the executor, so its lookups and its
writes see one consistent state and no two changes interleave. Changes that
arrive while the executor is busy are grouped:

* each runs in a SAVEPOINT of one SQLite transaction (a refused change rolls
  back alone and later changes of the group see what earlier ones did);
* then the switch updates of the whole group go out in one batched
  P4Runtime write per switch (split only where two updates target the same
  entry), and register writes over pipelined Thrift;
* the transaction commits (synchronously: durable when the callers hear
  "OK") only after every switch took its part.

If a switch refuses or does not answer, the transaction rolls back, the
node's switches are reconciled to the (unchanged) database, and the group's
changes are retried one by one so that each caller gets its own answer: the
ones that needed nothing refused succeed, the others get ESWITCH and changed
nothing. Nodes never wait for each other: each has its own thread and its
own database.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import traceback
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import SppError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: changes grouped into one transaction and one write per switch, at most
MAX_GROUP = 512
#: seconds a switch may take to write before it is probed, and the probe's deadline
PATIENCE = 0.2
PROBE = 0.5
#: times a read of a fastpath's cells is done again when a group freeing the
#: fastpath overlapped it (read_cells)
READ_TRIES = 3

# Switch writes run here, so that the executor can stop waiting for a stalled one.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="switch-write")


@dataclass
class Change:
    """What one call asks of the node's switches, collected while it runs."""

    updates: dict[str, list] = field(default_factory=dict)          # switch -> [(op, item)]
    registers: list[tuple[str, str, dict, dict]] = field(default_factory=list)
    fills: list[tuple[str, str, int, int]] = field(default_factory=list)
    frees: set[int] = field(default_factory=set)     # fastpaths (row IDs) freed

    def free(self, fastpath_id: int):
        """The change frees this fastpath: its partition may go to another
        fastpath in the same group (``NodeExecutor.read_cells``)."""
        self.frees.add(fastpath_id)

    def write(self, switch: str, updates):
        if updates:
            self.updates.setdefault(switch, []).extend(updates)

    def register_write(self, switch: str, register: str, cells: dict[int, int],
                       old: dict[int, int]):
        """Write ``cells``; ``old`` is what they held (restored if the group fails)."""
        self.registers.append((switch, register, cells, old))

    def register_fill(self, switch: str, register: str, start: int, count: int):
        """Zero ``count`` cells from ``start`` (a fresh partition)."""
        self.fills.append((switch, register, start, count))

    @property
    def switches(self) -> set[str]:
        return (set(self.updates) | {r[0] for r in self.registers}
                | {f[0] for f in self.fills})


class _Read:
    """A read of a fastpath's cells in progress (NodeExecutor.read_cells)."""

    overlapped = False


@dataclass
class _Job:
    fn: Callable
    future: Future
    exclusive: bool = False


class NodeExecutor:
    """The single writer of one node: its database and its switches."""

    def __init__(self, name: str, store, scds: dict, repair: Callable[[set[str]], None]):
        self.name = name
        self.store = store
        self.scds = scds                 # switch name -> Scd, this node's switches
        self.repair = repair             # reconcile these switches to the database
        self._q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # Fastpaths (row IDs) being read on a switch (a marker per read), and
        # being freed by the group being applied: see read_cells().
        self._cells = threading.Condition()
        self._reading: dict[int, set[_Read]] = {}
        self._freeing: set[int] = set()
        self._thread = threading.Thread(target=self._loop, name=f"node-{name}", daemon=True)
        self._thread.start()

    # ---- callers ----
    def run(self, fn: Callable[[Change], object]):
        """Run a change in the node's transaction; its result, or its SppError."""
        return self.submit(fn).result()

    def submit(self, fn: Callable[[Change], object]) -> Future:
        """Queue a change; the Future gets its result or its SppError.
        Changes submitted together are grouped (batch calls use this)."""
        return self._submit(_Job(fn, Future()))

    def exclusive(self, fn: Callable[[], object]):
        """Run ``fn()`` alone in the node's thread, outside any group (switch
        repair: nothing else writes meanwhile)."""
        return self._submit(_Job(fn, Future(), exclusive=True)).result()

    def _submit(self, job: _Job) -> Future:
        if not self._thread.is_alive():
            raise SppError("EINTERNAL", f"node {self.name}: the controller is stopping")
        self._q.put(job)
        return job.future

    def stop(self):
        self._q.put(None)
        self._thread.join(timeout=10)

    def read_cells(self, fastpath_id: int, read: Callable[[], T]) -> T:
        """``read()`` of a fastpath's cells on a switch (counters, SRAM, queue
        lengths); the caller then checks that the fastpath still exists. A
        group that frees the fastpath can give its partition to another
        slice's fastpath in the same group, and that fastpath's cells
        (zeroed, written) reach the switch before the group commits: until
        then the freed fastpath still exists for a reader, which would have
        read the other slice's cells. So a read that such a group overlapped
        is thrown away, and done again once the group has ended (committed:
        the caller's check finds the fastpath gone; rolled back: the cells
        are the fastpath's own again). The executor never waits for a read,
        and only the fastpath's own slice frees it, so no slice can slow
        another's reads or changes this way."""
        for _ in range(READ_TRIES):
            this = _Read()
            with self._cells:
                self._cells.wait_for(lambda: fastpath_id not in self._freeing)
                self._reading.setdefault(fastpath_id, set()).add(this)
            try:
                out = read()
            finally:
                with self._cells:
                    readers = self._reading[fastpath_id]
                    readers.discard(this)
                    if not readers:
                        del self._reading[fastpath_id]
            if not this.overlapped:
                return out
        raise SppError("EBUSY", "the fastpath was being freed while it was read; "
                                "nothing was read")

    def _freeing_start(self, ids: set[int]):
        """Before a group freeing these fastpaths touches the switches: reads
        of them in progress are marked overlapped, none starts until it ends."""
        with self._cells:
            self._freeing |= ids
            for i in ids & self._reading.keys():
                for r in self._reading[i]:
                    r.overlapped = True

    def _freeing_end(self):
        with self._cells:
            if self._freeing:
                self._freeing.clear()
                self._cells.notify_all()

    # ---- the thread ----
    def _loop(self):
        pending: _Job | None = None
        while True:
            job = pending or self._q.get()
            pending = None
            if job is None:
                return
            # A caller that gave up before its change ran (its Future
            # cancelled: the request's task was) changes nothing; once
            # running, it can no longer be cancelled.
            if not job.future.set_running_or_notify_cancel():
                continue
            if job.exclusive:
                self._run_exclusive(job)
                continue
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or nxt.exclusive:
                    pending = nxt
                    break
                if nxt.future.set_running_or_notify_cancel():
                    group.append(nxt)
            try:
                self._run_group(group)
            except BaseException as e:  # noqa: BLE001 - the thread must live on
                log.exception("node %s: group of %d failed", self.name, len(group))
                for j in group:
                    if not j.future.done():
                        j.future.set_exception(_internal(e))
            finally:
                self._freeing_end()             # committed, or rolled back and repaired

    def _run_exclusive(self, job: _Job):
        try:
            job.future.set_result(job.fn())
        except SppError as e:
            job.future.set_exception(_answer(e))
        except BaseException as e:  # noqa: BLE001 - a bug: answered, logged
            log.error("node %s: %s", self.name, traceback.format_exc())
            job.future.set_exception(_internal(e))

    def _run_group(self, group: list[_Job]):
        for scd in self.scds.values():
            scd.ahead_reset()                   # what a failed group left
        done: list[tuple[_Job, object, Change]] = []
        failed: list[tuple[_Job, BaseException]] = []
        try:
            with self.store.tx():
                for job in group:
                    change = Change()
                    try:
                        with self.store.savepoint():
                            result = job.fn(change)
                    except SppError as e:
                        failed.append((job, _answer(e)))
                        continue
                    except Exception as e:  # noqa: BLE001 - a bug: answered, logged
                        log.error("node %s: change failed:\n%s", self.name,
                                  traceback.format_exc())
                        failed.append((job, _internal(e)))
                        continue
                    done.append((job, result, change))
                    for sw, ups in change.updates.items():
                        scd = self.scds.get(sw)   # (an unknown one fails in _apply)
                        if scd is not None:
                            scd.encode_ahead(ups)           # encoded meanwhile
                frees = set().union(*(c.frees for _, _, c in done))
                if frees:
                    self._freeing_start(frees)
                try:
                    self._apply([c for _, _, c in done])
                except SppError:
                    raise
                except Exception as e:  # noqa: BLE001 - a bug: roll back, repair, answer
                    log.error("node %s: applying a group failed:\n%s", self.name,
                              traceback.format_exc())
                    raise _internal(e) from None
        except sqlite3.Error as e:
            # The commit itself failed (disk full, I/O error) after the
            # switches took the group: roll back if SQLite did not, put the
            # switches back to the database, and answer: nothing changed.
            log.error("node %s: commit of a group of %d failed: %s", self.name, len(group), e)
            self.store.abort()
            self._put_back([c for _, _, c in done])
            for job, err in failed:
                job.future.set_exception(err)
            for job, _, _ in done:
                job.future.set_exception(_internal(e))
            return
        except SppError as e:
            # Rolled back. The switches may hold part of the group: put them
            # back to the database, then give every change its own answer.
            self._put_back([c for _, _, c in done])
            for job, err in failed:
                job.future.set_exception(err)
            if len(done) == 1:
                done[0][0].future.set_exception(_answer(e))
            else:
                for job, _, _ in done:
                    self._run_group([job])
            return
        for job, err in failed:
            job.future.set_exception(err)
        for job, result, _ in done:
            job.future.set_result(result)

    def _apply(self, changes: list[Change]):
        """Every switch's part of the group, the switches in parallel: per
        switch, one batched write, then its registers in the group's order
        (fresh partitions zeroed, words written)."""
        work: dict[str, dict] = defaultdict(lambda: {"ups": [], "regs": []})
        for c in changes:
            for sw, ups in c.updates.items():
                work[sw]["ups"].extend(ups)
            # In the group's order: a partition freed and given to another
            # slice's fastpath in the same group is zeroed after the words
            # its old owner wrote there, not before (review 19, R19-3).
            for sw, reg, start, count in c.fills:
                work[sw]["regs"].append((reg, range(start, start + count)))
            for sw, reg, cells, _ in c.registers:
                work[sw]["regs"].append((reg, cells))

        def run(scd, w):
            scd.write(w["ups"])
            for reg, cells in w["regs"]:
                if isinstance(cells, range):            # a fresh partition
                    scd.register_fill(reg, cells.start, len(cells))
                else:
                    scd.register_write(reg, cells)
        futures, error = {}, None
        for sw, w in work.items():
            scd = self.scds[sw]
            if not w["regs"]:
                # Table updates only (the common case): sent from here, and
                # awaited without a thread hop.
                try:
                    futures[sw] = scd.write_send(w["ups"])
                except SppError as e:
                    error = error or e
                    continue
                if futures[sw] is not None:
                    continue
            scd.ahead_reset()
            futures[sw] = _POOL.submit(run, scd, w)
        for sw, fut in futures.items():
            try:
                self._await(self.scds[sw], fut)
            except SppError as e:
                error = error or e
        if error:
            raise error

    def _await(self, scd, fut: Future):
        """A switch's part of a group. A switch that takes longer than
        PATIENCE is probed: if it does not answer the probe either, it is
        stalled: marked down at once, and the group fails now (its write is
        left to time out), so the node's other switches wait a fraction of
        a second for it, not the whole deadline. A switch that answers is
        working through a large part (thousands of register cells take
        seconds) and is waited for: each of its requests has the deadline
        of its own, so one that stops answering midway fails the part
        within it. (Marking a busy switch down would fail every slice's
        calls for what one slice's large writes cost.)"""
        while True:
            try:
                return fut.result(timeout=PATIENCE)
            except FutureTimeout:
                pass
            if not scd.alive(deadline=PROBE):
                scd.mark_down("no answer while writing")
                raise SppError("ESWITCH", f"{scd.name} did not answer (stalled or dead); "
                                          f"nothing was changed")

    def _put_back(self, changes: list[Change]):
        """After a rollback: the switches these changes touched back to the
        database (registers to what they held, tables reconciled)."""
        self._undo_registers(changes)
        self.repair(set().union(*(c.switches for c in changes)))

    def _undo_registers(self, changes: list[Change]):
        for c in reversed(changes):
            for sw, reg, _, old in reversed(c.registers):
                try:
                    self.scds[sw].register_write(reg, old)
                except SppError as e:
                    log.warning("node %s: could not restore %s on %s: %s", self.name, reg,
                                sw, e.message)


def _answer(e: SppError) -> SppError:
    """``e`` as a caller's answer, without its traceback and the exceptions
    it was raised from: their frames (this module's, the change's) hold the
    group's jobs, their arguments and switch updates, and the error itself,
    a reference cycle that only the cyclic GC frees, which the controller
    runs seldom (__main__.py). A slice sending changes that fail would pile
    them up (a batch of failing 4,096-word mem_writes: hundreds of MB)."""
    e.__traceback__ = e.__context__ = e.__cause__ = None
    return e


def _internal(e: BaseException) -> SppError:
    return SppError("EINTERNAL", f"the controller failed ({type(e).__name__}); "
                                 f"nothing was changed")
