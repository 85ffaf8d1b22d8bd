"""Scapy layers for the meta-net header and the forwarding key.

The NPE puts a meta-net header in front of every datagram it sends to a
slice (local delivery and exception traffic); a slice puts one, followed by
a forwarding key, in front of every datagram it sends back to its fastpath.
Layout and codes: docs/metanet.md. Tests and slice programs share these
definitions; they mirror p4/include/header.p4 and define.p4.

>>> pkt = MetaNet(data)                     # data: a UDP payload from the NPE
>>> pkt.kind == EXCEPTION, pkt.reason == TTL_EXPIRED, pkt[IP].src
>>> back = MetaNet(kind=FROM_SLICE) / FwdKey(dst_addr=..., src_port=..., dst_port=...) / IP(...)
"""

from scapy.fields import ByteEnumField, IPField, ShortField, XByteField
from scapy.layers.inet import IP
from scapy.packet import Packet, bind_layers

MAGIC = 0x53

LOCAL_DELIVERY = 1
EXCEPTION = 2
FROM_SLICE = 3
KINDS = {LOCAL_DELIVERY: "local_delivery", EXCEPTION: "exception", FROM_SLICE: "from_slice"}

NONE = 0
NO_FILTER = 1
TTL_EXPIRED = 2
MALFORMED = 3
REASONS = {NONE: "none", NO_FILTER: "no_filter", TTL_EXPIRED: "ttl_expired",
           MALFORMED: "malformed"}

HEADER_LEN = 16
KEY_LEN = 8


class MetaNet(Packet):
    """Meta-net header (16 bytes)."""

    name = "MetaNet"
    fields_desc = [
        XByteField("magic", MAGIC),
        ByteEnumField("kind", FROM_SLICE, KINDS),
        ByteEnumField("reason", NONE, REASONS),
        XByteField("reserved", 0),
        ShortField("fastpath", 0),
        ShortField("meta_if", 0),
        IPField("tunnel_src_addr", "0.0.0.0"),
        ShortField("tunnel_src_port", 0),
        ShortField("reserved2", 0),
    ]

    def guess_payload_class(self, payload):
        if self.kind == FROM_SLICE:
            return FwdKey
        return IP


class FwdKey(Packet):
    """Forwarding key (8 bytes): both ends of the output UDP tunnel."""

    name = "FwdKey"
    fields_desc = [
        IPField("dst_addr", "0.0.0.0"),
        ShortField("src_port", 0),
        ShortField("dst_port", 0),
    ]


bind_layers(FwdKey, IP)
