"""Sample slice program: an IPv4 meta-router, configured through the slice API.

    python -m slices.samples.ipv4_router [--config /var/run/spp/router.json]
    python -m slices.samples.ipv4_router --free

From a configuration naming its meta-interfaces (interface, UDP port,
bandwidth, next hop) and its routes (overlay prefix -> meta-interface), it:

1. allocates a fastpath (alloc_fastpath) and reserves interface bandwidth;
2. allocates the meta-interfaces (alloc_udp_tunnel), one queue each, bound
   to it at its bandwidth (bind_queue, set_queue_params);
3. installs one filter per route, longest prefix first: the SPP resolves
   overlapping filters by filter ID, so lower IDs for longer prefixes give
   longest-prefix match; a local-delivery filter for the router's own
   overlay address; and one substrate-only filter per meta-interface, for
   datagrams the slow path sends back with a forwarding key.

It writes what it got (fpInfo, meta-interface numbers, filters and their
stats indices) to router.state.json next to the configuration, for the
slow path (slices/samples/slowpath.py) and for you.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path

from slices.client import Slice, SppError

ALL32 = "255.255.255.255"
LOCAL_FID, ROUTE_FID_BASE, SUBSTRATE_FID_BASE = 1, 10, 1000


def configure(s: Slice, cfg: dict) -> dict:
    fp = s.alloc_fastpath(**cfg["fastpath"])
    f = fp["fpid"]
    per_if: dict[int, int] = {}
    for m in cfg["meta_ifs"]:
        per_if[m["ifn"]] = per_if.get(m["ifn"], 0) + m["bw"]
    for ifn, bw in per_if.items():
        s.resrv_fpath_ifbw(f, ifn, bw)
    mis, stats = {}, 1
    for q, m in enumerate(cfg["meta_ifs"]):
        mi = s.alloc_udp_tunnel(f, m["ifn"], m["bw"], port=m["port"])
        s.bind_queue(f, mi["mi"], [q])
        s.set_queue_params(f, q, threshold=0, bw=m["bw"])
        mis[m["name"]] = {"mi": mi["mi"], "port": mi["port"], "ifn": m["ifn"], "queue": q,
                          "nh_addr": m["nh_addr"], "nh_port": m["nh_port"]}
    filters = []
    s.write_fltr(f, LOCAL_FID, key={"dst_addr": cfg["router_addr"]}, mask={"dst_addr": ALL32},
                 result={"action": "local", "stats": 0})
    filters.append({"fid": LOCAL_FID, "prefix": f"{cfg['router_addr']}/32", "via": "local",
                    "stats": 0})
    routes = sorted(cfg["routes"], key=lambda r: -ipaddress.IPv4Network(r["prefix"]).prefixlen)
    for i, r in enumerate(routes):
        net = ipaddress.IPv4Network(r["prefix"])
        m = mis[r["via"]]
        fid = ROUTE_FID_BASE + i
        s.write_fltr(f, fid, key={"dst_addr": str(net.network_address)},
                     mask={"dst_addr": str(net.netmask)},
                     result={"action": "forward", "meta_if": m["mi"], "nh_addr": m["nh_addr"],
                             "nh_port": m["nh_port"], "queue": m["queue"], "stats": stats})
        filters.append({"fid": fid, "prefix": r["prefix"], "via": r["via"], "stats": stats})
        stats += 1
    for i, (name, m) in enumerate(mis.items()):
        fid = SUBSTRATE_FID_BASE + i
        s.write_fltr(f, fid, type=1,
                     key={"src_port": m["port"], "dst_addr": m["nh_addr"],
                          "dst_port": m["nh_port"]},
                     mask={"src_port": 0xFFFF, "dst_addr": ALL32, "dst_port": 0xFFFF},
                     result={"action": "forward", "meta_if": m["mi"], "nh_addr": m["nh_addr"],
                             "nh_port": m["nh_port"], "queue": m["queue"], "stats": stats})
        filters.append({"fid": fid, "substrate": name, "stats": stats})
        stats += 1
    return {"fpinfo": fp, "router_addr": cfg["router_addr"], "meta_ifs": mis,
            "routes": cfg["routes"], "filters": filters}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("/var/run/spp/router.json"))
    ap.add_argument("--free", action="store_true", help="free the fastpath of the state file")
    args = ap.parse_args(argv)
    state_path = args.config.with_name("router.state.json")
    try:
        with Slice() as s:
            if args.free:
                state = json.loads(state_path.read_text())
                s.free_fastpath(state["fpinfo"]["fpid"])
                state_path.unlink()
                return 0
            state = configure(s, json.loads(args.config.read_text()))
    except SppError as e:
        print(f"ipv4_router: {e}", file=sys.stderr)
        return 1
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_path)
    print(f"ipv4_router: fastpath {state['fpinfo']['fpid']} with {len(state['meta_ifs'])} "
          f"meta-interfaces and {len(state['filters'])} filters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
