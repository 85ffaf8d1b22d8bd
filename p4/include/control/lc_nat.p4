/*
 * Endpoint NAT (LC). alloc_endpoint gives a slice a public (address,
 * protocol, port) on an interface: arriving traffic for it is rewritten to
 * the slice host's (address, port) (endpoint_in), and the slice's replies
 * from that (address, port) are rewritten back (endpoint_out). Like a NAT's
 * port forwarding; TCP and UDP checksums are updated incrementally.
 */
#ifndef __SPP_LC_NAT__
#define __SPP_LC_NAT__

#include "../checksum.p4"

control Nat(inout lc_headers_t hdr, inout lc_metadata_t meta) {

    action rewrite(ipv4_addr_t addr, l4_port_t port) {
        meta.nat_addr = addr;
        meta.nat_port = port;
    }

    table endpoint_in {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.ipv4.protocol: exact @name("protocol");
            meta.nat_key_port: exact @name("dst_port");
        }
        actions = {
            rewrite;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_ENDPOINT_SIZE;
    }

    table endpoint_out {
        key = {
            hdr.ipv4.src_addr: exact @name("src_addr");
            hdr.ipv4.protocol: exact @name("protocol");
            meta.nat_key_port: exact @name("src_port");
        }
        actions = {
            rewrite;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_ENDPOINT_SIZE;
    }

    apply {
        l4_port_t src_port = 0;
        l4_port_t dst_port = 0;
        bit<16> csum = 0;
        if (hdr.udp.isValid()) {
            src_port = hdr.udp.src_port;
            dst_port = hdr.udp.dst_port;
            csum = hdr.udp.checksum;
        } else if (hdr.tcp.isValid()) {
            src_port = hdr.tcp.src_port;
            dst_port = hdr.tcp.dst_port;
            csum = hdr.tcp.checksum;
        } else {
            return;
        }

        meta.nat_addr = 0;
        meta.nat_key_port = dst_port;
        if (endpoint_in.apply().hit) {
            csum = csum16_replace_addr_port(csum, hdr.ipv4.dst_addr, dst_port,
                                            meta.nat_addr, meta.nat_port);
            hdr.ipv4.dst_addr = meta.nat_addr;
            dst_port = meta.nat_port;
        } else {
            meta.nat_key_port = src_port;
            if (endpoint_out.apply().hit) {
                csum = csum16_replace_addr_port(csum, hdr.ipv4.src_addr, src_port,
                                                meta.nat_addr, meta.nat_port);
                hdr.ipv4.src_addr = meta.nat_addr;
                src_port = meta.nat_port;
            } else {
                return;
            }
        }

        if (hdr.udp.isValid()) {
            hdr.udp.src_port = src_port;
            hdr.udp.dst_port = dst_port;
            // A zero UDP checksum means "none"; a computed zero is sent as ones.
            if (hdr.udp.checksum != 0) {
                hdr.udp.checksum = (csum == 0) ? 0xffff : csum;
            }
        } else {
            hdr.tcp.src_port = src_port;
            hdr.tcp.dst_port = dst_port;
            hdr.tcp.checksum = csum;
        }
    }
}

#endif
