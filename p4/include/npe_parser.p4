/*
 * NPE parser and deparser.
 *
 * Two kinds of packets reach an NPE, both inside outer Ethernet/IPv4/UDP:
 *   - from a meta-interface: the UDP payload is the overlay IPv4 datagram;
 *   - from a slice: meta-net header, forwarding key, then the datagram.
 * The first payload byte tells them apart (METANET_MAGIC vs IPv4 version 4);
 * ingress then checks the kind against the tunnel table, so a packet from
 * outside can never pass as one from the slice.
 */
#ifndef __SPP_NPE_PARSER__
#define __SPP_NPE_PARSER__

#include "header.p4"

parser NpeParser(packet_in pkt, out npe_headers_t hdr, inout npe_metadata_t meta,
                 inout standard_metadata_t std_meta) {
    // The states are few on purpose: BMv2 logs every state it enters and
    // formats every select key as hex for its log, even with logging off,
    // per packet. A forwarded datagram takes three states and two selects.
    state start {
        pkt.extract(hdr.ethernet);
        // Every frame is extracted as IPv4 at once, to decide in one select:
        // a frame that is not a tunnel packet (not IPv4/UDP, or outer
        // options or fragments, which tunnels never carry) stops here, and
        // ingress drops it (not_tunnel) without looking at the rest.
        pkt.extract(hdr.ipv4);
        transition select(hdr.ethernet.ether_type, hdr.ipv4.ihl, hdr.ipv4.flags,
                          hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (ETHERTYPE_IPV4, 5, 0 &&& 1, 0, PROTO_UDP): parse_udp;   // flags: MF
            default: accept;
        }
    }

    // The first ten payload bytes tell a meta-net header (magic) from an
    // IPv4 datagram; the common datagram (no options, first fragment, TCP
    // or UDP) is decided in the same select.
    state parse_udp {
        pkt.extract(hdr.udp);
        meta.endpoint = hdr.ipv4.dst_addr ++ hdr.udp.dst_port;     // the tunnel's key
        transition select(pkt.lookahead<bit<80>>()) {
            METANET_MAGIC ++ 72w0 &&& 8w0xff ++ 72w0: parse_metanet;
            // version 4, IHL 5 | ... | fragment offset 0 | TTL | TCP, UDP
            8w0x45 ++ 40w0 ++ 16w0 ++ 8w0 ++ PROTO_TCP
                &&& 8w0xff ++ 40w0 ++ 16w0x1fff ++ 8w0 ++ 8w0xff: parse_inner_plain;
            8w0x45 ++ 40w0 ++ 16w0 ++ 8w0 ++ PROTO_UDP
                &&& 8w0xff ++ 40w0 ++ 16w0x1fff ++ 8w0 ++ 8w0xff: parse_inner_plain;
            8w0x40 ++ 72w0 &&& 8w0xf0 ++ 72w0: parse_inner_ipv4;
            default: accept;
        }
    }

    // A datagram without options, first fragment, TCP or UDP: its filter key
    // in one parser operation (Tunnel adds fastpath, type and meta-interface,
    // or puts a slice's forwarding key in its place).
    state parse_inner_plain {
        pkt.extract(hdr.inner_ipv4);
        pkt.extract(hdr.inner_l4);
        meta.key = 33w0 ++ hdr.inner_ipv4.dst_addr ++ hdr.inner_ipv4.src_addr
                   ++ hdr.inner_ipv4.protocol ++ hdr.inner_l4.src_port ++ hdr.inner_l4.dst_port;
        transition accept;
    }

    state parse_metanet {
        pkt.extract(hdr.metanet);
        transition select(hdr.metanet.kind) {
            METANET_FROM_SLICE: parse_fwd_key;
            default: accept;
        }
    }

    state parse_fwd_key {
        pkt.extract(hdr.fwd_key);
        transition select(pkt.lookahead<bit<4>>()) {
            4: parse_inner_ipv4;
            default: accept;
        }
    }

    // Any other datagram (and every one from the slice).
    state parse_inner_ipv4 {
        pkt.extract(hdr.inner_ipv4);
        meta.key = 33w0 ++ hdr.inner_ipv4.dst_addr ++ hdr.inner_ipv4.src_addr
                   ++ hdr.inner_ipv4.protocol ++ 32w0;
        transition select(hdr.inner_ipv4.ihl) {
            0 &&& 0xc: accept;      // 0..3: malformed, ingress flags it
            4: accept;
            5: parse_inner_l4;
            default: parse_inner_options;
        }
    }

    state parse_inner_options {
        pkt.extract(hdr.inner_options, ((bit<32>)hdr.inner_ipv4.ihl - 5) * 32);
        transition parse_inner_l4;
    }

    state parse_inner_l4 {
        // Ports exist only in the first fragment of a TCP or UDP datagram.
        transition select(hdr.inner_ipv4.frag_offset, hdr.inner_ipv4.protocol) {
            (0, PROTO_TCP): parse_inner_ports;
            (0, PROTO_UDP): parse_inner_ports;
            default: accept;
        }
    }

    state parse_inner_ports {
        pkt.extract(hdr.inner_l4);
        meta.key[31:0] = hdr.inner_l4.src_port ++ hdr.inner_l4.dst_port;
        transition accept;
    }
}

control NpeDeparser(packet_out pkt, in npe_headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.udp);
        pkt.emit(hdr.metanet_out);
        pkt.emit(hdr.metanet);
        pkt.emit(hdr.fwd_key);
        pkt.emit(hdr.inner_ipv4);
        pkt.emit(hdr.inner_options);
        pkt.emit(hdr.inner_l4);
    }
}

// The inner header checksum is verified (malformed datagrams go to the
// exception path); options are part of the sum.
control NpeVerifyChecksum(inout npe_headers_t hdr, inout npe_metadata_t meta) {
    apply {
        verify_checksum(hdr.inner_ipv4.isValid() && hdr.inner_ipv4.ihl >= 5,
            { hdr.inner_ipv4.version, hdr.inner_ipv4.ihl, hdr.inner_ipv4.dscp_ecn,
              hdr.inner_ipv4.total_len, hdr.inner_ipv4.identification,
              hdr.inner_ipv4.flags, hdr.inner_ipv4.frag_offset, hdr.inner_ipv4.ttl,
              hdr.inner_ipv4.protocol, hdr.inner_ipv4.src_addr, hdr.inner_ipv4.dst_addr,
              hdr.inner_options.options },
            hdr.inner_ipv4.hdr_checksum, HashAlgorithm.csum16);
    }
}

// Only the outer header is rebuilt here: the switch writes all of it. The
// inner one is updated incrementally by the IPv4 code option.
control NpeComputeChecksum(inout npe_headers_t hdr, inout npe_metadata_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp_ecn, hdr.ipv4.total_len,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr },
            hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
    }
}

#endif
