"""Data-plane benchmark: the same generator, the same sink, four forwarders.

  kernel     (a) the end hosts joined by Linux IP forwarding (no BMv2): the
                 ceiling of this set-up
  minimal    (b) BMv2 running bench/p4/minimal.p4 (one table, port to port)
  fastpath   (c) BMv2 running npe.p4: tunnel in, filter, queue, tunnel out
  slowpath   (d) npe.p4 delivering the flow to a slice host, whose user-space
                 program (slices/samples/slowpath.py) sends it back with a
                 forwarding key
  lc         (e) BMv2 running lc.p4, demultiplexing the tunnel packets to the NPE
                 port: the line card's packet capacity (cases c and e size the
                 testbed's NPE budget and access links, bench/isolation.py)

Generator: tcpreplay, sending pre-built frames from a private namespace;
sink: the receive counter of a veth in that namespace. Throughput: offered
at tcpreplay's top speed for a few seconds, measured as the receive rate in
the steady middle of the window. Cases (b) and (c), whose ratio issue 9.5
is about, are measured side by side (paired_rounds): both switches up at
once, in alternating short rounds of the same frames, each round also
measuring the switch's CPU time per packet at a paced rate; the ratio is the
median of the rounds' ratios, reported with its range. Latency: one way, at 200 packets/s, from
kernel timestamps (tcpdump) on the generator's and the sink's interfaces,
matched by a sequence number in the payload. Frame sizes are those of the
end hosts' packets; in the tunnel cases (c, d) the frames on the wire carry
28 bytes more (outer IPv4 + UDP), as a tunnelled overlay packet would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from controller import pipeline as pl
from controller import translate as tr
from controller.p4rt import Entry, Pipeline, SwitchConnection
from controller.testbed import Interface, Node, Npe, Switch
from mininet_topo.bmv2 import SwitchSpec, wait_ready
from mininet_topo.netns import InNamespace, Namespace

from .controlplane import cpu_s

ROOT = Path(__file__).resolve().parent.parent
SIZES = (64, 512, 1400)
CASES = {
    "kernel": "(a) kernel forwarding",
    "minimal": "(b) BMv2 minimal.p4",
    "fastpath": "(c) NPE fastpath",
    "slowpath": "(d) NPE + slow path",
    "lc": "(e) LC demux to the NPE",
}
MARK = b"SPPB"
GEN_SRC, GEN_DST = "10.0.0.1", "10.0.9.1"
IF1, END, NH = "192.168.1.1", "192.168.1.100", "192.168.9.1"
NPE_ADDR, SLICE_ADDR, GW = "10.0.1.2", "10.0.2.10", "10.0.2.1"
NPE_MAC = "02:00:00:00:0b:01"
MI_IN, MI_OUT, NH_PORT, RET_PORT, LD_PORT, EXC_PORT = 20001, 20002, 30000, 40000, 50000, 50001
GPE_LC_PORT = 2     # the slice host's LC port, as the LC would stamp it (no LC here)


def payload(size: int, seq: int, overhead: int) -> bytes:
    n = max(size - overhead, 8)
    return (MARK + seq.to_bytes(4, "big")).ljust(n, b"\0")


def plain_frame(size: int, seq: int, dst_mac: str) -> bytes:
    """An end host's UDP packet of ``size`` bytes (Ethernet frame, no FCS)."""
    return bytes(Ether(dst=dst_mac, src="02:00:00:00:0a:01") / IP(src=GEN_SRC, dst=GEN_DST)
                 / UDP(sport=7000, dport=7001) / Raw(payload(size, seq, 42)))


def tunnel_frame(size: int, seq: int) -> bytes:
    """The same packet inside the meta-interface's UDP tunnel."""
    inner = (IP(src="10.1.1.1", dst="10.1.2.1") / UDP(sport=7000, dport=7001)
             / Raw(payload(size, seq, 42)))
    return bytes(Ether(dst=NPE_MAC, src="02:00:00:00:0a:01") / IP(src=END, dst=IF1)
                 / UDP(sport=45000, dport=MI_IN, chksum=0) / inner)


