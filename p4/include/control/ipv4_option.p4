/*
 * The IPv4 code option (NPE): what makes a fastpath an IPv4 meta-router.
 * Other code options would replace this file and the filter key.
 *
 * Ipv4Validate decides whether the inner datagram may be looked up at all;
 * Ipv4Forward does the per-hop treatment of a datagram being forwarded.
 */
#ifndef __SPP_IPV4_OPTION__
#define __SPP_IPV4_OPTION__

#include "../checksum.p4"

control Ipv4Validate(in npe_headers_t hdr, inout npe_metadata_t meta,
                     in standard_metadata_t std_meta) {
    apply {
        // Not IPv4, truncated, bad header length or checksum, or a total
        // length the tunnel does not carry: RFC 1812 5.2.2.
        meta.malformed = 0;
        if (!hdr.inner_ipv4.isValid()
                || std_meta.parser_error != error.NoError
                || std_meta.checksum_error == 1
                || hdr.inner_ipv4.ihl < 5
                || hdr.inner_ipv4.total_len < ((bit<16>)hdr.inner_ipv4.ihl) * 4) {
            meta.malformed = 1;
        } else {
            // Bytes of UDP payload left for the datagram.
            bit<16> room = hdr.udp.len - 8;
            if (hdr.metanet.isValid()) {
                room = room - 16;
            }
            if (hdr.fwd_key.isValid()) {
                room = room - 8;
            }
            if (hdr.inner_ipv4.total_len > room) {
                meta.malformed = 1;
            }
        }
    }
}

control Ipv4Forward(inout npe_headers_t hdr, inout npe_metadata_t meta) {
    apply {
        if (hdr.inner_ipv4.ttl <= 1) {
            meta.reason = REASON_TTL_EXPIRED;
        } else {
            bit<8> ttl = hdr.inner_ipv4.ttl - 1;
            hdr.inner_ipv4.hdr_checksum = csum16_replace16(hdr.inner_ipv4.hdr_checksum,
                hdr.inner_ipv4.ttl ++ hdr.inner_ipv4.protocol,
                ttl ++ hdr.inner_ipv4.protocol);
            hdr.inner_ipv4.ttl = ttl;
        }
    }
}

#endif
