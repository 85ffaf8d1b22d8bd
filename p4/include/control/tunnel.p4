/*
 * Meta-interface decapsulation (NPE): which fastpath and meta-interface does
 * this tunnel packet belong to?
 *
 * Key: outer destination address and UDP port (the meta-interface's
 * endpoint), plus the outer source address when the destination is a peering
 * interface (or the NPE's own address, where slices send their packets back):
 * on those, only the known peer may use the tunnel. The phys_if table says
 * which addresses are such; a miss means non-peering, and the peer key is 0.
 *
 * A slice's return tunnel is keyed on the slice host's address, and besides
 * it must come from the slice host's own LC port: the LC stamps that port
 * into the source MAC (LC_PORT_STAMP, define.p4) and drops anything for the
 * NPE's address that does not come from a slice host's port, so neither an
 * end host, nor a peer node, nor another slice can use it.
 */
#ifndef __SPP_TUNNEL__
#define __SPP_TUNNEL__

control Tunnel(inout npe_headers_t hdr, inout npe_metadata_t meta) {

    action peering() {
        meta.peer_key = hdr.ipv4.src_addr;
    }

    table phys_if {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
        }
        actions = {
            peering;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_PHYS_IF_SIZE;
    }

    // A packet arriving on a meta-interface of a fastpath.
    action from_meta_if(fastpath_id_t fastpath, meta_if_t meta_if) {
        meta.from_slice = 0;
        meta.fastpath = fastpath;
        meta.meta_if = meta_if;
    }

    // A packet the slice sends back to its fastpath (meta-net + forwarding key),
    // stamped by the LC with the slice host's port.
    action from_slice(fastpath_id_t fastpath, mac_addr_t lc_stamp) {
        meta.from_slice = 1;
        meta.fastpath = fastpath;
        meta.meta_if = 0;
        meta.slice_stamp = lc_stamp;
    }

    table tunnel {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.udp.dst_port:  exact @name("dst_port");
            meta.peer_key:     exact @name("peer_addr");
        }
        actions = {
            from_meta_if;
            from_slice;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_TUNNEL_SIZE;
    }

    apply {
        meta.peer_key = 0;
        phys_if.apply();
        if (!tunnel.apply().hit) {
            meta.drop_reason = NPE_DROP_UNKNOWN_TUNNEL;
        } else if (meta.from_slice == 1 && hdr.ethernet.src_addr != meta.slice_stamp) {
            meta.drop_reason = NPE_DROP_NOT_SLICE_PORT;
        }
    }
}

#endif
