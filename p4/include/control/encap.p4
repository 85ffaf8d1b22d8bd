/*
 * Encapsulation (NPE): rebuild the outer IPv4/UDP header of a packet leaving
 * the fastpath, either into the output meta-interface's tunnel or into the
 * internal tunnel to the slice (local delivery and exception traffic).
 */
#ifndef __SPP_ENCAP__
#define __SPP_ENCAP__

// Remove the meta-net header and forwarding key a slice put in front of its
// datagram, keeping the outer lengths right.
void strip_slice_headers(inout npe_headers_t hdr) {
    if (hdr.fwd_key.isValid()) {
        hdr.fwd_key.setInvalid();
        hdr.udp.len = hdr.udp.len - 8;
        hdr.ipv4.total_len = hdr.ipv4.total_len - 8;
    }
    if (hdr.metanet.isValid()) {
        hdr.metanet.setInvalid();
        hdr.udp.len = hdr.udp.len - 16;
        hdr.ipv4.total_len = hdr.ipv4.total_len - 16;
    }
}

control MetaIfEncap(inout npe_headers_t hdr, inout npe_metadata_t meta) {

    // Outer header of the output tunnel: from the meta-interface's own
    // endpoint to the next hop the filter named.
    action encap(ipv4_addr_t src_addr, l4_port_t src_port) {
        hdr.ipv4.src_addr = src_addr;
        hdr.ipv4.dst_addr = meta.nh_addr;
        hdr.ipv4.ttl = DEFAULT_TTL;
        hdr.udp.src_port = src_port;
        hdr.udp.dst_port = meta.nh_port;
        hdr.udp.checksum = 0;
    }

    // A peering interface always sends to its peer, whatever the filter said.
    action encap_peering(ipv4_addr_t src_addr, l4_port_t src_port, ipv4_addr_t peer_addr) {
        encap(src_addr, src_port);
        hdr.ipv4.dst_addr = peer_addr;
    }

    table meta_if {
        key = {
            meta.fastpath:    exact @name("fastpath");
            meta.out_meta_if: exact @name("meta_if");
        }
        actions = {
            encap;
            encap_peering;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_META_IF_SIZE;
    }

    apply {
        if (!meta_if.apply().hit) {
            meta.drop_reason = NPE_DROP_NO_META_IF;
        } else {
            // A packet from the slice loses its meta-net header and key.
            strip_slice_headers(hdr);
        }
    }
}

control SliceEncap(inout npe_headers_t hdr, inout npe_metadata_t meta) {

    // Internal tunnel from the NPE to one of the slice's endpoints.
    action to_slice(ipv4_addr_t dst_addr, l4_port_t dst_port,
                    ipv4_addr_t src_addr, l4_port_t src_port) {
        hdr.ipv4.src_addr = src_addr;
        hdr.ipv4.dst_addr = dst_addr;
        hdr.ipv4.ttl = DEFAULT_TTL;
        hdr.udp.src_port = src_port;
        hdr.udp.dst_port = dst_port;
        hdr.udp.checksum = 0;
    }

    table slice_endpoint {
        key = {
            meta.fastpath:     exact @name("fastpath");
            meta.metanet_kind: exact @name("kind");
        }
        actions = {
            to_slice;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_ENDPOINT_SIZE;
    }

    apply {
        meta.metanet_kind = METANET_LOCAL_DELIVERY;
        if (meta.reason != REASON_NONE) {
            meta.metanet_kind = METANET_EXCEPTION;
        }
        // The meta-net header records where the datagram came from: read
        // the outer header before to_slice rewrites it.
        ipv4_addr_t tunnel_src_addr = hdr.ipv4.src_addr;
        l4_port_t tunnel_src_port = hdr.udp.src_port;
        if (!slice_endpoint.apply().hit) {
            meta.drop_reason = NPE_DROP_NO_ENDPOINT;
        } else {
            // The slice's own meta-net header and key are replaced; one that
            // arrived on a meta-interface is part of the (malformed) datagram.
            if (meta.from_slice == 1) {
                strip_slice_headers(hdr);
            }
            hdr.metanet_out.setValid();
            hdr.metanet_out.magic = METANET_MAGIC;
            hdr.metanet_out.kind = meta.metanet_kind;
            hdr.metanet_out.reason = meta.reason;
            hdr.metanet_out.reserved = 0;
            hdr.metanet_out.fastpath = meta.local_fastpath;
            hdr.metanet_out.meta_if = meta.meta_if;
            hdr.metanet_out.tunnel_src_addr = tunnel_src_addr;
            hdr.metanet_out.tunnel_src_port = tunnel_src_port;
            hdr.metanet_out.reserved2 = 0;
            hdr.udp.len = hdr.udp.len + 16;
            hdr.ipv4.total_len = hdr.ipv4.total_len + 16;
        }
    }
}

#endif
