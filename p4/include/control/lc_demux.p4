/*
 * Demux to the NPEs (LC): tunnel packets addressed to a meta-interface
 * endpoint (interface address, UDP port) go, unchanged, to the NPE that
 * hosts the fastpath.
 */
#ifndef __SPP_LC_DEMUX__
#define __SPP_LC_DEMUX__

control NpeDemux(inout lc_headers_t hdr, inout standard_metadata_t std_meta,
                 out bit<1> hit) {

    action to_npe(port_num_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        std_meta.egress_spec = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
    }

    table meta_if {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.udp.dst_port:  exact @name("dst_port");
        }
        actions = {
            to_npe;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_TUNNEL_SIZE;
    }

    apply {
        hit = 0;
        if (hdr.udp.isValid() && meta_if.apply().hit) {
            hit = 1;
        }
    }
}

#endif
