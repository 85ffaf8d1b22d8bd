"""Scale benchmark: how much fits, and still passes traffic, on this machine.

Per NPE (one live node, the controller as its own process): fastpaths
allocated until the SRM refuses, then packets through the last one;
filters written until the fastpath's quota (the NPE's whole filter table)
is full, then a packet that only the last filter matches.
Per testbed (Mininet): chains of more and more SPP nodes, more and more
slices on two nodes, more and more end hosts on one node; each must come
up and carry a ping end to end over the overlay. Memory: resident size of
each simple_switch_grpc process.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller import pipeline as pl
from controller.p4rt import P4Type
from mininet_topo.livenode import END_HOST, IF1, LC_IF1_MAC, LiveNode
from mininet_topo.sppnet import SppNet, SppNetError
from slices.client import SppError

from .controlplane import ControllerProcess

NH = "192.168.1.200"


def switch_rss_mb(run_dir: Path) -> list[float]:
    out = []
    for f in (run_dir / "pids").glob("*.pid"):
        name = f.stem
        if not (name.endswith("lc") or name.endswith("npe")):
            continue
        try:
            status = Path(f"/proc/{int(f.read_text())}/status").read_text()
        except (OSError, ValueError):
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmRSS"))
        out.append(kb / 1024)
    return out


def forward_through(s, fpid, node: LiveNode, dst: str, fid: int | None = None) -> bool:
    """Two meta-interfaces and (unless given) a filter; True if a tunnel
    packet for ``dst`` comes out of the second meta-interface."""
    # Bandwidth is policed from bind_queue on: the output meta-interface
    # needs some for the probe packet to pass.
    s.resrv_fpath_ifbw(fpid, 1, 1000)
    mi1 = s.alloc_udp_tunnel(fpid, 1, 0)
    mi2 = s.alloc_udp_tunnel(fpid, 1, 500)
    s.bind_queue(fpid, mi2["mi"], [0])
    if fid is None:
        s.write_fltr(fpid, 1, key={"dst_addr": dst}, mask={"dst_addr": "255.255.255.255"},
                     result={"action": "forward", "meta_if": mi2["mi"], "nh_addr": NH,
                             "nh_port": 30000, "queue": 0, "stats": 0})
    frame = bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                  / UDP(sport=45000, dport=mi1["port"], chksum=0)
                  / IP(src="10.9.0.1", dst=dst) / UDP(sport=1, dport=2) / Raw(b"x" * 32))
    got = [Ether(p) for p in node.send_and_capture("ext0t", [frame], "ext0t")]
    return any(IP in p and p[IP].src == IF1 and UDP in p and p[UDP].sport == mi2["port"]
               for p in got)


def per_npe(log=print) -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="spp-bench-sc-") as tmp, \
            LiveNode(Path(tmp), tag="241") as node, ControllerProcess(node, Path(tmp)) as ctl:
        s = ctl.slice()
        fps, t = [], time.monotonic()
        try:
            while True:
                fps.append(s.alloc_fastpath(bw=2000, filters=1, queues=1, buffers=1,
                                            stats=1)["fpid"])
        except SppError as e:
            refusal = f"{e.name}: {e.message}"
        out["fastpaths"] = {"count": len(fps), "seconds": time.monotonic() - t,
                            "refusal": refusal,
                            "last_forwards": forward_through(s, fps[-1], node, "10.1.2.3")}
        for f in fps:
            s.free_fastpath(f)
        log(f"  fastpaths per NPE: {len(fps)} (then {refusal[:60]}...); last one forwards: "
            f"{out['fastpaths']['last_forwards']}")
        cap = pl.npe_pipeline().size(P4Type.table, pl.Npe.FILTER)
        fp = s.alloc_fastpath(bw=10_000, filters=cap, queues=1, buffers=1, stats=1)["fpid"]
        s.resrv_fpath_ifbw(fp, 1, 1000)
        mi1 = s.alloc_udp_tunnel(fp, 1, 0)
        mi2 = s.alloc_udp_tunnel(fp, 1, 500)["mi"]
        s.bind_queue(fp, mi2, [0])
        clients = [ctl.slice() for _ in range(8)]

        def addr(i):
            return f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}"

        def one(i):
            clients[i % 8].write_fltr(fp, i, key={"dst_addr": addr(i)},
                                      mask={"dst_addr": "255.255.255.255"},
                                      result={"action": "forward", "meta_if": mi2,
                                              "nh_addr": NH, "nh_port": 30000, "queue": 0,
                                              "stats": 0})
        t = time.monotonic()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(cap)))
        took = time.monotonic() - t
        try:
            one(cap)
            refusal = "none"
        except SppError as e:
            refusal = f"{e.name}: {e.message}"
        # The last filter has the lowest precedence: only it matches this packet.
        frame = bytes(Ether(dst=LC_IF1_MAC) / IP(src=END_HOST, dst=IF1)
                      / UDP(sport=45000, dport=mi1["port"], chksum=0)
                      / IP(src="10.9.0.1", dst=addr(cap - 1)) / UDP(sport=1, dport=2)
                      / Raw(b"x" * 32))
        got = [Ether(p) for p in node.send_and_capture("ext0t", [frame], "ext0t")]
        ok = any(IP in p and p[IP].src == IF1 and p[IP].dst == NH for p in got)
        out["filters"] = {"count": cap, "seconds": took, "rate": cap / took,
                          "refusal": refusal, "last_forwards": ok}
        log(f"  filters per NPE: {cap} in {took:.0f} s; the next is refused ({refusal[:40]}); "
            f"a packet only the last filter matches is forwarded: {ok}")
        for c in clients:
            c.close()
        s.close()
    return out


def chain(n_nodes: int, n_slices: int = 1, hosts_on_one: int = 0) -> dict:
    nodes = [f"n{i}" for i in range(1, n_nodes + 1)]
    links = [{"a": a, "b": b, "bw_mbps": 100} for a, b in zip(nodes, nodes[1:], strict=False)]
    if hosts_on_one:
        hosts = [{"name": f"h{i}", "node": nodes[0]} for i in range(1, hosts_on_one + 1)]
    else:
        hosts = [{"name": "h1", "node": nodes[0]}, {"name": "h2", "node": nodes[-1]}]
    slices = [{"name": f"s{k}", "overlay": f"10.{k + 1}.0.0/16", "mi_bw_kbps": 1000}
              for k in range(n_slices)]
    return {"name": "scale", "nodes": nodes, "links": links, "hosts": hosts, "slices": slices}


def bring_up(topo: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(topo, f)
    t0 = time.monotonic()
    try:
        with SppNet(f.name) as spp:
            up = time.monotonic() - t0
            hosts = list(spp.plan.hosts.values())
            src = spp.net[hosts[0].name]
            ok = True
            for sl_i in range(len(topo["slices"])):
                dst = hosts[-1].tunnels[sl_i]["overlay_addr"]
                ok &= "1 received" in src.cmd(f"ping -c 1 -W 3 {dst}") or \
                    "1 received" in src.cmd(f"ping -c 1 -W 3 {dst}")
            rss = switch_rss_mb(spp.run_dir)
        return {"up_s": up, "ping": ok, "switches": len(rss),
                "rss_mb_median": statistics.median(rss) if rss else None}
    except (SppNetError, RuntimeError) as e:
        return {"up_s": time.monotonic() - t0, "ping": False, "error": str(e)[:300]}
    finally:
        Path(f.name).unlink(missing_ok=True)


def sweep(label: str, values, make, log=print, budget_s: float = 150) -> list[dict]:
    rows = []
    for v in values:
        r = {label: v, **bring_up(make(v))}
        rows.append(r)
        log(f"  {label}={v}: up in {r['up_s']:.1f} s, ping {'ok' if r['ping'] else 'FAILED'}"
            + (f", {r['switches']} switches, {r['rss_mb_median']:.0f} MB each"
               if r.get("rss_mb_median") else "") + (f" ({r['error']})" if "error" in r else ""))
        if not r["ping"] or r["up_s"] > budget_s:
            break
    return rows


def run(log=print, nodes=(2, 4, 8, 16, 32, 48), slices=(1, 4, 8, 16, 24),
        hosts=(2, 8, 32, 64, 128)) -> dict:
    return {"per_npe": per_npe(log),
            "nodes": sweep("nodes", nodes, lambda n: chain(n), log),
            "slices": sweep("slices", slices, lambda k: chain(2, n_slices=k), log),
            "hosts": sweep("hosts", hosts, lambda h: chain(1, hosts_on_one=h), log)}
