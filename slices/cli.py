"""spp-slice: call the SPP slice API from a slice host's shell.

    spp-slice get_interfaces
    spp-slice alloc_fastpath bw=10000 filters=16 queues=4 buffers=64 stats=16
    spp-slice write_fltr fpid=1 fid=10 'key={"dst_addr":"10.1.0.0"}' \\
              'mask={"dst_addr":"255.255.0.0"}' 'result={"action":"drop"}'

Arguments are name=value; values are read as JSON when they parse as JSON
(numbers, objects, lists), as strings otherwise. The result is printed as
JSON; a failure prints the SPP error and exits with its code. The controller
and the slice's secret come from the slice host (see slices/client.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from .client import SPP_FUNCTIONS, Slice, SppError


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="spp-slice", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1] + "\nfunctions: "
                                 + ", ".join(SPP_FUNCTIONS),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("function", choices=SPP_FUNCTIONS, metavar="function")
    ap.add_argument("args", nargs="*", metavar="name=value")
    ap.add_argument("--controller", help="controller URL (default: from the slice host)")
    args = ap.parse_args(argv)
    kwargs = {}
    for a in args.args:
        name, sep, value = a.partition("=")
        if not sep:
            ap.error(f"{a!r}: expected name=value")
        kwargs[name] = parse_value(value)
    try:
        with Slice(controller=args.controller) as s:
            result = s.call(args.function, **kwargs)
    except SppError as e:
        print(f"spp-slice: {e}", file=sys.stderr)
        return e.code
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
