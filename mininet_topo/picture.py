"""The testbed's picture: SPP nodes (line card and NPEs), substrate and peering
links with their rates, end hosts and the slices' hosts, drawn by Graphviz's
``dot`` (Debian: graphviz) into ``run/<topo>/topology.svg`` at start-up. The
controller's web view shows that file; without it (a testbed the controller
was given by hand) it draws the same from the testbed description.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("spp.picture")

OPERATOR_PORT = 8081            # the controller's operator listener (web view, /metrics)
PICTURE = "topology.svg"
NL = "\n"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def web_url() -> str:
    """The operator listener of `make run`'s controller, from the root namespace."""
    from .topology import CONTROLLER_CTL_ADDR
    return f"http://{CONTROLLER_CTL_ADDR}:{OPERATOR_PORT}/"


class GraphvizMissing(RuntimeError):
    pass


def _q(s) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rate(kbps: float) -> str:
    return f"{kbps / 1e6:g} Gb/s" if kbps >= 1e6 else f"{kbps / 1e3:g} Mb/s"


def _head(name: str) -> list[str]:
    return [f"graph {_q(name)} {{", "  graph [rankdir=LR, fontname=Helvetica, fontsize=11, "
            "bgcolor=white, nodesep=0.3, ranksep=0.6];",
            "  node [fontname=Helvetica, fontsize=10, style=filled, fillcolor=white];",
            "  edge [fontname=Helvetica, fontsize=9, color=gray30];"]


def _node_cluster(name: str, lc: str, npes: list[str], extra: str = "") -> list[str]:
    out = [f"  subgraph {_q('cluster_' + name)} {{",
           f"    label={_q('SPP node ' + name + extra)}; style=rounded; color=gray50;",
           f"    {_q(lc)} [shape=box, fillcolor=\"#e8eef8\", label={_q(lc + ' (line card)')}];"]
    for npe in npes:
        out += [f"    {_q(npe)} [shape=box3d, fillcolor=\"#fdf0dc\", label={_q(npe + ' (NPE)')}];",
                f"    {_q(lc)} -- {_q(npe)} [style=bold];"]
    return out + ["  }"]


def dot_from_plan(plan) -> str:
    """Graphviz source of a testbed plan (mininet_topo.topology.plan)."""
    lines = _head(plan.spec.name)
    colors = {s.name: COLORS[i % len(COLORS)] for i, s in enumerate(plan.spec.slices)}
    for node in plan.nodes.values():
        lines += _node_cluster(node.name, node.lc, [x.name for x in node.npes])
    for h in plan.hosts.values():
        node = plan.nodes[h.node]
        iface = next(i for i in node.interfaces if i.neighbor == h.name)
        lines += [f"  {_q(h.name)} [shape=ellipse, fillcolor=\"#eeeeee\", "
                  f"label={_q(h.name + NL + h.addr)}];",
                  f"  {_q(node.lc)} -- {_q(h.name)} [label={_q(_rate(iface.bw_kbps))}];"]
    for li, link in enumerate(plan.spec.links, start=1):
        a, b = plan.nodes[link.a], plan.nodes[link.b]
        ia = next(i for i in a.interfaces if i.peering and i.link == li)
        lines.append(f"  {_q(a.lc)} -- {_q(b.lc)} [penwidth=2, color=gray20, "
                     f"label={_q('peering ' + _rate(ia.bw_kbps))}];")
    for sh in plan.slice_hosts:
        c = colors.get(sh.slice, COLORS[0])
        lines += [f"  {_q(sh.name)} [shape=note, color={_q(c)}, fontcolor={_q(c)}, "
                  f"label={_q(f'slice {sh.slice}' + NL + sh.name)}];",
                  f"  {_q(plan.nodes[sh.node].lc)} -- {_q(sh.name)} [color={_q(c)}, "
                  "style=dashed];"]
    return "\n".join(lines + ["}"]) + "\n"


def dot_from_testbed(testbed, slices: list[dict]) -> str:
    """Graphviz source of a testbed description (controller.testbed.Testbed)
    with the slices of the controller's databases (name, node, data_addr)."""
    lines = _head(testbed.name)
    names = sorted({s["name"] for s in slices})
    colors = {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}
    for node in testbed.nodes:
        lines += _node_cluster(node.name, node.lc.name, [n.name for n in node.npes])
        for i in node.interfaces:
            me = f"{node.name}:if{i.ifn}"
            kind = "peering" if i.peering else "interface"
            label = f"{kind} {i.ifn}\n{i.addr}"
            lines += [f"  {_q(me)} [shape=plaintext, style=\"\", label={_q(label)}];",
                      f"  {_q(node.lc.name)} -- {_q(me)} [label={_q(_rate(i.bandwidth_kbps))}];"]
    for s in slices:
        node = testbed.node(s["node"])
        if node is None:
            continue
        c = colors[s["name"]]
        me = f"slice {s['name']}@{s['node']}"
        label = f"slice {s['name']}\n{s['data_addr']}"
        lines += [f"  {_q(me)} [shape=note, color={_q(c)}, fontcolor={_q(c)}, "
                  f"label={_q(label)}];",
                  f"  {_q(node.lc.name)} -- {_q(me)} [color={_q(c)}, style=dashed];"]
    return "\n".join(lines + ["}"]) + "\n"


def render(dot_source: str, timeout: float = 20) -> bytes:
    """SVG of Graphviz source; GraphvizMissing when ``dot`` is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing("Graphviz's `dot` is not installed (Debian: apt-get install "
                              "graphviz): no topology picture")
    p = subprocess.run([dot, "-Tsvg"], input=dot_source.encode(), capture_output=True,
                       timeout=timeout, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"dot failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout


def write_picture(plan, run_dir: Path) -> list[str]:
    """Write run_dir/topology.svg; the notes to show when it cannot be drawn."""
    try:
        (Path(run_dir) / PICTURE).write_bytes(render(dot_from_plan(plan)))
        return []
    except (GraphvizMissing, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log.warning("%s", e)
        return [f"no {PICTURE}: {e}"]
