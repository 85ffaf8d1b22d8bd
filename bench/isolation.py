"""Isolation benchmark: slice A at its reservation while other slices flood.

One line card and one NPE (BMv2 running lc.p4 and npe.p4), programmed with
the controller's own translation (controller/translate.py), in a private
network namespace. Every slice has a sender and a receiver end host of its
own, each on an access link of its own to the LC (a veth, shaped by tbf at
``link_mbps``, with ``mpu`` so that a link carries at most ``link_pps``
packets: access links sized from the switches' measured packet capacity).
Each slice's fastpath forwards everything arriving on its sender's
meta-interface to its receiver, through a queue bound at the slice's
reservation.

Slice A sends UDP at its reservation R (tcpreplay --pps) for the whole run:
idle (A alone), flood (B, or B, C and D, send 64-byte packets their own
filters forward, as fast as their links allow), idle again. Measured at the
receivers: A's delivered rate over time and its one-way latency (kernel
timestamps on A's two links, matched by sequence number, as in
bench/dataplane.py); B's delivered rate.

``enforce=False`` programs the same entries without any meter (queues,
fastpaths and the LC's per-fastpath policing all unconfigured): the data plane
before issue 9.
"""

from __future__ import annotations

import itertools
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from controller import pipeline as pl
from controller import translate as tr
from controller.p4rt import MODIFY, MeterCell, SwitchConnection
from controller.testbed import Interface, Node, Npe, Route, Switch
from mininet_topo.bmv2 import SwitchSpec, wait_ready
from mininet_topo.netns import InNamespace, Namespace

MARK = b"SPPI"
LC_MAC, NPE_MAC = "02:00:00:00:0c:01", "02:00:00:00:0c:02"
NPE_ADDR = "10.0.1.2"
NPE_LC_PORT = 8                     # LC port towards the NPE
MGMT = ("sppiso0", "10.252.0.1/30", "10.252.0.2")
LC_GRPC, NPE_GRPC = 9559, 9560
NAMES = "abcd"


@dataclass
class Config:
    flooders: int = 1                # slices B.. that flood
    enforce: bool = True
    reservation_kbps: int = 2_000    # A's (and each flooder's) reservation
    a_frame: int = 500               # bytes of A's frames on the wire
    flood_frame: int = 200           # small, and above R in bytes at the links' packet rate
    link_mbps: float = 50
    # Packet budgets, from the switches' capacity measured on this machine (make
    # bench: NPE fastpath ~9.4k, LC demux ~20-25k packets/s of 64 bytes, each
    # switch alone on the machine), derated to what is left while both switches,
    # the generators and the captures share its 2 cores.
    npe_pps: int = 2_400             # the NPE's budget, shared by the fastpaths (LC police)
    lc_pps: int = 6_000              # what the senders' access links may offer the LC together
    idle_s: float = 4
    flood_s: float = 8
    bin_s: float = 0.5

    @property
    def link_pps(self) -> int:
        """Packets/s an access link carries (tbf mpu): the LC's budget, shared."""
        return self.lc_pps // (1 + self.flooders)


def payload(size: int, seq: int, overhead: int) -> bytes:
    return (MARK + seq.to_bytes(4, "big")).ljust(max(size - overhead, 8), b"\0")


def seq_of(frame: bytes) -> int | None:
    i = frame.find(MARK)
    return int.from_bytes(frame[i + 4:i + 8], "big") if i >= 0 else None


@dataclass
class SliceNet:
    """One slice: its fastpath, and its two end hosts' links (LC ports)."""

    index: int
    kbps: int
    fp: dict = field(init=False)

    @property
    def name(self) -> str:
        return NAMES[self.index]

    @property
    def tx_port(self) -> int:
        return 2 * self.index

    @property
    def rx_port(self) -> int:
        return 2 * self.index + 1

    def if_addr(self, port: int) -> str:
        return f"192.168.{10 + port}.1"

    def host_addr(self, port: int) -> str:
        return f"192.168.{10 + port}.100"

    def frame(self, src_mac: str, size: int, seq: int) -> bytes:
        inner = (IP(src=f"10.{self.index + 1}.1.1", dst=f"10.{self.index + 1}.2.1")
                 / UDP(sport=7000, dport=7001) / Raw(payload(size, seq, 70)))
        return bytes(Ether(dst=LC_MAC, src=src_mac)
                     / IP(src=self.host_addr(self.tx_port), dst=self.if_addr(self.tx_port))
                     / UDP(sport=45000, dport=20001, chksum=0) / inner)


