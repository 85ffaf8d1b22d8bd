"""Limits of the slice API's arguments, defined once.

The REST models (controller/api.py) publish them in the OpenAPI schema and
refuse what is outside them (EINVAL); the core modules check the same
constants, so the schema never promises what the core refuses. Limits that
depend on a fastpath (its filters, queues, stats, SRAM) or on the inventory
(interface bandwidth, NPE capacity) are checked by the core alone.
"""

# Filter IDs map to P4Runtime priorities (lower ID, higher priority) below
# pipeline.FILTER_PRIORITY_BASE; 0..MAX_FILTER_ID are the slice's.
MAX_FILTER_ID = 0xFFFE

# Periodic statistics (controller/periodic.py).
MIN_INTERVAL_MS = 100            # the periodic thread's resolution is 50 ms
MAX_INTERVAL_MS = 3_600_000
MAX_PERIODIC_SIZE = 4096         # entries of a job's ring buffer
MAX_CALLBACK_LEN = 64

# Amounts a slice may ask for in one call.
MAX_KBPS = 100_000_000           # 100 Gb/s
MAX_HOST_PPS = 100_000_000       # packets/s
MAX_BUFFERS = 1 << 20
MAX_SRAM_WORDS = 1 << 24         # also the highest SRAM word offset
MAX_DRAM_BYTES = 1 << 34
MAX_THRESHOLD = 1 << 20          # packets
MAX_WORDS_PER_CALL = 4096        # mem_write values, mem_read count
MAX_QUEUES_PER_BIND = 4096
MAX_CODE_OPTION_LEN = 16

# The REST layer: bodies above this size are refused with E2BIG (HTTP 413)
# before they are read; error messages quote at most MAX_QUOTE characters of
# any input and are at most MAX_MESSAGE characters long.
MAX_BODY_BYTES = 1 << 20
# ... and bodies with more JSON arrays and objects than this (E2BIG): the
# event loop that serves every slice's calls decodes each body, and 1 MiB of
# small arrays held it for 30-110 ms. A batch of 1,000 calls uses ~6 each.
MAX_BODY_CONTAINERS = 1 << 15
MAX_QUOTE = 40
MAX_MESSAGE = 300

# Per-slice quotas (srm.SliceQuota): what one slice may hold on one node, so
# that no slice can fill a table, a port range or the periodic thread that
# every slice shares. The administrator may give a slice other numbers when
# creating it; the SRM also refuses (ENORES) before any switch table is full.
SLICE_FASTPATHS = 4
SLICE_META_IFS = 256
SLICE_ENDPOINTS = 64
SLICE_PERIODIC = 8
# ... and the share (percent) of each NPE's filters, stats, queues, buffers,
# SRAM, DRAM and forwarding bandwidth a slice's fastpaths may hold, and of
# each interface's bandwidth its reservations may take: one slice alone can
# never leave the others nothing.
SLICE_NPE_SHARE = 50
SLICE_IF_SHARE = 50
# ... and what the slice host itself may send into the node (the LC polices
# every packet from its port, whatever its destination: lc_guard.p4). Far above
# what a slice host sends through the API's return path and its slow path
# (exceptions, ICMP replies, pings: tens of packets/s), far below what the LC
# passes (~20k packets/s) and an NPE processes (~15k).
SLICE_HOST_KBPS = 10_000
SLICE_HOST_PPS = 2_000

# UDP ports the administrator may hold for one slice on its node (POST
# /admin/slices "ports"); ports below MIN_USER_PORT are nobody's.
MAX_HELD_PORTS = 256
MIN_USER_PORT = 1024

# The batch extension (POST /api/batch): calls in one request, and the bytes
# of their answers (reads) after which the rest are not run (E2BIG).
MAX_BATCH_CALLS = 1000
MAX_BATCH_ANSWER_BYTES = 4 << 20

# TCP connections one slice host (peer address) may hold open to the slice
# API (conns.py): a slice program's threads each keep one; FairShare serves
# two calls of a host at a time anyway, but a program of many threads, or many
# programs, must not see resets.
CONNECTIONS_PER_HOST = 256

# Calls of one slice host served at once (api.FairShare); more wait their turn.
# Reads (and batches) hold a worker thread each; changes hold none (queued to
# their node's executor, which commits what is queued as one group), so more
# of them may wait there: what one host queues, another's change waits behind
# in one group commit, not one by one.
CALLS_IN_FLIGHT = 2
CHANGES_IN_FLIGHT = 16
# A batch queues its changes in a window that slides (api.call_batch). A
# change of one table entry (rmp.ENTRY_CHANGES: a filter written, updated or
# removed, ~0.1 ms of the executor) weighs 1, any other change
# ENTRY_CHANGES_PER_CHANGE. Alone, the window holds what the host's single
# calls may have in flight: 16 changes, or 128 filter changes (large groups
# for a program loading thousands of filters, as fast as with 256, while a
# slice that changes something now and then waits behind ~10 ms of them,
# ~20 ms with 256). While another slice host calls, it holds 4 filter
# changes, or one other change: the other host's change waits behind a
# millisecond of the batch's, and the batch's host cannot take the
# controller's CPU from it (make bench, another slice's read_stats p99 under
# a batch flood against idle: 7.5x with 32, 2.9-5.2x with 8, 3.7-4.2x with 4).
ENTRY_CHANGES_PER_CHANGE = 8
BATCH_WINDOW = CHANGES_IN_FLIGHT * ENTRY_CHANGES_PER_CHANGE
BATCH_WINDOW_SHARED = 4
# "Another slice host calls": it made an authenticated call within this many
# seconds (api.Callers). A batch of more than BULK_BATCH_CALLS calls is a bulk
# load and does not count, nor do the host's calls made while none of its bulk
# batches was in flight (its set-up; api.Callers.loading): it
# waits its turn with a full window, so slices loading filters at once each
# keep large groups (4 slices: 0.40x raw batched when their batches counted,
# 0.51x when their alloc_fastpath did), while a slice making single calls or
# small batches keeps the protection of the shared window.
OTHERS_RECENT_S = 1.0
BULK_BATCH_CALLS = CHANGES_IN_FLIGHT

# The controller's log file (--log-file) is rotated at this size, one old
# file kept: at most twice this on the disk of the databases, whatever
# callers make it log (__main__.log_to).
LOG_FILE_BYTES = 16 << 20
