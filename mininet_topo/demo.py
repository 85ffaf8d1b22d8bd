"""make demo: the SPP testbed end to end, without a human.

Brings up a topology (default: two SPP nodes with a peering link, an end
host behind each, two slices), lets each slice configure its IPv4
meta-router over REST from its own slice host, then checks, with real
traffic through BMv2:

  ping        end host to end host through both meta-routers, each slice
  iperf3      TCP through the overlay
  traceroute  hops answered by the slices' slow paths (TTL expiry)
  stats       read_stats, called on the slice host, equals what was sent
  isolation   one slice's traffic never shows in the other's counters, and
              a slice cannot name the other's resources

prints a summary table and exits non-zero if any check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass

from .netns import terminate
from .sppnet import ROOT, SppNet, SppNetError, add_testbed_args
from .topology import Plan, shortest_next_hops

PING_SIZE = 100


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def spp_slice(spp: SppNet, slice_host: str, function: str, **args):
    """Call the slice API from a slice host, as its programs do (slices.cli)."""
    argv = " ".join(f"{k}='{json.dumps(v)}'" for k, v in args.items())
    out = spp.net[slice_host].cmd(
        f"PYTHONPATH={ROOT} {sys.executable} -m slices.cli {function} {argv}; echo rc=$?")
    body, _, rc = out.rpartition("rc=")
    if rc.strip() != "0":
        return {"error": body.strip().splitlines()[-1] if body.strip() else "", "rc": int(rc)}
    return json.loads(body)


def host_addr(plan: Plan, host: str, slice_name: str) -> str:
    return next(t["overlay_addr"] for t in plan.hosts[host].tunnels if t["slice"] == slice_name)


def stats_index(spp: SppNet, slice_host: str, prefix: str) -> int:
    state = spp.router_state(slice_host)
    return next(f["stats"] for f in state["filters"] if f.get("prefix") == prefix)


def ping(spp, src, dst_addr, count=10, size=56, interval=0.2) -> tuple[bool, str, int]:
    out = spp.net[src].cmd(f"ping -n -q -c {count} -s {size} -i {interval} -W 2 {dst_addr}")
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    rcvd = int(m.group(2)) if m else 0
    detail = f"{rcvd}/{count} replies" + (f", avg rtt {rtt.group(1)} ms" if rtt else "")
    return bool(m) and rcvd == count, detail, rcvd


def check_ping(spp, src, dst, slice_name) -> Check:
    addr = host_addr(spp.plan, dst, slice_name)
    ok, detail, _ = ping(spp, src, addr, count=10)
    return Check(f"ping {src}->{dst} ({slice_name})", ok, f"{addr}: {detail}")


def check_iperf(spp, src, dst, slice_name, seconds=5) -> Check:
    addr = host_addr(spp.plan, dst, slice_name)
    server = spp.net[dst].popen(["iperf3", "-s", "-1", "-B", addr])
    try:
        time.sleep(0.5)
        out = spp.net[src].cmd(f"iperf3 -c {addr} -t {seconds} -J")
    finally:
        terminate(server)
    try:
        end = json.loads(out)["end"]
        mbps = end["sum_received"]["bits_per_second"] / 1e6
        retr = end["sum_sent"].get("retransmits", 0)
    except (ValueError, KeyError):
        return Check(f"iperf3 {src}->{dst} ({slice_name})", False, out.strip()[-200:])
    return Check(f"iperf3 {src}->{dst} ({slice_name})", mbps > 1.0,
                 f"{mbps:.1f} Mb/s TCP over {seconds} s, {retr} retransmits")


def check_traceroute(spp, src, dst, slice_name) -> Check:
    addr = host_addr(spp.plan, dst, slice_name)
    out = spp.net[src].cmd(f"traceroute -n -q 1 -w 2 -m 10 {addr}")
    hops = re.findall(r"^\s*\d+\s+([\d.]+)", out, re.M)
    # Expected: the meta-router of every node on the path, then the host.
    path = [spp.plan.hosts[src].node]
    nxt = shortest_next_hops(spp.spec.nodes, spp.spec.links)
    while path[-1] != spp.plan.hosts[dst].node:
        path.append(nxt[path[-1]][spp.plan.hosts[dst].node])
    base = addr.rsplit(".", 2)[0]
    want = [f"{base}.255.{spp.plan.nodes[n].index}" for n in path] + [addr]
    return Check(f"traceroute {src}->{dst} ({slice_name})", hops == want,
                 " ".join(hops) if hops == want else f"got {hops}, want {want}")


def check_stats_and_isolation(spp, src, dst, measured, other) -> list[Check]:
    """Ping on slice ``measured`` with a known size: the forwarding filter's
    counters read back over the API, on every node of the path, equal what
    was sent; slice ``other``'s counters do not move."""
    plan = spp.plan
    dst_node = plan.hosts[dst].node
    count = 20
    addr = host_addr(plan, dst, measured)
    prefix = addr.rsplit(".", 1)[0] + ".0/24"
    o_addr = host_addr(plan, dst, other)
    o_prefix = o_addr.rsplit(".", 1)[0] + ".0/24"
    watch = []
    for node in spp.spec.nodes:
        sh, osh = f"{node}{measured}", f"{node}{other}"
        idx, oidx = stats_index(spp, sh, prefix), stats_index(spp, osh, o_prefix)
        spp_slice(spp, sh, "clear_stats", fpid=1, index=idx)
        watch.append((node, sh, idx, osh, oidx, spp_slice(spp, osh, "read_stats", fpid=1,
                                                          index=oidx)))
    ok, detail, _ = ping(spp, src, addr, count=count, size=PING_SIZE, interval=0.05)
    # Frame at the NPE: Ethernet + outer IPv4 + UDP + inner IPv4 + ICMP + payload.
    frame = 14 + 20 + 8 + 20 + 8 + PING_SIZE
    checks = [Check(f"ping {src}->{dst} ({measured}, {PING_SIZE} B)", ok, detail)]
    path_nodes = {plan.hosts[src].node, dst_node}
    for node, sh, idx, osh, oidx, before in watch:
        st = spp_slice(spp, sh, "read_stats", fpid=1, index=idx)
        want = (count, count * frame) if node in path_nodes else (0, 0)
        got = (st.get("pre_packets"), st.get("pre_bytes"))
        got_post = (st.get("post_packets"), st.get("post_bytes"))
        checks.append(Check(f"read_stats {node} ({measured})", got == want == got_post,
                            f"filter {prefix}: {got[0]} packets / {got[1]} bytes before the "
                            f"queue, {got_post[0]}/{got_post[1]} after; sent {want[0]}/{want[1]}"))
        after = spp_slice(spp, osh, "read_stats", fpid=1, index=oidx)
        checks.append(Check(f"isolation {node} ({other})", after == before,
                            f"{other}'s filter {o_prefix} stayed at "
                            f"{after.get('pre_packets')} packets"))
    return checks


