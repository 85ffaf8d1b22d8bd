"""Run the PTF suite against real BMv2 switches.

Everything happens in a private network namespace made for the run: veth
pairs, one simple_switch_grpc running npe.p4 (PTF device 0) and one running
lc.p4 (device 1), and PTF itself. The namespace and the switches are removed
afterwards, also when a test fails or the run is interrupted.

    sudo .venv/bin/python -m ptf_tests.runner              # whole suite
    sudo .venv/bin/python -m ptf_tests.runner npe.Forward  # one test
    sudo .venv/bin/python -m ptf_tests.runner --debug      # BMv2 packet trace in the logs
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from mininet_topo.bmv2 import Bmv2Error, SwitchSpec, find_bmv2, wait_ready
from mininet_topo.netns import Namespace

ROOT = Path(__file__).resolve().parent.parent
PORTS = 5                       # per switch
SWITCHES = (("npe", 0, 9559, 9090), ("lc", 1, 9560, 9091))   # name, device, gRPC, Thrift


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("tests", nargs="*", help="PTF test names (module.Class); default: all")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "logs" / "ptf",
                    help="switch and PTF logs (default: %(default)s)")
    ap.add_argument("--debug", action="store_true",
                    help="BMv2 per-packet trace in the switch logs")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("ptf_tests.runner needs root (network namespaces, veths).", file=sys.stderr)
        return 2
    try:
        find_bmv2()
    except Bmv2Error as e:
        print(e, file=sys.stderr)
        return 2
    ptf = Path(sys.executable).parent / "ptf"
    if not ptf.exists():
        print(f"PTF not found next to {sys.executable}: pip install ptf", file=sys.stderr)
        return 2

    args.log_dir.mkdir(parents=True, exist_ok=True)
    # SIGTERM (a CI timeout, say) unwinds through the with-block like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    ptf_ifaces, params = [], []
    try:
        with Namespace(f"spp-ptf-{os.getpid()}") as ns:
            specs = []
            for name, dev, grpc_port, thrift_port in SWITCHES:
                ports = {}
                for i in range(PORTS):
                    sw_if, test_if = f"{name}{i}", f"{name}{i}t"
                    ns.veth(sw_if, test_if)
                    ports[i] = sw_if
                    ptf_ifaces += ["-i", f"{dev}-{i}@{test_if}"]
                spec = SwitchSpec(name, ports, grpc_port, thrift_port, device_id=0,
                                  log_file=args.log_dir / f"{name}.log", debug=args.debug)
                proc = ns.popen(spec.command(), spec.log_file)
                specs.append((spec, proc))
                params += [f"{name}_grpc='{spec.grpc_addr}'", f"{name}_thrift={thrift_port}"]
            for spec, proc in specs:
                wait_ready(spec, lambda p=proc: p.poll() is None, probe=ns.probe)
            cmd = [str(ptf), "--test-dir", str(ROOT / "ptf_tests"), "--pypath", str(ROOT),
                   "--log-file", str(args.log_dir / "ptf.log"),
                   "--test-params", ";".join(params), *ptf_ifaces, *args.tests]
            print(f"PTF: {len(SWITCHES)} switches in namespace {ns.name}, logs in {args.log_dir}",
                  flush=True)
            rc = subprocess.run(["ip", "netns", "exec", ns.name, *cmd]).returncode
    except Bmv2Error as e:
        print(e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; namespace and switches removed", file=sys.stderr)
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
