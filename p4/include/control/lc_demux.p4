/*
 * Demux to the NPEs (LC): tunnel packets addressed to a meta-interface
 * endpoint (interface address, UDP port) go, unchanged, to the NPE that
 * hosts the fastpath.
 *
 * Policing before the expensive work: each entry names the packet meter of
 * its fastpath (`police`), set by the controller to the fastpath's share of
 * its NPE's packet budget. A fastpath's excess inbound packets are dropped
 * here (`policed`), at the cost of one lookup, before the NPE spends its
 * pipeline on them, so one slice's flood cannot use up the packets per
 * second the NPE has for the others' reserved traffic.
 */
#ifndef __SPP_LC_DEMUX__
#define __SPP_LC_DEMUX__

control NpeDemux(inout lc_headers_t hdr, inout lc_metadata_t meta,
                 inout standard_metadata_t std_meta, out bit<1> hit) {
    meter(LC_POLICE_SIZE, MeterType.packets) police_rate;

    action to_npe(port_num_t port, mac_addr_t src_mac, mac_addr_t dst_mac, bit<16> police) {
        std_meta.egress_spec = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        meta.police = police;
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
            bit<2> color;
            police_rate.execute_meter((index_t)meta.police, color);
            if (color == V1MODEL_METER_COLOR_RED) {
                meta.drop_reason = LC_DROP_POLICED;
            }
        }
    }
}

#endif