def seq_of(frame: bytes) -> int | None:
    i = frame.find(MARK)
    return int.from_bytes(frame[i + 4:i + 8], "big") if i >= 0 else None


class Setup(InNamespace):
    """One forwarder between the generator (gen0) and the sink (sink0)."""

    def __init__(self, case: str, workdir: Path, bmv2: str | None = None, slot: int = 0):
        self.case = case
        self.bmv2 = bmv2                    # another simple_switch_grpc (default: PATH's)
        self.next_seq = 1_000_000           # latency probes: never a throughput frame's
        self.workdir = workdir
        self.slot = slot                    # several set-ups up at once: one slot each
        self.ns = Namespace(f"spp-bench-dp{slot or ''}")
        self.others: list[Namespace] = []
        self.switch_pid: int | None = None
        self.pcaps: set[int] = set()        # sizes whose frames() are written
        self.gen_cpus: str | None = None    # the generator's CPUs (taskset -c), if pinned

    def close(self):
        for ns in self.others:
            ns.close()
        self.ns.close()

    def _build(self):
        ns = self.ns
        ns.veth("gen0", "swA")
        ns.veth("sink0", "swB")
        for intf in ("gen0", "sink0"):
            ns.run("ethtool", "-K", intf, "tx", "off", "rx", "off", check=False)
        self.sink_mac = ns.mac("sink0")
        if self.case == "kernel":
            fwd = Namespace("spp-bench-fwd").__enter__()
            self.others.append(fwd)
            for intf, addr in (("swA", "10.0.0.254/24"), ("swB", "10.0.9.254/24")):
                ns.run("ip", "link", "set", intf, "netns", fwd.name)
                fwd.run("ip", "addr", "add", addr, "dev", intf)
                fwd.run("ip", "link", "set", intf, "up")
            fwd.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            fwd.run("ip", "neigh", "add", GEN_DST, "lladdr", self.sink_mac, "dev", "swB")
            self.dst_mac = fwd.mac("swA")
            return
        ports = {0: "swA", 1: "swB"}
        if self.case == "slowpath":
            ns.veth("swS", "gpe0")
            ports[2] = "swS"
            # What the LC would do on the way back: stamp the slice host's port
            # (docs/metanet.md), here as the slice host's own MAC.
            stamp = pl.lc_port_stamp(GPE_LC_PORT).to_bytes(6, "big")
            ns.run("ip", "link", "set", "gpe0", "address", ":".join(f"{b:02x}" for b in stamp))
        mgmt = f"10.251.{self.slot}"
        ns.link_to_root(f"sppmb{self.slot}", "mgmt0", f"{mgmt}.1/30", f"{mgmt}.2/30")
        program = self.case if self.case in ("minimal", "lc") else "npe"
        spec = SwitchSpec(program, ports, 9559, 9090, log_file=self.workdir / f"{program}.log",
                          quiet=True)
        cmd = spec.command()
        cmd[cmd.index("--grpc-server-addr") + 1] = f"{mgmt}.2:9559"
        if self.bmv2:
            cmd[0] = self.bmv2
        proc = ns.popen(cmd, spec.log_file)
        wait_ready(spec, lambda: proc.poll() is None,
                   probe=lambda port: ns.probe(port, f"{mgmt}.2"))
        self.switch_pid = proc.pid          # ip netns exec execs the switch itself
        if program == "minimal":
            pipe = Pipeline(str(ROOT / "bench/p4/build/minimal.p4info.txtpb"),
                            str(ROOT / "bench/p4/build/minimal.json"))
            entries = [Entry.make("MinIngress.port_fwd", {"port": 0}, "MinIngress.forward",
                                  {"port": 1})]
            self.dst_mac = self.sink_mac
        elif program == "lc":
            # The LC's work for a meta-interface packet: guard, demux (and its
            # fastpath's packet meter, configured far above the offered load).
            pipe = pl.lc_pipeline()
            entries = [pl.lc_meta_if(IF1, MI_IN, 1, NPE_MAC, self.sink_mac, police=1),
                       pl.lc_src_owner(SLICE_ADDR, GPE_LC_PORT), pl.lc_npe_addr(NPE_ADDR)]
        else:
            pipe = pl.npe_pipeline()
            entries = self._npe_entries()
        with SwitchConnection(f"{mgmt}.2:9559", pipe) as conn:
            conn.set_pipeline()
            conn.insert(entries)
            if program == "lc":
                conn.set_meter(pl.Lc.POLICE, 1, 10_000_000, 1_000_000)
        if self.case == "slowpath":
            self._start_slowpath()

    def _npe_entries(self) -> list[Entry]:
        """The NPE as the controller's SCD would program it (scd.py's translation)."""
        ns = self.ns
        npe = Npe("npe", "", 0, addr=NPE_ADDR, port=1, mac=NPE_MAC, lc_mac=self.sink_mac)
        node = Node("bench", Switch("lc", "", 0), [npe],
                    [Interface(1, IF1, 0, NPE_MAC, 10_000_000)])
        fp = {"gid": 1, "local_id": 1, "stats_base": 0, "n_stats": 4, "queue_base": 0,
              "n_queues": 2, "ret_port": RET_PORT, "ld_port": LD_PORT, "exc_port": EXC_PORT}
        sl = {"data_addr": SLICE_ADDR, "lc_port": GPE_LC_PORT}
        entries = tr.npe_base_entries(node, npe) + tr.fastpath_entries(fp, sl, npe)
        mis = {mi: {"mi": mi, "ifn": 1, "addr": IF1, "port": port}
               for mi, port in ((1, MI_IN), (2, MI_OUT))}
        for mi in mis.values():
            entries += tr.meta_if_entries(fp, mi, node, npe)[0]
        out = tr.meta_if_encap(mis[2], node)
        fwd = {"action": "forward", "meta_if": 2, "nh_addr": NH, "nh_port": NH_PORT,
               "queue": 0, "stats": 1}
        general = fwd if self.case == "fastpath" else {"action": "local", "stats": 1}
        entries.append(tr.filter_entry(fp, 10, {"type": 0, "key": {"dst_addr": "10.1.0.0"},
                                                "mask": {"dst_addr": "255.255.0.0"},
                                                "result": general}, out))
        entries.append(tr.filter_entry(fp, 1000, {"type": 1, "key": {"src_port": MI_OUT},
                                                  "mask": {"src_port": 0xFFFF},
                                                  "result": dict(fwd, stats=2)}, out))
        if self.case == "slowpath":
            entries.append(pl.npe_route("10.0.2.0", 24, 2, NPE_MAC, ns.mac("gpe0")))
        return entries

    def _start_slowpath(self):
        gpe = Namespace("spp-bench-gpe").__enter__()
        self.others.append(gpe)
        self.ns.run("ip", "link", "set", "gpe0", "netns", gpe.name)
        gpe.run("ip", "addr", "add", f"{SLICE_ADDR}/24", "dev", "gpe0")
        gpe.run("ip", "link", "set", "gpe0", "up")
        gpe.run("ethtool", "-K", "gpe0", "tx", "off", "rx", "off", check=False)
        gpe.run("ip", "neigh", "add", GW, "lladdr", NPE_MAC, "dev", "gpe0")
        gpe.run("ip", "route", "add", "default", "via", GW)
        state = {"router_addr": "10.1.255.1",
                 "fpinfo": {"fpid": 1,
                            "ld_endpoint": {"addr": SLICE_ADDR, "port": LD_PORT},
                            "exc_endpoint": {"addr": SLICE_ADDR, "port": EXC_PORT},
                            "ret_endpoint": {"addr": NPE_ADDR, "port": RET_PORT}},
                 "meta_ifs": {"out": {"mi": 2, "port": MI_OUT, "nh_addr": NH,
                                      "nh_port": NH_PORT}},
                 "routes": [{"prefix": "10.1.0.0/16", "via": "out"}]}
        path = self.workdir / "slowpath.state.json"
        path.write_text(json.dumps(state))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = gpe.popen([sys.executable, "-m", "slices.samples.slowpath", "--state", str(path)],
                      self.workdir / "slowpath.log", env=env)
        deadline = time.monotonic() + 20
        while "listening" not in (self.workdir / "slowpath.log").read_text():
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("slow path did not start: "
                                   + (self.workdir / "slowpath.log").read_text()[-500:])
            time.sleep(0.1)

    def frame(self, size: int, seq: int) -> bytes:
        if self.case in ("kernel", "minimal"):
            return plain_frame(size, seq, self.dst_mac)
        return tunnel_frame(size, seq)

    def frames(self, size: int) -> Path:
        """A pcap of 256 frames of ``size`` (sequence numbers 0-255) for tcpreplay to loop
        over, written once per set-up (the frames carry its MAC addresses)."""
        pcap = self.workdir / f"tp-{self.case}-{size}.pcap"
        if size not in self.pcaps:
            wrpcap(str(pcap), [Ether(self.frame(size, i)) for i in range(256)])
            self.pcaps.add(size)
        return pcap

    def pin(self, switch_cpus: str, gen_cpus: str | None):
        """The switch's threads onto ``switch_cpus``, the generator onto ``gen_cpus`` (None:
        anywhere) from the next run on."""
        subprocess.run(["taskset", "-a", "-p", "-c", switch_cpus, str(self.switch_pid)],
                       check=True, capture_output=True)
        self.gen_cpus = gen_cpus

    def rx(self) -> int:
        return int(self.ns.run("cat", "/sys/class/net/sink0/statistics/rx_packets").stdout)

    def cpu(self) -> float | None:
        """The switch's CPU time so far (s, all its threads; None without a switch)."""
        return None if self.switch_pid is None else cpu_s(self.switch_pid)

    def throughput(self, size: int, seconds: float = 3.0) -> dict:
        self.drain()
        pcap = self.frames(size)
        samples = []
        cpu0 = self.cpu()
        t0 = time.monotonic()
        pin = ["taskset", "-c", self.gen_cpus] if self.gen_cpus else []
        gen = subprocess.Popen(pin + ["ip", "netns", "exec", self.ns.name, "tcpreplay", "-q", "-K",
                                "--topspeed", "--loop=0", f"--duration={seconds:g}", "-i", "gen0",
                                str(pcap)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        while gen.poll() is None:
            samples.append((time.monotonic() - t0, self.rx()))
            time.sleep(0.05)
        out = gen.stdout.read()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            samples.append((time.monotonic() - t0, self.rx()))
            time.sleep(0.05)
        cpu1 = self.cpu()
        sent = re.search(r"Actual: (\d+) packets", out)
        lo, hi = seconds * 0.25, seconds * 0.85          # the steady middle
        a = min(samples, key=lambda s: abs(s[0] - lo))
        b = min(samples, key=lambda s: abs(s[0] - hi))
        pps = (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0
        received = samples[-1][1] - samples[0][1]
        return {"pps": pps, "mbps": pps * size * 8 / 1e6,
                "offered_pps": int(sent.group(1)) / seconds if sent else None,
                "received": received,
                # the switch's CPU time (all threads, the whole window and its tail) per
                # packet it delivered, its work on the packets it dropped included
                "top_cpu_us_per_pkt": (cpu1 - cpu0) * 1e6 / received
                if cpu0 is not None and received else None}

    def drain(self, quiet: float = 0.5, timeout: float = 30.0):
        """Wait until nothing arrives any more (queues of the last run empty)."""
        last, since, end = self.rx(), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < end and time.monotonic() - since < quiet:
            time.sleep(0.1)
            now = self.rx()
            if now != last:
                last, since = now, time.monotonic()

    def latency(self, size: int, count: int = 300, pps: int = 200) -> dict:
        self.drain()
        pcap = self.workdir / f"lat-{self.case}-{size}.pcap"
        first, self.next_seq = self.next_seq, self.next_seq + count
        wrpcap(str(pcap), [Ether(self.frame(size, first + i)) for i in range(count)])
        caps = {}
        for intf in ("gen0", "sink0"):
            f = self.workdir / f"cap-{intf}.pcap"
            caps[intf] = (f, subprocess.Popen(
                ["ip", "netns", "exec", self.ns.name, "tcpdump", "-q", "-Z", "root", "-U",
                 "--immediate-mode", "-B", "8192", "-i", intf, "-w", str(f), "udp"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        subprocess.run(["ip", "netns", "exec", self.ns.name, "tcpreplay", "-q", "-K",
                        f"--pps={pps}", "-i", "gen0", str(pcap)], capture_output=True)
        time.sleep(1.0)
        for _, p in caps.values():
            p.send_signal(signal.SIGINT)
            p.wait(timeout=10)
        sent = {seq_of(bytes(p)): float(p.time) for p in rdpcap(str(caps["gen0"][0]))}
        lat = [(float(p.time) - sent[s]) * 1e6 for p in rdpcap(str(caps["sink0"][0]))
               if (s := seq_of(bytes(p))) is not None and s in sent]
        if not lat:
            return {"p50_us": None, "p90_us": None, "p99_us": None, "delivered": 0}
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
        return {"p50_us": statistics.median(lat), "p90_us": q[89], "p99_us": q[98],
                "delivered": len(lat), "sent": count}

    def profile(self, size: int, seconds: float = 3.0) -> list[dict]:
        """Where the switch spends its time while forwarding at full load (perf, cpu-clock)."""
        data = self.workdir / f"perf-{self.case}.data"
        rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g",
                                "-p", str(self.switch_pid), "-o", str(data), "--",
                                "sleep", f"{seconds:g}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        self.throughput(size, seconds)
        rec.wait(timeout=60)
        rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                              "--sort", "dso,symbol", "--percent-limit", "0", "-g", "none"],
                             capture_output=True, text=True).stdout
        rows = []
        for line in rep.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
            if m:
                rows.append({"percent": float(m.group(1)), "dso": m.group(2),
                             "symbol": m.group(3).strip()[:90]})
        return rows


# Self time of a switch, by what BMv2 is doing (first matching pattern wins).
CATEGORIES = [
    ("threads: scheduling, locks, queue hand-offs", r"finish_task_switch|schedule|futex|"
     r"spin_unlock|spin_lock|pthread|condition_variable|__lll|try_to_wake|select_task|"
     r"ttwu|enqueue_task|dequeue_task|switch_mm|__switch_to|idle|pick_next|update_curr|"
     r"Queue|queue"),
    ("packet I/O: pcap, sockets, veth", r"pcap|packet_|tpacket|veth|netif|__dev_|dev_|skb|"
     r"sock|recv|send|sys_|syscall|entry_SYSCALL|do_syscall|copy_|_copy|memcpy_to|"
     r"memcpy_from|poll"),
    ("logging plumbing, even with logging off (iostreams, locales, spdlog, packet ids)",
     r"locale|facet|ios_base|basic_ios|streambuf|ostream|istream|spdlog|line_logger|"
     r"get_unique_id|operator<<|fmt::|num_get|num_put"),
    ("parser and deparser", r"Parser|Deparser|ParseState|extract|emit|ParserOp"),
    ("checksums", r"Checksum|Calculation|csum|cksum|hash"),
    ("table lookups", r"MatchTable|MatchUnit|MatchKey|lookup|LPM|Ternary|Exact|"
     r"ActionEntry|MatchErrorCode"),
    ("actions, expressions, field arithmetic", r"Expression|ActionFn|ActionPrimitive|"
     r"Field::|Data::|Data\b|gmp|Register|Meter|Counter|Stack|Header::|PHV|core::"),
    ("pipeline control flow", r"Conditional|Pipeline::apply|MatchActionTable::operator|"
     r"ingress_thread|egress_thread|transmit_thread|ControlFlow"),
    ("kernel: interrupts, page faults", r"irq|softirq|page|fault|memcg|handle_mm|"
     r"exit_to_user"),
    ("memory: allocation, copies", r"malloc|free|_int_|operator new|operator delete|"
     r"memmove|memcpy|memset|cfree|alloc"),
    ("C++ runtime: RTTI, strings, hash maps", r"dynamic_cast|type_info|strcmp|basic_string|"
     r"_Hashtable|__ostream|ostream|string"),
]


def categorize(rows: list[dict]) -> list[dict]:
    total = {name: 0.0 for name, _ in CATEGORIES}
    other = 0.0
    for r in rows:
        for name, pattern in CATEGORIES:
            if re.search(pattern, r["symbol"]):
                total[name] += r["percent"]
                break
        else:
            other += r["percent"]
    out = [{"category": k, "percent": v} for k, v in total.items()]
    out.append({"category": "other", "percent": other})
    return sorted(out, key=lambda x: -x["percent"])


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _summary(s: Setup, size: int, tps: list[dict], runs: int, log) -> dict:
    """A case's row for one size: the median of its throughput runs, then its latency."""
    lats = [s.latency(size) for _ in range(runs)]
    med = {k: statistics.median(t[k] for t in tps) for k in ("pps", "mbps")}
    lat = {k: _median([x[k] for x in lats]) for k in ("p50_us", "p90_us", "p99_us")}
    log(f"  {CASES[s.case]:<24} {size:>5} B: {med['pps']:>10.0f} pkt/s "
        f"{med['mbps']:>8.1f} Mb/s  p50 {lat['p50_us'] or 0:>8.0f} us")
    return {**med, **lat, "offered_pps": statistics.median(t["offered_pps"] or 0 for t in tps),
            "all_pps": [t["pps"] for t in tps],
            "top_cpu_us_per_pkt": _median([t["top_cpu_us_per_pkt"] for t in tps]),
            "cpu_us_per_pkt": _median([t.get("cpu_us_per_pkt") for t in tps])}


# minimal.p4 and the NPE fastpath, the ratio issue 9.5 is about, are measured side by side:
# both switches up at once (each in its namespace), the same frames offered to one, then the
# other, in alternating order (minimal first in odd rounds, the NPE first in even ones), so
# that whatever else the shared cores do at that moment hits both sides of each pair.
PAIRED = ("minimal", "fastpath")
# Per round, besides top speed: the switch's CPU time per packet at this paced rate, which
# both carry without loss (bench/bmv2_builds.py compares the builds at the same rate).
PACED = (7_500, 1.0)


def paired_rounds(setups: dict, size: int, rounds: int, seconds: float, log) -> dict:
    """``rounds`` pairs of runs: top speed for ``seconds``, then PACED. Per pair, the
    NPE/minimal ratio of top-speed packet rates and of CPU cost (minimal's µs per packet over
    the NPE's: the rate the NPE would reach next to minimal.p4 if the switch's CPU time were
    all that limits it). The other switch's CPU while one is measured is recorded too (it
    should idle)."""
    from .bmv2_builds import paced
    runs = {c: [] for c in PAIRED}
    idle = []
    for r in range(rounds):
        for case in (PAIRED if r % 2 == 0 else PAIRED[::-1]):
            other = setups[PAIRED[1 - PAIRED.index(case)]]
            c0 = other.cpu()
            t = setups[case].throughput(size, seconds)
            p = paced(setups[case], size, *PACED)
            idle.append(other.cpu() - c0)
            runs[case].append({**t, "paced": p, "cpu_us_per_pkt": p["cpu_us_per_pkt"]})
        m, f = (runs[c][-1] for c in PAIRED)
        log(f"  round {r + 1} {size:>5} B: minimal.p4 {m['pps']:>8,.0f} pkt/s "
            f"{m['cpu_us_per_pkt'] or 0:5.1f} us CPU/pkt, NPE {f['pps']:>8,.0f} pkt/s "
            f"{f['cpu_us_per_pkt'] or 0:5.1f} us CPU/pkt: {f['pps'] / m['pps']:.2f}x")
    pairs = list(zip(*runs.values(), strict=True))
    ratios = [f["pps"] / m["pps"] for m, f in pairs if m["pps"]]
    cpu = [m["cpu_us_per_pkt"] / f["cpu_us_per_pkt"] for m, f in pairs
           if m["cpu_us_per_pkt"] and f["cpu_us_per_pkt"]]
    lost = [1 - x["paced"]["delivered"] / x["paced"]["sent"] for v in runs.values() for x in v
            if x["paced"]["sent"]]
    return {"runs": runs, "ratios": ratios, "ratio": _median(ratios), "cpu_ratios": cpu,
            "cpu_ratio": _median(cpu), "paced_pps": PACED[0], "paced_s": PACED[1],
            "paced_lost_max": max(lost, default=None), "other_cpu_s_max": max(idle, default=None)}


def pinned_rounds(setups: dict, size: int, rounds: int, seconds: float, log) -> dict | None:
    """Top speed as in paired_rounds, with the generator on one core and the switch (all its
    threads) on another: neither takes the other's CPU, so the rate is the switch's on one
    core. None on a machine with fewer than two cores."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    gen, sw, every = str(cpus[0]), str(cpus[1]), ",".join(map(str, cpus))
    runs = {c: [] for c in PAIRED}
    try:
        for s in setups.values():
            s.pin(sw, gen)
        for r in range(rounds):
            for case in (PAIRED if r % 2 == 0 else PAIRED[::-1]):
                runs[case].append(setups[case].throughput(size, seconds)["pps"])
            log(f"  pinned round {r + 1} {size:>5} B: minimal.p4 {runs['minimal'][-1]:>8,.0f} "
                f"pkt/s, NPE {runs['fastpath'][-1]:>8,.0f} pkt/s")
    finally:
        for s in setups.values():
            s.pin(every, None)
    ratios = [f / m for m, f in zip(*runs.values(), strict=True) if m]
    return {"size": size, "rounds": rounds, "seconds": seconds, "generator_cpu": gen,
            "switch_cpu": sw, "pps": runs, "ratios": ratios, "ratio": _median(ratios)}


def run(runs: int = 3, sizes=SIZES, cases=tuple(CASES), seconds: float = 3.0,
        rounds: int | None = None, round_seconds: float = 2.0, profile: bool = True,
        log=print) -> dict:
    """Each case's figures are the median of ``runs``; minimal.p4 and the NPE fastpath are
    measured in ``rounds`` alternating pairs of ``round_seconds`` each (default 2 x runs - 1),
    then in as many pinned to cores of their own (the first size)."""
    rounds = rounds or max(2 * runs - 1, 1)
    results = {"runs": runs, "seconds": seconds, "cases": {}, "profile": None}
    paired = all(c in cases for c in PAIRED)
    if paired:
        results["paired"] = {"rounds": rounds, "seconds": round_seconds, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="spp-bench-") as tmp:
        work = Path(tmp)
        for case in cases:
            if paired and case == PAIRED[1]:
                continue                            # measured with PAIRED[0]
            if paired and case == PAIRED[0]:
                with Setup(PAIRED[0], work) as a, Setup(PAIRED[1], work, slot=1) as b:
                    setups = dict(zip(PAIRED, (a, b), strict=True))
                    per = {c: {} for c in PAIRED}
                    for size in sizes:
                        p = paired_rounds(setups, size, rounds, round_seconds, log)
                        for c in PAIRED:
                            per[c][size] = _summary(setups[c], size, p["runs"][c], runs, log)
                        log(f"  NPE/minimal.p4 {size:>5} B: {p['ratio']:.2f}x "
                            f"({min(p['ratios']):.2f}-{max(p['ratios']):.2f}), CPU "
                            f"{p['cpu_ratio'] or 0:.2f}x")
                        del p["runs"]
                        results["paired"]["sizes"][size] = p
                    pin = pinned_rounds(setups, sizes[0], rounds, round_seconds, log)
                    results["paired"]["pinned"] = pin
                    if pin:
                        log(f"  NPE/minimal.p4 {sizes[0]:>5} B, pinned: {pin['ratio']:.2f}x "
                            f"({min(pin['ratios']):.2f}-{max(pin['ratios']):.2f})")
                    if profile:
                        results["profile"] = _profile(b, seconds)
                results["cases"].update(per)
                continue
            per_size = {}
            with Setup(case, work) as s:
                for size in sizes:
                    tps = [s.throughput(size, seconds) for _ in range(runs)]
                    per_size[size] = _summary(s, size, tps, runs, log)
                if profile and case == "fastpath":
                    results["profile"] = _profile(s, seconds)
            results["cases"][case] = per_size
    return results


def _profile(s: Setup, seconds: float) -> dict:
    rows = s.profile(512, seconds)
    return {"size": 512, "rows": rows[:25], "categories": categorize(rows)}