class Isolation(InNamespace):
    """The testbed of one run (a context manager)."""

    def __init__(self, cfg: Config, workdir: Path):
        self.cfg = cfg
        self.workdir = workdir
        self.ns = Namespace("spp-iso")
        self.slices = [SliceNet(i, cfg.reservation_kbps) for i in range(1 + cfg.flooders)]

    # ---- set-up ----
    def _build(self):
        ns, cfg = self.ns, self.cfg
        ports = {NPE_LC_PORT: "lcnpe"}
        ns.veth("lcnpe", "npe0")
        for s in self.slices:
            for port, host in ((s.tx_port, f"{s.name}tx"), (s.rx_port, f"{s.name}rx")):
                ns.veth(host, f"lc{port}")
                ports[port] = f"lc{port}"
                ns.run("ethtool", "-K", host, "tx", "off", "rx", "off", check=False)
            # The sender's access link: its rate, and at most link_pps packets/s.
            mpu = int(cfg.link_mbps * 1e6 / 8 / cfg.link_pps)
            ns.run("tc", "qdisc", "add", "dev", f"{s.name}tx", "root", "tbf", "rate",
                   f"{cfg.link_mbps}mbit", "burst", "16kb", "latency", "20ms", "mpu", str(mpu))
        ns.link_to_root(MGMT[0], "mgmt0", MGMT[1], MGMT[2] + "/30")
        procs = []
        for name, sw_ports, grpc, thrift in (("lc", ports, LC_GRPC, 9090),
                                             ("npe", {0: "npe0"}, NPE_GRPC, 9091)):
            spec = SwitchSpec(name, sw_ports, grpc, thrift, log_file=self.workdir / f"{name}.log",
                              quiet=True)
            cmd = spec.command()
            cmd[cmd.index("--grpc-server-addr") + 1] = f"{MGMT[2]}:{grpc}"
            procs.append((spec, ns.popen(cmd, spec.log_file)))
        for spec, proc in procs:
            wait_ready(spec, lambda p=proc: p.poll() is None,
                       probe=lambda port: ns.probe(port, MGMT[2]))
        self._program()

    def node(self) -> tuple[Node, Npe]:
        cfg = self.cfg
        npe = Npe("npe", "", 0, addr=NPE_ADDR, port=0, mac=NPE_MAC, lc_port=NPE_LC_PORT,
                  lc_mac=LC_MAC, pps=cfg.npe_pps)
        ifaces, routes = [], []
        for s in self.slices:
            for port in (s.tx_port, s.rx_port):
                ifaces.append(Interface(port + 1, s.if_addr(port), port, LC_MAC, 100_000))
                host_if = f"{s.name}tx" if port == s.tx_port else f"{s.name}rx"
                routes.append(Route(f"192.168.{10 + port}.0/24", port, self.ns.mac(host_if)))
        return Node("iso", Switch("lc", "", 0), [npe], ifaces, routes), npe

    def _program(self):
        node, npe = self.node()
        lc_entries, lc_cells = tr.lc_base_entries(node), []
        npe_entries, npe_cells = tr.npe_base_entries(node, npe), []
        for s in self.slices:
            gid = s.index + 1
            fp = {"gid": gid, "local_id": 1, "stats_base": 4 * s.index, "n_stats": 4,
                  "queue_base": 4 * s.index, "n_queues": 4, "bw_kbps": 2 * s.kbps,
                  "ret_port": 40000 + s.index, "ld_port": 50000, "exc_port": 50001}
            s.fp = fp
            sl = {"data_addr": f"10.0.2.{10 + s.index}", "lc_port": 20 + s.index}
            mis = [{"mi": 1, "ifn": s.tx_port + 1, "addr": s.if_addr(s.tx_port), "port": 20001,
                    "bw_kbps": s.kbps},
                   {"mi": 2, "ifn": s.rx_port + 1, "addr": s.if_addr(s.rx_port), "port": 20002,
                    "bw_kbps": s.kbps}]
            queues = [{"qid": 0, "mi": 2, "bw_kbps": s.kbps, "threshold": 0}]
            npe_entries += tr.fastpath_entries(fp, sl, npe)
            for mi in mis:
                n_e, l_e = tr.meta_if_entries(fp, mi, node, npe)
                npe_entries += n_e
                lc_entries += l_e
            npe_entries.append(tr.filter_entry(fp, 10, {
                "type": 0, "key": {}, "mask": {},
                "result": {"action": "forward", "meta_if": 2, "nh_addr": s.host_addr(s.rx_port),
                           "nh_port": 30000, "queue": 0, "stats": 1}},
                tr.meta_if_encap(mis[1], node)))
            if self.cfg.enforce:      # what the controller sets (rmp, translate.node_intent)
                for qid, kbps in tr.queue_rates(fp, queues, mis).items():
                    npe_cells.append(MeterCell(pl.Npe.QUEUE_RATE, fp["queue_base"] + qid,
                                               *tr.queue_meter_rate(kbps)))
                npe_cells.append(MeterCell(pl.Npe.FASTPATH_RATE, gid,
                                           *tr.queue_meter_rate(fp["bw_kbps"])))
        if self.cfg.enforce:
            for gid, rate in tr.police_rates(npe, [s.fp for s in self.slices]).items():
                lc_cells.append(MeterCell(pl.Lc.POLICE, tr.lc_police_index(node, npe, gid), *rate))
        for port, entries, cells in ((LC_GRPC, lc_entries, lc_cells),
                                     (NPE_GRPC, npe_entries, npe_cells)):
            pipe = pl.lc_pipeline() if port == LC_GRPC else pl.npe_pipeline()
            with SwitchConnection(f"{MGMT[2]}:{port}", pipe) as conn:
                conn.set_pipeline()
                conn.insert(entries)
                if cells:
                    conn.write([(MODIFY, c) for c in cells])

    # ---- one run ----
    def rx(self, intf: str) -> tuple[int, int]:
        base = f"/sys/class/net/{intf}/statistics/"
        out = self.ns.run("cat", base + "rx_packets", base + "rx_bytes").stdout.split()
        return int(out[0]), int(out[1])

    def run(self) -> dict:
        cfg, a = self.cfg, self.slices[0]
        total = 2 * cfg.idle_s + cfg.flood_s
        a_pps = cfg.reservation_kbps * 1000 / 8 / cfg.a_frame
        count = int(a_pps * total)
        a_pcap = self.workdir / "a.pcap"
        a_mac = self.ns.mac("atx")
        wrpcap(str(a_pcap), [Ether(a.frame(a_mac, cfg.a_frame, i)) for i in range(count)])
        caps = {}
        for intf in ("atx", "arx"):
            f = self.workdir / f"cap-{intf}.pcap"
            caps[intf] = (f, subprocess.Popen(
                ["ip", "netns", "exec", self.ns.name, "tcpdump", "-q", "-Z", "root", "-U",
                 "--immediate-mode", "-B", "16384", "-s", "128", "-i", intf, "-w", str(f),
                 "udp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        samples, stop = [], threading.Event()
        rx_ifs = [f"{s.name}rx" for s in self.slices]

        def sample():
            while not stop.is_set():
                samples.append((time.monotonic(), {i: self.rx(i) for i in rx_ifs}))
                time.sleep(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        t0 = time.monotonic()
        sampler.start()
        sender = subprocess.Popen(["ip", "netns", "exec", self.ns.name, "tcpreplay", "-q",
                                   f"--pps={a_pps:g}", "-i", "atx", str(a_pcap)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(cfg.idle_s)
        floods = []
        for s in self.slices[1:]:
            pcap = self.workdir / f"flood-{s.name}.pcap"
            mac = self.ns.mac(f"{s.name}tx")
            wrpcap(str(pcap), [Ether(s.frame(mac, cfg.flood_frame, i)) for i in range(64)])
            floods.append(subprocess.Popen(
                ["ip", "netns", "exec", self.ns.name, "tcpreplay", "-q", "--topspeed",
                 "--loop=0", f"--duration={cfg.flood_s:g}", "-i", f"{s.name}tx", str(pcap)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        t_flood = time.monotonic() - t0
        for p in floods:
            p.wait(timeout=cfg.flood_s + 30)
        t_calm = time.monotonic() - t0
        sender.wait(timeout=total + 30)
        time.sleep(1.0)
        stop.set()
        sampler.join()
        for _, p in caps.values():
            p.send_signal(signal.SIGINT)
            p.wait(timeout=10)
        return self._analyse(caps, samples, t0, t_flood, t_calm, count)

    def _analyse(self, caps, samples, t0, t_flood, t_calm, count) -> dict:
        cfg = self.cfg
        sent = {seq_of(bytes(p)): float(p.time) for p in rdpcap(str(caps["atx"][0]))}
        got = [(float(p.time), (float(p.time) - sent[s]) * 1e6, p.wirelen or len(p))
               for p in rdpcap(str(caps["arx"][0]))
               if (s := seq_of(bytes(p))) is not None and s in sent]
        # Capture timestamps are wall-clock; the phases are monotonic: align on the
        # first packet sent.
        w0 = min(sent.values()) if sent else 0.0

        def phase(t):       # seconds since the start of A's sending
            return "flood" if t_flood + 0.5 <= t <= t_calm - 0.2 else (
                "idle" if t < t_flood - 0.2 or t > t_calm + 1.0 else "edge")
        lat = {"idle": [], "flood": []}
        for t, us, _ in got:
            ph = phase(t - w0)
            if ph in lat:
                lat[ph].append(us)

        def p99(xs):
            return statistics.quantiles(xs, n=100)[98] if len(xs) > 1 else None
        flood_len = max(t_calm - t_flood - 0.7, 0.1)
        a_bytes = sum(n for t, _, n in got if phase(t - w0) == "flood")
        # Rates over time, from the receive counters.
        series = {s.name: [] for s in self.slices}
        for (ta, ra), (tb, rb) in itertools.pairwise(samples):
            for s in self.slices:
                i = f"{s.name}rx"
                series[s.name].append(((ta + tb) / 2 - t0,
                                       (rb[i][1] - ra[i][1]) * 8 / (tb - ta) / 1000))

        def mean_rate(name, lo, hi):
            xs = [kbps for t, kbps in series[name] if lo <= t <= hi]
            return statistics.mean(xs) if xs else 0.0
        b_kbps = max((mean_rate(s.name, t_flood + 0.5, t_calm - 0.2) for s in self.slices[1:]),
                     default=0.0)
        out = {
            "enforce": cfg.enforce, "flooders": cfg.flooders,
            "reservation_kbps": cfg.reservation_kbps,
            "a_sent": count, "a_delivered": len(got),
            "a_flood_kbps": a_bytes * 8 / flood_len / 1000,
            "a_idle_p99_us": p99(lat["idle"]), "a_flood_p99_us": p99(lat["flood"]),
            "b_flood_kbps": b_kbps,
            "t_flood": t_flood, "t_calm": t_calm, "series": series,
        }
        out["checks"] = checks(out)
        return out


def checks(r: dict) -> dict:
    """The issue's criteria: A >= 0.9 R and p99 <= 3x idle while flooded; B <= R + 10 %."""
    res = r["reservation_kbps"]
    idle, flood = r["a_idle_p99_us"], r["a_flood_p99_us"]
    return {"a_rate": r["a_flood_kbps"] >= 0.9 * res,
            "a_latency": idle is not None and flood is not None and flood <= 3 * idle,
            "b_rate": r["b_flood_kbps"] <= 1.1 * res}


def run_once(cfg: Config, workdir: Path) -> dict:
    with Isolation(cfg, workdir) as iso:
        return iso.run()


SCENARIOS = (("enforcement off, B floods", False, 1), ("enforcement on, B floods", True, 1),
             ("enforcement off, B, C, D flood", False, 3),
             ("enforcement on, B, C, D flood", True, 3))


def run(cfg: Config | None = None, log=print) -> dict:
    """make bench's isolation stage: every scenario once, side by side."""
    import tempfile
    base = cfg or Config()
    out = {"config": {k: v for k, v in vars(base).items()
                      if k not in ("flooders", "enforce")}, "runs": []}
    out["config"]["link_pps"] = {n: Config(flooders=n, lc_pps=base.lc_pps).link_pps
                                 for n in sorted({f for _, _, f in SCENARIOS})}
    with tempfile.TemporaryDirectory(prefix="spp-iso-") as tmp:
        for label, enforce, flooders in SCENARIOS:
            c = Config(**{**vars(base), "enforce": enforce, "flooders": flooders})
            r = run_once(c, Path(tmp))
            r["label"] = label
            out["runs"].append(r)
            verdict = "PASS" if all(r["checks"].values()) else "FAIL"
            log(f"  {label:<32} A {r['a_flood_kbps']:>7.0f} kb/s (R {c.reservation_kbps}), "
                f"p99 {r['a_idle_p99_us'] or 0:>6.0f} -> {r['a_flood_p99_us'] or 0:>7.0f} us, "
                f"B {r['b_flood_kbps']:>7.0f} kb/s  {verdict}")
    return out


def plot(res: dict, path: Path):
    """A's and B's delivered rate over time (idle -> flood -> idle), per scenario."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = res["runs"]
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.2 * len(runs)), sharex=True)
    for ax, r in zip(axes, runs, strict=True):
        for name, pts in r["series"].items():
            if name in "ab":
                ax.plot([t for t, _ in pts], [k / 1000 for _, k in pts],
                        label={"a": "A (at its reservation)", "b": "B (flooding)"}[name])
        ax.axhline(r["reservation_kbps"] / 1000, color="grey", ls=":", lw=1,
                   label="reservation R")
        ax.axvspan(r["t_flood"], r["t_calm"], color="red", alpha=0.08)
        ax.set_title(r["label"], fontsize=9)
        ax.set_ylabel("Mb/s")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds (shaded: flood)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(res: dict) -> list[str]:
    c = res["config"]
    lines = ["## Isolation", "",
             f"One LC and one NPE (BMv2), slices with end hosts and access links of their "
             f"own (tbf, {c['link_mbps']:g} Mb/s, and with `mpu` at most "
             f"{c['lc_pps']:,} packets/s shared by the senders' links: "
             f"{', '.join(f'{v:,}' for v in c['link_pps'].values())} packets/s each). Slice A "
             f"sends {c['a_frame']}-byte frames at its reservation R = "
             f"{c['reservation_kbps']} kb/s for {2 * c['idle_s'] + c['flood_s']:g} s; for "
             f"{c['flood_s']:g} s in the middle the other slices send {c['flood_frame']}-byte "
             f"frames their filters forward as fast as their links allow. The NPE's packet "
             f"budget ({c['npe_pps']} packets/s) is shared by the fastpaths in proportion to "
             f"their bw (each 2R) and policed at the LC. Pass: A ≥ 0.9 R and A's p99 ≤ 3× "
             f"idle during the flood, B ≤ 1.1 R. `bench/isolation.py`; plot: "
             f"[bench/isolation.png](bench/isolation.png).", "",
             "| scenario | A delivered (kb/s) | A p99 idle (µs) | A p99 flood (µs) | "
             "B delivered (kb/s) | result |", "|---|---:|---:|---:|---:|---|"]
    for r in res["runs"]:
        failed = [k for k, ok in r["checks"].items() if not ok]
        lines.append(f"| {r['label']} | {r['a_flood_kbps']:,.0f} | "
                     f"{r['a_idle_p99_us'] or 0:,.0f} | {r['a_flood_p99_us'] or 0:,.0f} | "
                     f"{r['b_flood_kbps']:,.0f} | "
                     f"{'pass' if not failed else 'FAIL: ' + ', '.join(failed)} |")
    return lines + [""]
