"""docs/benchmarks.md and its plots, from bench/run.py's results."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .dataplane import CASES, SIZES  # noqa: E402


def _f(x, fmt="{:,.0f}"):
    return "–" if x is None else fmt.format(x)


def _ratio(a, b):
    return "–" if not a or not b else f"{a / b:.2f}"


def plot_dataplane(dp: dict, out: Path):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    cases = [c for c in CASES if c in dp["cases"]]
    width = 0.8 / max(1, len(cases))
    for i, c in enumerate(cases):
        sizes = [s for s in SIZES if str(s) in dp["cases"][c] or s in dp["cases"][c]]
        row = {int(k): v for k, v in dp["cases"][c].items()}
        xs = [j + i * width for j in range(len(sizes))]
        ax1.bar(xs, [row[s]["pps"] for s in sizes], width, label=CASES[c])
        ax2.bar(xs, [row[s]["p50_us"] or 0 for s in sizes], width, label=CASES[c])
    for ax, title in ((ax1, "throughput (packets/s, log)"), (ax2, "one-way latency p50 (µs, log)")):
        ax.set_xticks([j + width * (len(cases) - 1) / 2 for j in range(len(SIZES))])
        ax.set_xticklabels([f"{s} B" for s in SIZES])
        ax.set_yscale("log")
        ax.set_title(title)
    ax1.legend(fontsize=8)
    fig.suptitle(f"Data plane, median of {dp['runs']} runs")
    fig.tight_layout()
    fig.savefig(out / "dataplane.png", dpi=100)
    plt.close(fig)


def plot_controlplane(cp: dict, out: Path):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(cp["rates"])
    ax.barh(names, [cp["rates"][n] for n in names], color="tab:blue")
    ax.set_xlabel("filters installed per second")
    ax.set_title(f"Filter installation ({cp['n_filters']} filters each)")
    fig.tight_layout()
    fig.savefig(out / "controlplane.png", dpi=100)
    plt.close(fig)


def plot_scale(sc: dict, out: Path):
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key in zip(axes, ("nodes", "slices", "hosts"), strict=True):
        rows = sc.get(key, [])
        ax.plot([r[key] for r in rows], [r["up_s"] for r in rows], "o-")
        for r in rows:
            if not r["ping"]:
                ax.plot([r[key]], [r["up_s"]], "rx", markersize=12)
        ax.set_xlabel(key)
        ax.set_ylabel("bring-up time (s)")
        ax.set_title(f"testbed size: {key}")
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=100)
    plt.close(fig)


def dataplane_section(dp: dict) -> list[str]:
    cases = {c: {int(k): v for k, v in dp["cases"][c].items()} for c in CASES
             if c in dp["cases"]}
    lines = ["## 1. Data plane", "",
             f"Median of {dp['runs']} runs; throughput offered at tcpreplay's top speed for "
             f"{dp['seconds']:g} s and measured over the steady middle of that window; latency "
             "one way at 200 packets/s (300 probes per run), from kernel timestamps on the "
             "generator's and the sink's interfaces.", "",
             "| case | size | packets/s | Mb/s | latency p50 µs | p90 µs | p99 µs |",
             "|---|---|---|---|---|---|---|"]
    for c, rows in cases.items():
        for s in SIZES:
            r = rows.get(s)
            if r:
                lines.append(f"| {CASES[c]} | {s} B | {_f(r['pps'])} | {_f(r['mbps'], '{:,.1f}')}"
                             f" | {_f(r['p50_us'])} | {_f(r['p90_us'])} | {_f(r['p99_us'])} |")
    pr = {int(k): v for k, v in dp.get("paired", {}).get("sizes", {}).items()}
    if pr:
        lines[2] += (f" Cases (b) and (c) are measured side by side: both switches up at once, "
                     f"{dp['paired']['rounds']} rounds of {dp['paired']['seconds']:g} s each "
                     "per size, each round offering the same frames to one and then the other "
                     "(minimal.p4 first in odd rounds, the NPE first in even ones); their "
                     "rows are the median of those rounds.")
    lines += ["", "Ratios of packet rates (same size, same run"
              + ("; (c)/(b) is the median of the paired rounds' ratios" if pr else "") + "):",
              "", "| size | (c)/(b) NPE vs minimal BMv2 | (c)/(d) fastpath vs slow path | "
              "(c)/(a) NPE vs kernel |", "|---|---|---|---|"]
    for s in SIZES:
        g = {c: cases.get(c, {}).get(s, {}).get("pps") for c in CASES}
        cb = f"{pr[s]['ratio']:.2f}" if s in pr else _ratio(g["fastpath"], g["minimal"])
        lines.append(f"| {s} B | {cb} | {_ratio(g['fastpath'], g['slowpath'])} | "
                     f"{_ratio(g['fastpath'], g['kernel'])} |")
    cd = [g for s in SIZES
          if (g := _ratio(cases.get("fastpath", {}).get(s, {}).get("pps"),
                          cases.get("slowpath", {}).get(s, {}).get("pps"))) != "–"]
    if cd:
        lines += ["", f"The SPP measured its fastpath about 80 times faster than the slow path; "
                  f"here (c)/(d) is {min(cd)}–{max(cd)}. The fastpath is itself software "
                  "(BMv2), and a slow-path packet crosses the NPE twice (in, then back with "
                  "its forwarding key): at full load the NPE, not the user-space program, "
                  "limits the slow path, which therefore runs at about half the fastpath's "
                  "rate, with about twice its latency."]
    if pr:
        lines += paired_section(dp, cases, pr)
    lines += ["", "![data plane](bench/dataplane.png)", ""]
    prof = dp.get("profile")
    if prof and prof.get("rows"):
        lines += [f"### Where the NPE's time goes ({prof['size']} B, full load)", "",
                  "`perf record -e cpu-clock` on the NPE's simple_switch_grpc while it forwards "
                  "the fastpath case at full load; self time, grouped by what the switch is "
                  "doing (patterns in bench/dataplane.py, CATEGORIES):", "",
                  "| % of the switch's CPU time | doing |", "|---|---|"]
        lines += [f"| {c['percent']:.1f} | {c['category']} |" for c in prof["categories"]]
        lines += ["", "The functions with the most self time:", "",
                  "| % | where | function |", "|---|---|---|"]
        lines += [f"| {r['percent']:.1f} | {r['dso']} | `{r['symbol'].strip()}` |"
                  for r in prof["rows"][:15]]
        lines.append("")
    return lines


def paired_section(dp: dict, cases: dict, pr: dict) -> list[str]:
    """Issue 9.5's ratio, NPE fastpath vs minimal.p4, round by round, with its spread."""
    def cpu(c, s):
        return _f(cases.get(c, {}).get(s, {}).get("cpu_us_per_pkt"), "{:.1f}")

    def spread(xs):
        return f"{min(xs):.2f}–{max(xs):.2f}" if xs else "–"

    p0 = next(iter(pr.values()))
    at = f"{_f(p0.get('paced_pps'))} packets/s"
    lines = ["", f"### NPE fastpath vs minimal.p4, {dp['paired']['rounds']} paired rounds",
             "", "Per round, the NPE's top-speed packet rate over minimal.p4's in the same "
             "round (the median and the range over the rounds), and the switches' CPU cost: "
             "the switch process's CPU time (all threads) per packet delivered while the same "
             f"frames are paced at {at} for {p0.get('paced_s', 0):g} s, which both carry "
             "without loss. At tcpreplay's top speed the generator and the switch share the "
             "two cores, and minimal.p4's rate moves with how the generator's and the switch's "
             "threads share them, far more than the NPE's (the ranges). The CPU ratio, "
             "minimal.p4's µs per packet over the NPE's, is the rate the NPE would reach next "
             "to minimal.p4 if the switch's CPU time were all that limits it; at this rate "
             "each packet also wakes "
             "the switch's threads, a cost both pay alike, which a busier switch shares out "
             "over several packets (see the loss-free rates under BMv2's performance build, "
             "where that stage ran). Issue 9.5's target: NPE ≥ 0.5× minimal.p4.", "",
             "| size | minimal.p4 packets/s (range) | NPE packets/s (range) | NPE/minimal.p4 "
             f"median (range) | CPU µs/packet at {at}: minimal.p4 | NPE | CPU ratio median "
             "(range) |", "|---|---|---|---|---|---|---|"]
    for s in SIZES:
        p = pr.get(s)
        if not p:
            continue
        rng = {c: cases[c][s]["all_pps"] for c in ("minimal", "fastpath")}
        lines.append(f"| {s} B | {_f(cases['minimal'][s]['pps'])} ({_f(min(rng['minimal']))}–"
                     f"{_f(max(rng['minimal']))}) | {_f(cases['fastpath'][s]['pps'])} "
                     f"({_f(min(rng['fastpath']))}–{_f(max(rng['fastpath']))}) | "
                     f"**{p['ratio']:.2f}** ({spread(p['ratios'])}) | {cpu('minimal', s)} | "
                     f"{cpu('fastpath', s)} | {_f(p['cpu_ratio'], '{:.2f}')} "
                     f"({spread(p['cpu_ratios'])}) |")
    ratios = [x for p in pr.values() for x in p["ratios"]]
    cpus = [x for p in pr.values() for x in p["cpu_ratios"]]
    if ratios:
        lines.append(f"| all sizes ({len(ratios)} pairs) | | | **{median(ratios):.2f}** "
                     f"({spread(ratios)}) | | | {_f(median(cpus) if cpus else None, '{:.2f}')} "
                     f"({spread(cpus)}) |")
    pin = dp["paired"].get("pinned")
    if pin:
        m, f = (pin["pps"][c] for c in ("minimal", "fastpath"))
        lines.append(f"| {pin['size']} B, pinned | {_f(median(m))} ({_f(min(m))}–{_f(max(m))}) "
                     f"| {_f(median(f))} ({_f(min(f))}–{_f(max(f))}) | **{pin['ratio']:.2f}** "
                     f"({spread(pin['ratios'])}) | | | |")
    idle = max((p.get("other_cpu_s_max") or 0 for p in pr.values()), default=0)
    lost = [p["paced_lost_max"] for p in pr.values() if p.get("paced_lost_max") is not None]
    lines += ["", "Each round's ratios, by size: " + "; ".join(
        f"{s} B " + ", ".join(f"{x:.2f}" for x in pr[s]["ratios"]) for s in SIZES if s in pr)
        + f". The switch not being measured used at most {idle * 1000:.0f} ms of CPU during "
        "the other's run" + (f"; the paced runs lost at most {max(lost):.1%} of their packets"
                             if lost else "") + "."]
    if pin:
        lines += ["", f"*Pinned*: the same top-speed runs ({pin['rounds']} more pairs) with the "
                  f"generator on CPU {pin['generator_cpu']} and the switch, all its threads, on "
                  f"CPU {pin['switch_cpu']} (taskset): neither takes the other's core, so the "
                  "rate is the switch's on one core, and it moves far less than with the "
                  "cores shared. Ratios: " + ", ".join(f"{x:.2f}" for x in pin["ratios"]) + "."]
    return lines


