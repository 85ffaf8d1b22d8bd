"""make run: an SPP testbed and a Mininet CLI with SPP commands.

    sudo .venv/bin/python -m mininet_topo.run [--topo default|geni5|FILE]

Brings up the topology's SPP nodes (a BMv2 line card and NPE each), the
controller, and the sample slices (each slice host configures its IPv4
meta-router over REST and runs its slow path), then opens Mininet's CLI.
Besides Mininet's commands (h1 ping 10.1.2.1, h1 traceroute -n 10.1.2.1,
xterm, ...), the CLI has:

  slices                       slices and their hosts
  slice add NAME [on N1,N2]    a new slice (default: on every node), while the testbed runs
  slice del NAME               remove a slice and everything it holds
  fastpaths                    fastpaths: node, NPE, partitions, filters
  filters SLICEHOST            the filters of a slice host's meta-router
  stats SLICEHOST [INDEX ...]  read_stats, called on the slice host
  spp SLICEHOST FUNCTION ARGS  any slice API call, from that slice host

Leaving the CLI (exit or Ctrl-D) removes everything: hosts, links,
switches, controller. After a crash, `make clean` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from mininet.cli import CLI
from mininet.log import setLogLevel

from .demo import spp_slice
from .picture import web_url
from .sppnet import SppNet, SppNetError, add_testbed_args
from .topology import TopologyError


def table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    w = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    out = ["  ".join(f"{c:<{w[c]}}" for c in cols), "  ".join("-" * w[c] for c in cols)]
    out += ["  ".join(f"{str(r.get(c, '')):<{w[c]}}" for c in cols) for r in rows]
    return "\n".join(out)


class SppCLI(CLI):
    """Mininet's CLI with the SPP commands."""

    prompt = "spp> "

    def __init__(self, spp: SppNet, **kw):
        self.spp = spp
        CLI.__init__(self, spp.net, **kw)

    def _slice_host(self, name: str) -> bool:
        if name not in {sh.name for sh in self.spp.plan.slice_hosts}:
            print(f"no slice host {name!r}; slice hosts: "
                  + ", ".join(sh.name for sh in self.spp.plan.slice_hosts))
            return False
        return True

    def do_web(self, _line):
        "Where the web view and the Prometheus metrics are (this machine only)."
        print(f"web view: {web_url()}  metrics: {web_url()}metrics  "
              f"topology: {self.spp.run_dir / 'topology.svg'}")

    def do_slices(self, _line):
        "List slices, their nodes, data and management addresses."
        rows = self.spp.admin("GET", "/admin/slices")
        hosts = {(sh.slice, sh.node): sh.name for sh in self.spp.plan.slice_hosts}
        for r in rows:
            r["host"] = hosts.get((r["name"], r["node"]), "")
        print(table(rows, ["name", "node", "host", "data_addr", "mgmt_addr", "lc_port"]))

    def do_slice(self, line):
        """slice add NAME [on NODE,NODE...] [overlay=PREFIX] [bw=KBPS]: a new slice while the
        testbed runs (its hosts, secret, tunnels, meta-routers, slow paths);
        slice del NAME: remove it, with everything it holds on the switches."""
        args = line.split()
        usage = ("usage: slice add NAME [on NODE,NODE...] [overlay=PREFIX] [bw=KBPS]"
                 " | slice del NAME")
        if len(args) < 2 or args[0] not in ("add", "del"):
            print(usage)
            return
        try:
            if args[0] == "del":
                self.spp.del_slice(args[1])
                print(f"slice {args[1]} removed")
                return
            nodes, opts, rest = None, {}, args[2:]
            if rest[:1] == ["on"] and len(rest) > 1:
                nodes, rest = rest[1].split(","), rest[2:]
            for a in rest:
                k, _, v = a.partition("=")
                if k not in ("overlay", "bw") or not v:
                    print(usage)
                    return
                opts[k] = v
            new = self.spp.add_slice(args[1], nodes, overlay=opts.get("overlay", ""),
                                     **({"mi_bw_kbps": int(opts["bw"])} if "bw" in opts else {}))
        except (SppNetError, TopologyError, ValueError) as e:
            print(f"slice {args[0]}: {e}")
            return
        sh = new[0]
        print(f"slice {args[1]}: overlay {sh.router['overlay']}, hosts "
              + ", ".join(x.name for x in new))
        for h in self.spp.plan.hosts.values():
            for t in h.tunnels:
                if t["slice"] == args[1]:
                    print(f"  {h.name}: {t['dev']} {t['overlay_addr']}")

    def do_fastpaths(self, _line):
        "List fastpaths: slice, node, NPE, global id, partitions, filters in use."
        rows = self.spp.admin("GET", "/admin/state")["fastpaths"]
        for r in rows:
            r["fpid"] = r["local_id"]
            r["filters"] = f"{r['n_filters_used']}/{r['n_filters']}"
            r["stats"] = f"[{r['stats_base']}, +{r['n_stats']})"
            r["queues"] = f"[{r['queue_base']}, +{r['n_queues']})"
        print(table(rows, ["slice", "node", "npe", "fpid", "gid", "filters", "n_meta_ifs",
                           "stats", "queues", "bw_kbps"]))

    def do_filters(self, line):
        "filters SLICEHOST: the meta-router's filters (get_fltr_byfid on the slice host)."
        host = line.strip()
        if not self._slice_host(host):
            return
        rows = []
        for f in self.spp.router_state(host)["filters"]:
            got = spp_slice(self.spp, host, "get_fltr_byfid", fpid=1, fid=f["fid"])
            if "error" in got:
                print(got["error"])
                return
            res = got["result"]
            rows.append({"fid": f["fid"], "type": got["type"],
                         "key": " ".join(f"{k}={v}" for k, v in got["key"].items()) or "*",
                         "mask": " ".join(f"{k}={v}" for k, v in got["mask"].items()) or "*",
                         "result": res["action"] + (f" mi={res['meta_if']} -> {res['nh_addr']}:"
                                                    f"{res['nh_port']} q={res['queue']}"
                                                    if res["action"] == "forward" else ""),
                         "stats": res["stats"]})
        print(table(rows, ["fid", "type", "key", "mask", "result", "stats"]))

    def do_stats(self, line):
        "stats SLICEHOST [INDEX ...]: read_stats on the slice host (default: every filter's)."
        args = line.split()
        if not args or not self._slice_host(args[0]):
            return
        state = self.spp.router_state(args[0])
        names = {f["stats"]: f.get("prefix") or f"substrate {f.get('substrate')}"
                 for f in state["filters"]}
        indices = [int(a) for a in args[1:]] or sorted(names)
        rows = []
        for i in indices:
            st = spp_slice(self.spp, args[0], "read_stats", fpid=1, index=i)
            rows.append({"index": i, "filter": names.get(i, ""), **st})
        print(table(rows, ["index", "filter", "pre_packets", "pre_bytes", "post_packets",
                           "post_bytes", "error"]))

    def do_spp(self, line):
        "spp SLICEHOST FUNCTION [name=value ...]: any slice API call, from the slice host."
        args = line.split()
        if len(args) < 2 or not self._slice_host(args[0]):
            print("usage: spp SLICEHOST FUNCTION [name=value ...]")
            return
        kw = {}
        for a in args[2:]:
            k, _, v = a.partition("=")
            try:
                kw[k] = json.loads(v)
            except ValueError:
                kw[k] = v
        print(json.dumps(spp_slice(self.spp, args[0], args[1], **kw), indent=2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_testbed_args(ap)
    ap.add_argument("--no-slices", action="store_true", help="no sample slices")
    ap.add_argument("--pcap", action="store_true", help="pcaps of every switch port")
    ap.add_argument("--debug", action="store_true", help="BMv2 per-packet trace in switch logs")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="say what start-up and shut-down do (the testbed's and Mininet's steps)")
    args = ap.parse_args(argv)
    # Our own messages at INFO only with -v; Mininet at "output", its default,
    # the level at which its CLI prints what host commands print.
    # (Not through the root logger: Mininet's logger passes its records to it.)
    ours = logging.getLogger("spp")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("*** %(message)s"))
    ours.addHandler(handler)
    ours.propagate = False
    ours.setLevel(logging.INFO if args.verbose else logging.WARNING)
    setLogLevel("info" if args.verbose else "output")
    try:
        with SppNet(args.topo, tunnel=args.tunnel, slices=not args.no_slices, pcap=args.pcap,
                    debug=args.debug) as spp:
            logs = os.path.relpath(spp.run_dir)
            print(f"SPP testbed {spp.spec.name} up in {spp.timings['ready']:.1f} s "
                  f"(logs: {spp.run_dir if logs.startswith('..') else logs})")
            print(f"web view: {web_url()}  (Prometheus: {web_url()}metrics; this machine only)")
            for n in spp.notes:
                print(f"note: {n}")
            if spp.with_slices:
                hosts = list(spp.plan.hosts.values())
                a, b = hosts[0], hosts[-1]
                print(f"try: {a.name} ping {b.tunnels[0]['overlay_addr']}    "
                      f"{a.name} traceroute -n {b.tunnels[0]['overlay_addr']}    "
                      f"fastpaths    stats {spp.plan.slice_hosts[0].name}")
            SppCLI(spp)
    except SppNetError as e:
        print(f"run: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
