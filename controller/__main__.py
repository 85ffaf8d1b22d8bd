"""spp-controller: the SPP control software (SRM, SCDs, RMP) behind the REST API.

    python -m controller --testbed run/default/testbed.json --db run/default/spp.db

It connects to every switch of the testbed, pushes the pipelines where they
are missing, reconciles every table against the database, then serves the
slice API. The admin token (for creating slices) is read from, or written
to, --admin-token-file.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
import secrets
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="spp-controller", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testbed", required=True, type=Path,
                    help="testbed description (JSON, written by mininet_topo)")
    ap.add_argument("--db", type=Path, default=None,
                    help="SQLite databases, one per node: spp.db means spp.<node>.db "
                         "(default: spp.db next to the testbed file)")
    ap.add_argument("--listen", default="127.0.0.1:8080", metavar="ADDR:PORT",
                    help="REST API address (default: %(default)s)")
    ap.add_argument("--operator", default="127.0.0.1:8081", metavar="ADDR:PORT",
                    help="the operator's web view and Prometheus /metrics, a listener of "
                         "their own (default: %(default)s); 'off': none")
    ap.add_argument("--operator-from", action="append", default=[], metavar="ADDR",
                    help="a TCP peer the operator listener answers besides 127.0.0.1 "
                         "(repeatable)")
    ap.add_argument("--admin-token-file", type=Path, default=None,
                    help="admin token (default: admin.token next to the testbed file)")
    ap.add_argument("--log-file", type=Path, default=None, help="log here instead of stderr")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = ap.parse_args(argv)

    log_to(args.log_file, logging.DEBUG if args.verbose else logging.INFO)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        ap.error(f"--listen {args.listen!r}: expected ADDR:PORT")
    ohost, _, oport = args.operator.rpartition(":")
    if args.operator != "off" and (not ohost or not oport.isdigit()):
        ap.error(f"--operator {args.operator!r}: expected ADDR:PORT or off")
    if not args.testbed.exists():
        ap.error(f"--testbed {args.testbed}: no such file")

    import uvicorn

    from .api import create_app, server_config
    from .conns import peer_limited
    from .core import Controller
    from .errors import SppError
    from .p4rt import P4RuntimeError
    from .testbed import Testbed
    from .thrift_api import ThriftError

    # Every connection is a file descriptor: take all the kernel allows this
    # process (conns.py caps what one slice host may hold of them).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    run_dir = args.testbed.parent
    db = args.db or run_dir / "spp.db"
    token_file = args.admin_token_file or run_dir / "admin.token"
    if token_file.exists():
        token = token_file.read_text().strip()
    else:
        token = secrets.token_hex(16)
        # Created with its final mode: never readable by anyone else, not
        # even for the moment between a write and a chmod.
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")

    ctl = Controller(Testbed.load(args.testbed), db)
    try:
        ctl.start()
    except (SppError, P4RuntimeError, ThriftError, OSError) as e:
        print(f"spp-controller: cannot bring the switches up: {e}", file=sys.stderr)
        ctl.stop()
        return 1
    operator = None
    if args.operator != "off":
        import threading

        from .web import create_operator_app
        peers = ("127.0.0.1", *args.operator_from)
        operator = uvicorn.Server(server_config(create_operator_app(
            ctl, run_dir / "topology.svg", peers), ohost, int(oport),
            http=peer_limited(allowed=frozenset(peers))))

        def serve_operator():
            try:
                operator.run()
            except SystemExit:                  # uvicorn's answer to a port in use
                pass
            if not operator.started:
                logging.error("operator listener %s: not serving (see above); the slice "
                              "API is served regardless", args.operator)
        threading.Thread(target=serve_operator, name="operator-listener", daemon=True).start()
    # The cyclic garbage collector cost a third of the controller's CPU under
    # load (measured: 0.175 against 0.115 ms per filter loaded): every change
    # allocates thousands of pure-Python protobuf objects, and each full
    # collection walked every object the start-up made too. Those are frozen
    # (never scanned again), and young objects are collected 70 times less
    # often. Older generations keep their default pace: garbage that lives
    # through a young collection is still freed soon (the executor and the
    # batch call take care to leave no cycles behind them: review 18).
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    try:
        uvicorn.Server(server_config(create_app(ctl, token), host, int(port),
                                     http=peer_limited())).run()
    finally:
        if operator:
            operator.should_exit = True
        ctl.stop()
    return 0


def log_to(path: Path | None, level: int):
    """The controller's log, uvicorn's warnings too (api.server_config leaves
    them to the root logger). In a file it takes at most twice
    LOG_FILE_BYTES (rotated once): uvicorn warns once per malformed request,
    and no caller may fill the disk of the databases that way (review 19b:
    364 KB/s from one client, on an unbounded file)."""
    from logging.handlers import RotatingFileHandler

    from .limits import LOG_FILE_BYTES
    handler = (RotatingFileHandler(path, maxBytes=LOG_FILE_BYTES, backupCount=1)
               if path else logging.StreamHandler())
    logging.basicConfig(level=level, handlers=[handler], force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    sys.exit(main())