def controlplane_section(cp: dict) -> list[str]:
    r = cp["rates"]
    lines = ["## 2. Control plane", "",
             f"One run; each rate is over {cp['n_filters']} filters written into the same "
             "BMv2 NPE, each latency over the stated number of calls. The controller runs as "
             "its own process, as in a testbed; REST calls come from the slice library.", "",
             "| how | filters/s | vs raw P4Runtime, one per request | vs raw, batches of 100 |",
             "|---|---|---|---|"]
    names = {"raw_p4rt_single": "raw P4Runtime, one entry per request",
             "raw_p4rt_batch100": "raw P4Runtime, 100 entries per request",
             "rest_single": "slice library + REST, one by one",
             "rest_8_in_flight": "slice library + REST, 8 requests in flight",
             "rest_8_clients_1_slice": "slice library + REST, 8 clients of one slice",
             "rest_4_slices": "slice library + REST, 4 slices at once (2 clients each)",
             "batch_8_clients_1_slice": "slice library's batch call, 8 clients of one slice",
             "batch_4_slices": "slice library's batch call, 4 slices at once (2 clients each)",
             "rest_bulk_1_program": "one slice program loading its filters (see below)"}
    for k, v in r.items():
        lines.append(f"| {names.get(k, k)} | {_f(v)} | {_ratio(v, r.get('raw_p4rt_single'))} | "
                     f"{_ratio(v, r.get('raw_p4rt_batch100'))} |")
    lines += ["", "| call (slice library) | p50 ms | p90 ms | p99 ms | calls |",
              "|---|---|---|---|---|"]
    for k, v in cp["latency"].items():
        lines.append(f"| {k} | {v['p50_ms']:.2f} | {v['p90_ms']:.2f} | {v['p99_ms']:.2f} | "
                     f"{v['n']} |")
    lines += controlplane_targets(cp)
    lines += controlplane_cpu(cp)
    lines += ["", "![control plane](bench/controlplane.png)", ""]
    return lines


