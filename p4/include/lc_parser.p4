/*
 * Line-card parser and deparser: Ethernet, ARP, IPv4 and the TCP/UDP ports
 * the tunnel demux and the NAT look at.
 */
#ifndef __SPP_LC_PARSER__
#define __SPP_LC_PARSER__

#include "header.p4"

parser LcParser(packet_in pkt, out lc_headers_t hdr, inout lc_metadata_t meta,
                inout standard_metadata_t std_meta) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_ARP: parse_arp;
            default: accept;
        }
    }

    state parse_arp {
        pkt.extract(hdr.arp);
        transition accept;
    }

    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        // Ports only in first fragments without options: NAT rewrites the
        // header checksum from scratch and needs no options for that.
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (5, 0, PROTO_UDP): parse_udp;
            (5, 0, PROTO_TCP): parse_tcp;
            default: accept;
        }
    }

    state parse_udp {
        pkt.extract(hdr.udp);
        transition accept;
    }

    state parse_tcp {
        pkt.extract(hdr.tcp);
        transition accept;
    }
}

control LcDeparser(packet_out pkt, in lc_headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.arp);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.tcp);
        pkt.emit(hdr.udp);
    }
}

control LcVerifyChecksum(inout lc_headers_t hdr, inout lc_metadata_t meta) {
    apply { }
}

control LcComputeChecksum(inout lc_headers_t hdr, inout lc_metadata_t meta) {
    apply {
        // Only headers the NAT rewrote (never with options, see the parser).
        update_checksum(hdr.ipv4.isValid() && meta.nat_addr != 0,
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp_ecn, hdr.ipv4.total_len,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr },
            hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
    }
}

#endif
