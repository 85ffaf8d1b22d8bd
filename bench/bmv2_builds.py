"""BMv2's performance build against the default one, side by side (issue 9.5).

The data-plane benchmark's minimal.p4 case (b) and NPE fastpath case (c)
(bench/dataplane.py: same generator, sink, frames and counting) on two
simple_switch_grpc binaries built from the same BMv2 source: the default
build on PATH (README, Prerequisites: -O2, logging macros compiled in) and a
second one built as BMv2's docs/performance.md says (`./configure
--disable-logging-macros --disable-elogger CXXFLAGS=-O3`, installed under a
prefix of its own). Interleaved: each round runs default then performance
build, each with minimal.p4 then npe.p4, so that the machine's noise hits
both; every figure is the median of the rounds. Each switch is measured at
tcpreplay's top speed (as bench/dataplane.py does: 64, 512, 1400 B) and then
for its loss-free rate at 64 B (paced rates, at most 1 % lost), with the
switch's CPU time and context switches per packet read from /proc.

    sudo .venv/bin/python -m bench.bmv2_builds --perf-bmv2 /opt/bmv2-perf/bin/simple_switch_grpc
    SPP_PERF_BMV2=/opt/bmv2-perf/bin/simple_switch_grpc make bench    # as a stage of bench/run.py

Without a second binary it says so and measures nothing. The results go into
docs/bench/results.json under "bmv2_builds"; `python -m bench.run
--report-only` renders them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from controller import pipeline as pl
from mininet_topo.bmv2 import Bmv2Error, find_bmv2

from . import dataplane

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs/bench/results.json"
ENV = "SPP_PERF_BMV2"
PROGRAMS = {"minimal": "minimal.p4 (b)", "fastpath": "npe.p4 fastpath (c)"}
BUILDS = ("default", "performance")
# The loss-free rate: 64 B frames paced at each rate in turn (1.5 s each) until more than 1 %
# is lost, then two halvings of the last step; the highest rate carried is the switch's capacity
# without the overload that tcpreplay's top speed puts on the two cores it shares with the switch.
SWEEP = (64, (5_000, 7_500, 11_000, 17_000, 25_000, 38_000, 57_000, 85_000, 128_000), 1.5)
CPU_AT = 7_500              # packets/s at which the per-packet costs are compared
PERF_CONFIGURE = ("--with-pi --with-thrift --disable-static --disable-logging-macros "
                  "--disable-elogger CXXFLAGS=-O3")
SKIP = ("bmv2_builds: skipped: no performance build of BMv2 given (--perf-bmv2 PATH or "
        f"{ENV}=PATH to its simple_switch_grpc; README, Prerequisites, says how to build it)")


def perf_binary(arg: str | None) -> str | None:
    """The performance build's simple_switch_grpc, if one is given and executable."""
    path = arg or os.environ.get(ENV)
    return path if path and os.access(path, os.X_OK) else None


def skip_reason(arg: str | None) -> str | None:
    """Why the comparison cannot run (None: it can)."""
    if perf_binary(arg):
        return None
    path = arg or os.environ.get(ENV)
    return SKIP if not path else f"bmv2_builds: skipped: {path} is not an executable file"