def controlplane_cpu(cp: dict) -> list[str]:
    """CPU per filter of each process, against the wall time per filter."""
    if "cpu_ms_per_filter" not in cp:
        return []
    cols = ["controller", "encoder", "npe", "bench process", "client processes", "wall"]
    lines = ["", "Where the time goes: CPU milliseconds per filter spent by each process "
             "during a stage, and the wall time per filter. The machine has 2 cores: a stage "
             "is CPU-bound when the CPU column sum nears twice the wall time. The encoder "
             "is the controller's child process that encodes large groups' P4Runtime "
             "updates (controller/encoder.py).", "",
             "| stage | controller | encoder | NPE (BMv2) | bench process | client processes "
             "| wall |",
             "|---|---|---|---|---|---|---|"]
    for stage, v in cp["cpu_ms_per_filter"].items():
        lines.append(f"| {stage} | " + " | ".join(_f(v.get(c), "{:.3f}") for c in cols) + " |")
    return lines


def controlplane_targets(cp: dict) -> list[str]:
    """Issue 10's targets against this run (clients are processes of their own)."""
    if "bulk" not in cp:
        return []
    r, lat, bulk, fair = cp["rates"], cp["latency"], cp["bulk"], cp["fairness"]
    raw = r.get("raw_p4rt_batch100")
    mem = next((v for k, v in lat.items() if k.startswith("mem_write_")), None)
    rows = [
        ("8 clients of one slice, a call per filter", ">= 0.5x raw batched, >= 2,000/s",
         f"{_f(r['rest_8_clients_1_slice'])}/s, {_ratio(r['rest_8_clients_1_slice'], raw)}x",
         r["rest_8_clients_1_slice"] >= max(0.5 * raw, 2000)),
        ("4 slices at once, a call per filter", ">= 0.5x raw batched, >= 2,000/s",
         f"{_f(r['rest_4_slices'])}/s, {_ratio(r['rest_4_slices'], raw)}x",
         r["rest_4_slices"] >= max(0.5 * raw, 2000)),
    ]
    for key, what in (("batch_8_clients_1_slice", "8 clients of one slice, batch calls"),
                      ("batch_4_slices", "4 slices at once, batch calls")):
        if key in r:
            rows.append((what, ">= 0.5x raw batched, >= 2,000/s",
                         f"{_f(r[key])}/s, {_ratio(r[key], raw)}x", r[key] >= max(0.5 * raw, 2000)))
    rows += [
        ("write_fltr one by one", "p50 <= 1.5 ms", f"p50 {lat['write_fltr']['p50_ms']:.2f} ms",
         lat["write_fltr"]["p50_ms"] <= 1.5),
        ("10,000 filters, one program", "<= 5 s",
         f"{bulk['filters']:,} in {bulk['seconds']:.2f} s: {bulk['seconds_per_10000']:.1f} s "
         f"per 10,000 ({bulk['how']})", bulk["seconds_per_10000"] <= 5),
        ("mem_write of 4,096 words", "<= 100 ms", f"p50 {mem['p50_ms']:.0f} ms" if mem else "–",
         bool(mem) and mem["p50_ms"] <= 100),
        ("fairness: read_stats p99 under a flood", "<= 5x idle p99",
         f"{fair['flood']['p99_ms']:.2f} ms vs {fair['idle']['p99_ms']:.2f} ms idle "
         f"({fair['p99_ratio']:.1f}x; flood {_f(fair['flood_calls_per_s'])} calls/s)",
         fair["p99_ratio"] <= 5),
    ]
    fb = cp.get("fairness_batch")
    if fb:
        rows.append(("fairness: read_stats p99 under a batch flood", "<= 5x idle p99",
                     f"{fb['flood']['p99_ms']:.2f} ms vs {fair['idle']['p99_ms']:.2f} ms idle "
                     f"({fb['p99_ratio']:.1f}x; flood {_f(fb['flood_calls_per_s'])} filter "
                     "calls/s)", fb["p99_ratio"] <= 5))
    lines = ["", "Issue 10's targets in this run (raw batched = "
             f"{_f(raw)} filters/s). The NPE's filter table holds 8,192 entries, so the "
             "bulk load writes 8,000 filters and the 10,000 figure is scaled from its rate.", "",
             "| what | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {w} | {t} | {m} | {'yes' if ok else '**no**'} |" for w, t, m, ok in rows]
    cpu = cp.get("cpu_ms_per_filter", {}).get("rest_8_clients_1_slice")
    if cpu and raw:
        per_call = sum(cpu.get(k, 0) for k in ("controller", "encoder", "npe",
                                                "client processes"))
        ceiling = 2 * 1000 / per_call
        lines += ["", f"The ceiling for single calls: in the 8-client stage one call costs "
                  f"{per_call:.2f} ms of CPU (controller {cpu['controller']:.2f}, clients "
                  f"{cpu.get('client processes', 0):.2f}, NPE {cpu['npe']:.2f}), so two cores "
                  f"serve at most {_f(ceiling)} calls/s even if nothing waits, against "
                  f"{_f(0.5 * raw)}/s for 0.5x raw batched"
                  + (": one REST call per filter cannot reach that here; the batch "
                     "extension is the faster way (the bulk row)." if ceiling < 0.5 * raw
                     else ".")]
    errors = {k: v for k, v in cp.get("errors", {}).items() if v}
    if errors or bulk["errors"] or fair["flood_errors"]:
        lines += ["", f"Errors answered: {errors}, bulk {bulk['errors']}, "
                  f"flood {fair['flood_errors']}."]
    return lines