def run_checks(spp: SppNet) -> list[Check]:
    hosts = list(spp.plan.hosts)
    slices = [s.name for s in spp.spec.slices]
    src, dst = hosts[0], hosts[-1]
    checks = []
    for sl in slices:
        checks.append(check_ping(spp, src, dst, sl))
        checks.append(check_ping(spp, dst, src, sl))
    checks.append(check_iperf(spp, src, dst, slices[0]))
    checks.append(check_traceroute(spp, src, dst, slices[0]))
    if len(slices) > 1:
        checks += check_stats_and_isolation(spp, src, dst, slices[1], slices[0])
    return checks


def summary(checks: list[Check], spp: SppNet | None = None) -> str:
    w = max(len(c.name) for c in checks)
    lines = [f"{'check':<{w}}  result  detail", f"{'-' * w}  ------  {'-' * 40}"]
    lines += [f"{c.name:<{w}}  {'PASS' if c.ok else 'FAIL':<6}  {c.detail}" for c in checks]
    if spp:
        lines += ["", *(f"note: {n}" for n in spp.notes),
                  f"note: up in {spp.timings.get('ready', 0):.1f} s; logs in {spp.run_dir}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_testbed_args(ap)
    args = ap.parse_args(argv)
    try:
        with SppNet(args.topo, tunnel=args.tunnel) as spp:
            print(f"SPP testbed {spp.spec.name} up in {spp.timings['ready']:.1f} s: "
                  f"{len(spp.plan.nodes)} nodes, {len(spp.plan.hosts)} end hosts, "
                  f"{len(spp.plan.slice_hosts)} slice hosts", flush=True)
            checks = run_checks(spp)
            print(summary(checks, spp))
    except SppNetError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