def libraries(binary: str) -> dict[str, str]:
    """Where the dynamic loader finds BMv2's own libraries for ``binary`` (ldd)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s*(lib(?:bm|simpleswitch)\S*?)"
                                                        r"\.so\S*\s+=>\s+(\S+)", out, re.M)}


def logging_macros(binary: str) -> bool | None:
    """BMv2 warns at start-up when it was built with --disable-logging-macros."""
    from mininet_topo.netns import Namespace
    try:
        with Namespace("spp-bench-probe") as ns:
            p = ns.run("timeout", "3", binary, "--log-console", "--log-level", "debug", "--no-p4",
                       "--thrift-port", "19999", "-i", "0@lo", "--",
                       "--grpc-server-addr", "127.0.0.1:19559", check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return "disabled logging macros" not in (p.stdout + p.stderr)


def build_info(binary: str) -> dict:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return {"binary": str(Path(binary).resolve()),
            "version": (version.stdout or version.stderr).strip(),
            "logging_macros": logging_macros(binary), "libraries": libraries(binary)}


def _git(*args) -> bytes | None:
    p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True)
    return p.stdout if p.returncode == 0 else None


def p4_outputs() -> dict:
    """Which compiled programs ran: their hashes, and whether they are what HEAD has."""
    out = {}
    for name, path in (("npe", pl.BUILD / "npe.json"),
                       ("minimal", ROOT / "bench/p4/build/minimal.json")):
        data = path.read_bytes()
        rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else None
        head = _git("show", f"HEAD:{rel}") if rel else None
        last = _git("log", "-1", "--format=%h %cI", "--", str(rel)) if rel else None
        out[name] = {"json": str(rel or path), "sha256": hashlib.sha256(data).hexdigest(),
                     "tables": sum(len(x["tables"]) for x in json.loads(data)["pipelines"]),
                     "as_committed": None if head is None else head == data,
                     "last_commit": last.decode().strip() if last else None}
    return out


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def run(perf: str, default: str | None = None, sizes=(64, 512, 1400), runs: int = 3,
        seconds: float = 3.0, sweep: bool = True, lock: Path | None = None,
        log=print) -> dict:
    binaries = {"default": default or find_bmv2(), "performance": perf}
    res = {"runs": runs, "seconds": seconds, "sizes": list(sizes),
           "order": "per round: default (minimal, npe), then performance (minimal, npe)",
           "perf_configure": PERF_CONFIGURE}
    with held(lock):                        # build_info starts each binary for a moment
        res["builds"] = {b: build_info(p) for b, p in binaries.items()}
    samples = {b: {c: {s: [] for s in sizes} for c in PROGRAMS} for b in BUILDS}
    offered, cpu, ctxsw = ({b: {c: {s: [] for s in sizes} for c in PROGRAMS} for b in BUILDS}
                           for _ in range(3))
    res["p4"] = p4_outputs()
    sweeps = {b: {c: [] for c in PROGRAMS} for b in BUILDS}
    with tempfile.TemporaryDirectory(prefix="spp-bmv2-builds-") as tmp:
        work = Path(tmp)
        for r in range(runs):
            with held(lock):
                for b in BUILDS:
                    for case in PROGRAMS:
                        with dataplane.Setup(case, work, bmv2=binaries[b]) as s:
                            for size in sizes:
                                t = measure(s, size, seconds)
                                samples[b][case][size].append(t["pps"])
                                offered[b][case][size].append(t["offered_pps"] or 0)
                                cpu[b][case][size].append(t["cpu_us_per_pkt"])
                                ctxsw[b][case][size].append(t["ctxsw_per_pkt"])
                                log(f"  round {r + 1} {b:<11} {PROGRAMS[case]:<20} {size:>5} B: "
                                    f"{t['pps']:>9,.0f} packets/s, switch "
                                    f"{t['cpu_us_per_pkt'] or 0:.1f} µs CPU and "
                                    f"{t['ctxsw_per_pkt'] or 0:.2f} context switches per packet")
                            if sweep:
                                t = loss_free(s, *SWEEP)
                                sweeps[b][case].append(t)
                                log(f"  round {r + 1} {b:<11} {PROGRAMS[case]:<20} {SWEEP[0]:>5} B "
                                    f"loss-free: {t['pps']:>9,} packets/s (" + ", ".join(
                                        f"{x['offered_pps']:,}: {x['delivered'] / x['sent']:.3f}"
                                        for x in t["steps"] if x["sent"]) + ")")
    res["pps"] = {b: {c: {str(s): {"pps": statistics.median(v), "all": v,
                                   "offered_pps": statistics.median(offered[b][c][s]),
                                   "cpu_us_per_pkt": _median(cpu[b][c][s]),
                                   "ctxsw_per_pkt": _median(ctxsw[b][c][s])}
                          for s, v in per.items()} for c, per in samples[b].items()}
                  for b in BUILDS}
    if sweep:
        res["loss_free"] = {
            "size": SWEEP[0], "rates": list(SWEEP[1]), "seconds": SWEEP[2], "max_loss": 0.01,
            "cpu_at_pps": CPU_AT,
            "builds": {b: {c: {"pps": statistics.median(x["pps"] for x in v),
                               "all": [x["pps"] for x in v],
                               **{k: _median([y[k] for x in v for y in x["steps"]
                                              if y["offered_pps"] == CPU_AT and y["ok"]])
                                  for k in ("cpu_us_per_pkt", "ctxsw_per_pkt")},
                               "steps": [x["steps"] for x in v]}
                           for c, v in sweeps[b].items()} for b in BUILDS}}
    return res


@contextlib.contextmanager
def held(lock: Path | None):
    """flock(1)'s lock on ``lock`` for one round (other heavy runs may go between rounds)."""
    if lock is None:
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    time.sleep(3)                           # flock is not fair: let a waiting run take it


