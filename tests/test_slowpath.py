"""The sample slow path on loopback sockets: what it sends back, byte for byte."""

import socket

from conftest import free_port
from scapy.layers.inet import ICMP, IP, UDP

from slices import metanet as mn
from slices.samples.slowpath import SlowPath


def make(ret_port):
    ld, exc = free_port(), free_port()
    state = {"router_addr": "10.1.255.1",
             "fpinfo": {"ld_endpoint": {"addr": "127.0.0.1", "port": ld},
                        "exc_endpoint": {"addr": "127.0.0.1", "port": exc},
                        "ret_endpoint": {"addr": "127.0.0.1", "port": ret_port}},
             "meta_ifs": {"host:h1": {"mi": 1, "port": 20001, "nh_addr": "172.16.1.2",
                                      "nh_port": 30000},
                          "node:b": {"mi": 2, "port": 21001, "nh_addr": "172.31.1.2",
                                     "nh_port": 21001}},
             "routes": [{"prefix": "10.1.0.0/16", "via": "node:b"},
                        {"prefix": "10.1.1.0/24", "via": "host:h1"}]}
    return SlowPath(state)


def test_slow_path_answers_and_forwards():
    npe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    npe.bind(("127.0.0.1", 0))
    npe.settimeout(2)
    sp = make(npe.getsockname()[1])
    try:
        # Local delivery for another address: forwarded by the longest prefix.
        d = IP(src="10.1.2.1", dst="10.1.1.7", ttl=9) / UDP(sport=1, dport=2) / b"data"
        sp.handle(bytes(mn.MetaNet(kind=mn.LOCAL_DELIVERY, meta_if=2) / d))
        back = mn.MetaNet(npe.recv(4096))
        assert back.kind == mn.FROM_SLICE
        key = back[mn.FwdKey]
        assert (key.dst_addr, key.src_port, key.dst_port) == ("172.16.1.2", 20001, 30000)
        assert bytes(key.payload) == bytes(d)
        # TTL expired: ICMP time exceeded from the router, back where it came from.
        sp.handle(bytes(mn.MetaNet(kind=mn.EXCEPTION, reason=mn.TTL_EXPIRED, meta_if=2,
                                   tunnel_src_addr="172.31.1.2", tunnel_src_port=21001) / d))
        back = mn.MetaNet(npe.recv(4096))
        key = back[mn.FwdKey]
        assert (key.dst_addr, key.src_port, key.dst_port) == ("172.31.1.2", 21001, 21001)
        icmp = IP(bytes(key.payload))
        assert (icmp.src, icmp.dst, icmp[ICMP].type) == ("10.1.255.1", "10.1.2.1", 11)
        assert bytes(icmp[ICMP].payload) == bytes(d)[:28]
        # Ping to the router's address: an echo reply.
        sp.handle(bytes(mn.MetaNet(kind=mn.LOCAL_DELIVERY, meta_if=1,
                                   tunnel_src_addr="172.16.1.2", tunnel_src_port=30000)
                        / IP(src="10.1.1.1", dst="10.1.255.1") / ICMP(id=5, seq=3) / b"p"))
        reply = IP(bytes(mn.MetaNet(npe.recv(4096))[mn.FwdKey].payload))
        assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 5, 3)
        # Garbage and unroutable datagrams are counted, not answered.
        sp.handle(b"\x00" * 10)
        sp.handle(bytes(mn.MetaNet(kind=mn.LOCAL_DELIVERY) / IP(dst="192.0.2.1")))
        assert sp.counts == {"time_exceeded": 1, "unreachable": 0, "echo": 1, "forwarded": 1,
                             "dropped": 2}
    finally:
        npe.close()
        sp.ld.close()
        sp.exc.close()