def startup_section(su: dict) -> list[str]:
    lines = ["## 3. Start-up", "",
             f"From the start of the testbed to the first ping answered across the overlay "
             f"(first end host to last), median of {su['runs']} runs. `make run` adds the P4 "
             f"compile when p4c is installed: {_f(su.get('p4c_s'), '{:.1f}')} s for all three "
             "programs.", "",
             "| topology | first packet s | network up s | controller up s | slices configured s |"
             " all runs |", "|---|---|---|---|---|---|"]
    for t, r in su["topologies"].items():
        lines.append(f"| {t} | {r['first_packet_s']:.1f} | {r['network_s']:.1f} | "
                     f"{r['controller_s']:.1f} | {r['ready_s']:.1f} | "
                     + ", ".join(f"{x:.1f}" for x in r["all_first_packet_s"]) + " |")
    return lines + [""]


def scale_section(sc: dict) -> list[str]:
    pn = sc["per_npe"]
    lines = ["## 4. Scale", "", "Per NPE (the capacities are npe.p4's table sizes, read by the "
             "SRM from the P4Info):", "",
             f"- fastpaths: **{pn['fastpaths']['count']}** allocated in "
             f"{pn['fastpaths']['seconds']:.1f} s, then `{pn['fastpaths']['refusal']}`; the last "
             f"one forwards traffic: {pn['fastpaths']['last_forwards']}.",
             f"- filters: **{pn['filters']['count']}** written in {pn['filters']['seconds']:.0f} s "
             f"({pn['filters']['rate']:.0f}/s, 8 in flight), then `{pn['filters']['refusal']}`; "
             f"a packet only the last (lowest-precedence) filter matches is forwarded: "
             f"{pn['filters']['last_forwards']}.", "",
             "Per testbed (Mininet, one run each; a sweep stops at the first failure):", ""]
    for key, what in (("nodes", "SPP nodes in a chain, an end host at each end, one slice"),
                      ("slices", "slices on two nodes (a slice host per node each)"),
                      ("hosts", "end hosts on one node, one slice")):
        lines += [f"**{what}**", "", f"| {key} | up s | ping end to end | switches | "
                  "RSS per switch MB |", "|---|---|---|---|---|"]
        rows = sc.get(key, [])
        for r in rows:
            lines.append(f"| {r[key]} | {r['up_s']:.1f} | {'yes' if r['ping'] else 'NO'} | "
                         f"{r.get('switches', '–')} | {_f(r.get('rss_mb_median'))} |")
        if rows and all(r["ping"] for r in rows):
            cap = (" (the address plan allows 200; one NPE per node holds 64 sample "
                   "meta-routers' fastpaths, by their buffers)") if key == "slices" else ""
            lines += ["", f"No failure up to {rows[-1][key]} {key}, the largest tried{cap}; "
                      "bring-up time grows about linearly."]
        elif rows:
            bad = next(r for r in rows if not r["ping"])
            lines += ["", f"First failure at {bad[key]} {key}: {bad.get('error', 'no ping')}"]
        lines.append("")
    return lines + ["![scale](bench/scale.png)", ""]


