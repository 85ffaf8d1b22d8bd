"""Sample slice program: the slow path of the IPv4 meta-router.

    python -m slices.samples.slowpath [--state /var/run/spp/router.state.json]

Listens on the fastpath's local-delivery and exception endpoints (fpInfo
of ipv4_router's state file). Every datagram arrives behind a meta-net
header (slices/metanet.py) saying why it came and from where:

* exception, TTL expired: answers ICMP time exceeded from the router's
  overlay address, so traceroute works across the overlay;
* exception, no filter: answers ICMP destination unreachable;
* local delivery of an ICMP echo request to the router's address: answers it;
* any other local delivery: forwards it in user space, by the router's
  routes (the PlanetLab-style slow path the SPP's fastpath replaced).

Everything goes back to the fastpath's return endpoint with a forwarding
key naming the output meta-interface and next hop; the router's
substrate-only filters match the key. Answers go back the way the packet
came: the meta-net header names the input meta-interface and tunnel source.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import selectors
import signal
import socket
import sys
from pathlib import Path

from scapy.layers.inet import ICMP, IP

from slices import metanet as mn

log = logging.getLogger("slowpath")


class SlowPath:
    def __init__(self, state: dict):
        fp = state["fpinfo"]
        self.router_addr = state["router_addr"]
        self.router_int = int(ipaddress.IPv4Address(self.router_addr))
        self.ret = (fp["ret_endpoint"]["addr"], fp["ret_endpoint"]["port"])
        self.by_mi = {m["mi"]: m for m in state["meta_ifs"].values()}
        # Routes, longest prefix first, as (network, mask, the bytes to put in front of a
        # datagram forwarded that way: meta-net header + forwarding key).
        self.routes = []
        for r in sorted(state["routes"],
                        key=lambda r: -ipaddress.IPv4Network(r["prefix"]).prefixlen):
            net = ipaddress.IPv4Network(r["prefix"])
            mi = state["meta_ifs"][r["via"]]
            self.routes.append((int(net.network_address), int(net.netmask),
                                self.prefix(mi, mi["nh_addr"], mi["nh_port"])))
        self.ld = self._bind(fp["ld_endpoint"])
        self.exc = self._bind(fp["exc_endpoint"])
        self.counts = {"time_exceeded": 0, "unreachable": 0, "echo": 0, "forwarded": 0,
                       "dropped": 0}

    @staticmethod
    def _bind(ep) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((ep["addr"], ep["port"]))
        return s

    @staticmethod
    def prefix(mi: dict, dst_addr: str, dst_port: int) -> bytes:
        """Meta-net header + forwarding key for the output tunnel (mi -> dst)."""
        return bytes(mn.MetaNet(kind=mn.FROM_SLICE)
                     / mn.FwdKey(dst_addr=dst_addr, src_port=mi["port"], dst_port=dst_port))

    def send(self, datagram: bytes, mi: dict, dst_addr: str, dst_port: int):
        self.ld.sendto(self.prefix(mi, dst_addr, dst_port) + datagram, self.ret)

    def answer(self, hdr: mn.MetaNet, reply: IP):
        """Send back over the meta-interface and tunnel the packet came from."""
        mi = self.by_mi.get(hdr.meta_if)
        if mi is None:
            self.counts["dropped"] += 1
            return
        self.send(bytes(reply), mi, hdr.tunnel_src_addr, hdr.tunnel_src_port)

    @staticmethod
    def icmp_error(orig: bytes, icmp: ICMP, src: str) -> IP:
        ihl = (orig[0] & 0x0F) * 4
        return IP(src=src, dst=IP(orig).src, ttl=64) / icmp / orig[:ihl + 8]

    def handle(self, data: bytes):
        # The common case, forwarding, on raw bytes: scapy only for what is answered.
        if (len(data) >= mn.HEADER_LEN + 20 and data[0] == mn.MAGIC
                and data[1] == mn.LOCAL_DELIVERY):
            dst = int.from_bytes(data[mn.HEADER_LEN + 16:mn.HEADER_LEN + 20], "big")
            if dst != self.router_int:
                for net, mask, prefix in self.routes:
                    if dst & mask == net:
                        self.counts["forwarded"] += 1
                        self.ld.sendto(prefix + data[mn.HEADER_LEN:], self.ret)
                        return
                self.counts["dropped"] += 1
                return
        try:
            hdr = mn.MetaNet(data)
            inner = bytes(hdr.payload)
            ip = IP(inner)
        except Exception:  # noqa: BLE001 - a broken datagram is dropped, not fatal
            self.counts["dropped"] += 1
            return
        if hdr.kind == mn.EXCEPTION:
            if hdr.reason == mn.TTL_EXPIRED:
                self.counts["time_exceeded"] += 1
                self.answer(hdr, self.icmp_error(inner, ICMP(type=11, code=0), self.router_addr))
            elif hdr.reason == mn.NO_FILTER and not (ICMP in ip and ip[ICMP].type == 3):
                self.counts["unreachable"] += 1
                self.answer(hdr, self.icmp_error(inner, ICMP(type=3, code=0), self.router_addr))
            else:
                self.counts["dropped"] += 1
        elif ip.dst == self.router_addr:
            if ICMP in ip and ip[ICMP].type == 8:
                self.counts["echo"] += 1
                reply = IP(src=self.router_addr, dst=ip.src, ttl=64) / ICMP(
                    type=0, id=ip[ICMP].id, seq=ip[ICMP].seq) / bytes(ip[ICMP].payload)
                self.answer(hdr, reply)
            else:
                self.counts["dropped"] += 1
        else:
            self.counts["dropped"] += 1

    def run(self, stop):
        sel = selectors.DefaultSelector()
        for s in (self.ld, self.exc):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not stop():
            for key, _ in sel.select(timeout=0.5):
                while True:
                    try:
                        data, source = key.fileobj.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if source != self.ret:
                        # Only the fastpath sends here, from its return endpoint:
                        # anyone else (an end host, another slice) forging
                        # exceptions would make the router answer for it.
                        self.counts["dropped"] += 1
                        continue
                    self.handle(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, default=Path("/var/run/spp/router.state.json"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s slowpath: %(message)s")
    try:
        state = json.loads(args.state.read_text())
    except (OSError, ValueError) as e:
        print(f"slowpath: cannot read {args.state}: {e} (run ipv4_router first)",
              file=sys.stderr)
        return 1
    sp = SlowPath(state)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    log.info("listening on %s (local delivery) and %s (exceptions)",
             sp.ld.getsockname(), sp.exc.getsockname())
    sp.run(lambda: bool(stopping))
    log.info("stopped: %s", sp.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