def switch_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (all threads; the scheduler's nanoseconds, not clock ticks: a 1 s run at a
    few thousand packets/s is tens of ticks) and context switches (all threads) of a process
    so far."""
    cpu, switches = 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
            switches += sum(int(line.split()[1]) for line in
                            (task / "status").read_text().splitlines()
                            if "ctxt_switches:" in line)
        except OSError:
            pass                                    # a thread that just ended
    return cpu, switches


def measure(s: dataplane.Setup, size: int, seconds: float) -> dict:
    """dataplane's throughput, plus the switch's CPU time and context switches per packet."""
    cpu0, cs0 = switch_usage(s.switch_pid)
    t = s.throughput(size, seconds)
    cpu1, cs1 = switch_usage(s.switch_pid)
    n = t["received"] or None
    return {**t, "cpu_us_per_pkt": (cpu1 - cpu0) * 1e6 / n if n else None,
            "ctxsw_per_pkt": (cs1 - cs0) / n if n else None}


def loss_free(s: dataplane.Setup, size: int, rates, seconds: float,
              max_loss: float = 0.01) -> dict:
    """The highest of ``rates`` the switch carries losing at most ``max_loss``, trying them in
    order and stopping at the first it does not carry."""
    steps = []

    def carried(pps: int) -> bool:
        for _ in range(2):                  # a rate fails when it fails twice (one hiccup of
            t = paced(s, size, pps, seconds)    # the shared cores can lose 1 % in 1.5 s)
            t["ok"] = bool(t["sent"]) and t["delivered"] >= (1 - max_loss) * t["sent"]
            steps.append(t)
            if t["ok"]:
                return True
        return False

    lo = hi = 0
    for pps in rates:
        if not carried(pps):
            hi = pps
            break
        lo = pps
    for _ in range(2 if lo and hi else 0):
        mid = int(round((lo + hi) / 2, -2))
        lo, hi = (mid, hi) if carried(mid) else (lo, mid)
    return {"pps": lo, "steps": steps}


def paced(s: dataplane.Setup, size: int, pps: int, seconds: float) -> dict:
    """tcpreplay at ``pps`` for ``seconds``: what arrived, and the switch's CPU time and
    context switches per delivered packet."""
    s.drain()
    pcap = s.frames(size)
    rx0, (cpu0, cs0) = s.rx(), switch_usage(s.switch_pid)
    p = subprocess.run(["ip", "netns", "exec", s.ns.name, "tcpreplay", "-q", "-K",
                        f"--pps={pps}", "--loop=0", f"--limit={round(pps * seconds)}", "-i",
                        "gen0", str(pcap)], capture_output=True, text=True)
    s.drain(quiet=0.3)
    rx1, (cpu1, cs1) = s.rx(), switch_usage(s.switch_pid)
    sent = re.search(r"Actual: (\d+) packets", p.stdout)
    if not sent:
        raise RuntimeError(f"tcpreplay at {pps}/s: {(p.stdout + p.stderr).strip()[-300:]}")
    n = rx1 - rx0
    return {"offered_pps": pps, "sent": int(sent.group(1)), "delivered": n,
            "cpu_us_per_pkt": (cpu1 - cpu0) * 1e6 / n if n else None,
            "ctxsw_per_pkt": (cs1 - cs0) / n if n else None}


def _f(x, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _k(rates) -> str:
    return ", ".join(f"{x / 1000:g}k" for x in rates)


def _r(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def section(res: dict) -> list[str]:
    pps = res["pps"]
    bi = res["builds"]
    npe = res["p4"]["npe"]
    npe_text = (f"npe.json with {npe['tables']} tables, "
                + (f"as committed in {npe['last_commit'].split()[0]}" if npe["as_committed"]
                   and npe["last_commit"] else "**not** as committed (work-tree changes)"
                   if npe["as_committed"] is False else "outside git"))
    d, p = bi["default"], bi["performance"]

    def libs(info):
        return ", ".join(f"`{v}`" for k, v in sorted(info["libraries"].items())
                         if k.startswith("libsimpleswitch") or k.startswith("libbmpi")) or "–"

    lines = ["## BMv2's performance build", "",
             "The data-plane cases (b) minimal.p4 and (c) NPE fastpath, same generator and "
             "counting as section 1, on two simple_switch_grpc builds from the same BMv2 "
             f"source: the default one (`{d['binary']}`, {d['version']}, logging macros "
             f"compiled in: {d['logging_macros']}; loads {libs(d)}) and BMv2's performance "
             f"build (`{p['binary']}`, {p['version']}, configured `{res['perf_configure']}`; "
             f"logging macros compiled in: {p['logging_macros']}; loads {libs(p)}). Both run "
             "with `--log-level off` and no logger. Interleaved in one sitting "
             f"({res['order']}), median of {res['runs']} rounds, {res['seconds']:g} s each; "
             f"{npe_text}. `bench/bmv2_builds.py`.", "",
             "| size | minimal default | minimal perf | speed-up | NPE default | NPE perf | "
             "speed-up | NPE/minimal default | NPE/minimal perf |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    capped = []
    for s in res["sizes"]:
        k = str(s)
        v = {(b, c): pps[b][c][k]["pps"] for b in BUILDS for c in PROGRAMS}
        for b in BUILDS:
            for c in PROGRAMS:
                if pps[b][c][k]["pps"] >= 0.9 * (pps[b][c][k]["offered_pps"] or float("inf")):
                    capped.append(f"{PROGRAMS[c]} {b} {s} B")
        lines.append(
            f"| {s} B | {v['default', 'minimal']:,.0f} | {v['performance', 'minimal']:,.0f} | "
            f"{_r(v['performance', 'minimal'], v['default', 'minimal'])}x | "
            f"{v['default', 'fastpath']:,.0f} | {v['performance', 'fastpath']:,.0f} | "
            f"{_r(v['performance', 'fastpath'], v['default', 'fastpath'])}x | "
            f"{_r(v['default', 'fastpath'], v['default', 'minimal'])} | "
            f"{_r(v['performance', 'fastpath'], v['performance', 'minimal'])} |")
    lines += ["", "Packets/s received by the sink. Speed-up: performance build over default "
              "build, same program and size. "
              + (f"Within 10 % of what tcpreplay offered (the generator, not the switch, may "
                 f"be the limit): {', '.join(capped)}." if capped else
                 "Every rate is well below what tcpreplay offered: the switch is the limit."),
              "", "The switch's CPU time (all its threads, from /proc) per delivered packet, "
              "and its context switches per delivered packet, over the same windows (medians); "
              "the generator and the switch share the 2 cores, so CPU per packet says more "
              "about a build than packets/s alone:", "",
              "| size | program | default µs/packet | perf µs/packet | default context "
              "switches/packet | perf context switches/packet | offered packets/s default | "
              "offered perf |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in res["sizes"]:
        for c in PROGRAMS:
            d_, p_ = pps["default"][c][str(s)], pps["performance"][c][str(s)]
            lines.append(f"| {s} B | {PROGRAMS[c]} | {_f(d_.get('cpu_us_per_pkt'), 1)} | "
                         f"{_f(p_.get('cpu_us_per_pkt'), 1)} | "
                         f"{_f(d_.get('ctxsw_per_pkt'), 2)} | {_f(p_.get('ctxsw_per_pkt'), 2)} | "
                         f"{d_['offered_pps']:,.0f} | {p_['offered_pps']:,.0f} |")
    lf = res.get("loss_free")
    if lf:
        lb = lf["builds"]
        lines += ["", f"**Loss-free rate**: {lf['size']} B frames paced by tcpreplay at "
                  + _k(lf["rates"])
                  + f" packets/s in turn ({lf['seconds']:g} s each, on the same switches after "
                  f"the runs above) until more than {lf['max_loss']:.0%} is lost, then the last "
                  "step halved twice; the highest rate carried, median of the rounds (all "
                  "rounds in brackets). Below overload the generator does not spend the shared "
                  "cores on packets that are dropped anyway, so this is closer to the switch's "
                  "own capacity on this machine than the top-speed rate. Per-packet "
                  f"costs at {lf['cpu_at_pps']:,} packets/s, which every case carries:", "",
                  "| program | loss-free default | loss-free perf | speed-up | default "
                  "µs CPU/packet | perf µs CPU/packet | CPU speed-up | default context "
                  "switches/packet | perf context switches/packet |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in PROGRAMS:
            d_, p_ = lb["default"][c], lb["performance"][c]
            lines.append(
                f"| {PROGRAMS[c]} | {d_['pps']:,.0f} ({_k(d_['all'])}) | "
                f"{p_['pps']:,.0f} ({_k(p_['all'])}) | "
                f"{_r(p_['pps'], d_['pps'])}x | {_f(d_['cpu_us_per_pkt'], 1)} | "
                f"{_f(p_['cpu_us_per_pkt'], 1)} | "
                f"{_r(d_['cpu_us_per_pkt'], p_['cpu_us_per_pkt'])}x | "
                f"{_f(d_['ctxsw_per_pkt'], 2)} | {_f(p_['ctxsw_per_pkt'], 2)} |")
        lines += ["", "NPE/minimal by loss-free rate: default "
                  f"{_r(lb['default']['fastpath']['pps'], lb['default']['minimal']['pps'])}, "
                  "performance build "
                  f"{_r(lb['performance']['fastpath']['pps'], lb['performance']['minimal']['pps'])}"
                  f"; a rate of {lf['rates'][-1]:,} means the sweep's top, not the switch's."]
    return lines + ["", " ".join(summary(res)), ""]


def summary(res: dict) -> list[str]:
    """What the tables say, in words (from the numbers, whatever they are)."""
    pps, lf = res["pps"], res.get("loss_free")

    def up(c, s):
        return pps["performance"][c][str(s)]["pps"] / pps["default"][c][str(s)]["pps"]

    def span(c):
        xs = [up(c, s) for s in res["sizes"]]
        return f"{min(xs):.2f}–{max(xs):.2f}×" if len(xs) > 1 else f"{xs[0]:.2f}×"

    text = [f"In short: at top speed the performance build forwards the NPE {span('fastpath')} "
            f"as fast as the default build, minimal.p4 {span('minimal')}."]
    if not lf:
        return text
    lb = lf["builds"]
    lf_up = {c: lb["performance"][c]["pps"] / lb["default"][c]["pps"]
             if lb["default"][c]["pps"] else None for c in PROGRAMS}
    cpu_up = {c: _r(lb["default"][c]["cpu_us_per_pkt"], lb["performance"][c]["cpu_us_per_pkt"])
              for c in PROGRAMS}
    text.append(f"Loss-free ({lf['size']} B) it carries {_r(lf_up['fastpath'], 1)}× the NPE's "
                f"and {_r(lf_up['minimal'], 1)}× minimal.p4's packets, and the switch's CPU time "
                f"per packet is {cpu_up['fastpath']}× smaller for the NPE, {cpu_up['minimal']}× "
                "for minimal.p4"
                + (": what the build removes (debug and trace logging compiled in, -O2 code) is "
                   "work of the P4 pipeline, which the NPE has much more of than minimal.p4."
                   if all(x != "–" for x in cpu_up.values())
                   and float(cpu_up["fastpath"]) > float(cpu_up["minimal"]) else "."))
    slower = [s for s in res["sizes"] if up("minimal", s) < 0.95]
    if slower and (lf_up["minimal"] or 0) >= 1:
        s = slower[0]
        d_, p_ = pps["default"]["minimal"][str(s)], pps["performance"]["minimal"][str(s)]
        text.append(
            f"At top speed, minimal.p4 is slower on the performance build at "
            f"{', '.join(f'{x} B' for x in slower)} although it carries more without loss: "
            f"there ({s} B) tcpreplay offered {p_['offered_pps']:,.0f} packets/s to it against "
            f"{d_['offered_pps']:,.0f} to the default build; the switch had "
            f"{_f(p_['ctxsw_per_pkt'], 2)} against {_f(d_['ctxsw_per_pkt'], 2)} context "
            f"switches and spent {_f(p_['cpu_us_per_pkt'], 1)} against "
            f"{_f(d_['cpu_us_per_pkt'], 1)} µs CPU per delivered packet. Most "
            "likely the generator's extra packets, dropped on the way into the switch, take the "
            "two shared cores' time from forwarding: the top-speed rate of a cheap program on "
            "this machine measures the overload more than the switch.")
    return text


def save(res: dict, path: Path = RESULTS):
    """Put ``res`` under "bmv2_builds" in results.json, leaving every other stage as it is."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results["bmv2_builds"] = res
    path.write_text(json.dumps(results, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perf-bmv2", metavar="PATH",
                    help=f"the performance build's simple_switch_grpc (default: ${ENV})")
    ap.add_argument("--default-bmv2", metavar="PATH",
                    help="the build to compare with (default: simple_switch_grpc on PATH)")
    ap.add_argument("--sizes", default="64,512,1400", help="frame sizes (default 64,512,1400)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--lock", type=Path, metavar="FILE",
                    help="take this flock(1) lock for each round, not for the whole run "
                         "(e.g. /tmp/spp-heavy.lock)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the loss-free rates")
    ap.add_argument("--no-save", action="store_true",
                    help="print the results instead of writing docs/bench/results.json")
    args = ap.parse_args(argv)
    perf = perf_binary(args.perf_bmv2)
    if perf is None:
        print(skip_reason(args.perf_bmv2))
        return 0
    if os.geteuid() != 0:
        sys.exit("bmv2_builds: run as root (namespaces)")
    for tool in ("tcpreplay",):
        if shutil.which(tool) is None:
            sys.exit(f"bmv2_builds: {tool} missing: apt-get install {tool}")
    try:
        res = run(perf, args.default_bmv2, tuple(int(s) for s in args.sizes.split(",")),
                  args.runs, args.seconds, not args.no_sweep, args.lock)
    except Bmv2Error as e:
        sys.exit(f"bmv2_builds: {e}")
    if args.no_save:
        print(json.dumps(res, indent=1))
    else:
        save(res)
        print(f"wrote \"bmv2_builds\" into {RESULTS.relative_to(ROOT)}; "
              "python -m bench.run --report-only renders it")
    print("\n".join(section(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