def write_report(results: dict, path: Path, out: Path):
    env = results["environment"]
    lines = ["# Benchmarks", "",
             "Produced by `make bench` (bench/run.py); raw numbers in "
             "[bench/results.json](bench/results.json). Re-run it to reproduce; compare "
             "ratios, not absolute rates, across machines: everything here ran side by side on "
             "one shared 2-core VM, generator and switches included.", "",
             "## Set-up", "",
             f"- date {env['date']}, kernel {env['kernel']}, {env['cores']} cores "
             f"({env['cpu']}), {env['memory_gb']} GB",
             f"- BMv2: {env['bmv2']}; built with PI and Thrift, `-O2` (README, Prerequisites); "
             f"logging macros compiled in: **{env['bmv2_logging_macros']}**. BMv2's "
             "docs/performance.md gets several times more with `--disable-logging-macros "
             "--disable-elogger` and `-O3`; those numbers are not these"
             + ("; [BMv2's performance build](#bmv2s-performance-build) measures that build "
                "side by side with this one." if "bmv2_builds" in results else "."),
             f"- BMv2 logging at run time: {env['bmv2_runtime_logging']}. (With no logger but "
             "the default level, BMv2 formats every trace message for a null sink: that alone "
             "cost the NPE two thirds of its rate.)",
             f"- p4c: {env['p4c']}; generator: {env['tcpreplay']}",
             "- stage durations (s): " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                     results.get("durations_s", {}).items()),
             ""]
    if "dataplane" in results:
        plot_dataplane(results["dataplane"], out)
        lines += dataplane_section(results["dataplane"])
    if "controlplane" in results:
        plot_controlplane(results["controlplane"], out)
        lines += controlplane_section(results["controlplane"])
    if "startup" in results:
        lines += startup_section(results["startup"])
    if "scale" in results:
        plot_scale(results["scale"], out)
        lines += scale_section(results["scale"])
    if "isolation" in results:
        from .isolation import plot as plot_isolation
        from .isolation import section as isolation_section
        plot_isolation(results["isolation"], out / "isolation.png")
        lines += isolation_section(results["isolation"])
    if "bmv2_builds" in results:
        from .bmv2_builds import section as bmv2_builds_section
        lines += bmv2_builds_section(results["bmv2_builds"])
    lines += ["## What the numbers mean", "",
              "- **(a) kernel**: the generator's packets forwarded by Linux between two veths; "
              "the ceiling of this set-up (the generator shares the two cores).",
              "- **(b) minimal**: BMv2 with one exact-match table; what any P4 program on BMv2 "
              "costs here.",
              "- **(c) fastpath**: npe.p4 with one fastpath: tunnel lookup, fastpath partition, "
              "filter (ternary), stats, meter, encapsulation, route; (c)/(b) is the price of "
              "the SPP pipeline on BMv2.",
              "- **(d) slow path**: the same flow delivered to a slice host (meta-net header) "
              "and sent back by slices/samples/slowpath.py with a forwarding key (a second pass "
              "through npe.p4); (c)/(d) is this testbed's analogue of the SPP's fastpath vs "
              "slow-path factor (about 80 on the real NPE).",
              "- **(e) LC**: lc.p4 demultiplexing the same tunnel packets to its NPE port "
              "(source guard, demux, the fastpath's packet meter). (c) and (e) at 64 B are "
              "the switches' packet capacity: the testbed gives each NPE half of (c) as the "
              "packet budget its fastpaths share, policed at the LC (mininet_topo/capacity.py), "
              "and says at start-up when links can offer more.",
              "- Latencies are one way and include two veth hops and BMv2's own queues; at "
              "200 packets/s there is no queueing.",
              "- The control-plane rates include HTTP, JSON validation, the SQLite transaction "
              "and the P4Runtime write of each call; the raw rates are the P4Runtime part alone.",
              ""]
    path.write_text("\n".join(lines))
