/*
 * Route: longest-prefix match on the (outer) IPv4 destination, giving the
 * egress port and the MACs of the hop. Shared by the NPE and the LC; both
 * only ever talk to directly attached neighbours, so no ARP cache is needed.
 */
#ifndef __SPP_ROUTE__
#define __SPP_ROUTE__

control Route(in ipv4_addr_t dst_addr, inout ethernet_t ethernet,
              inout standard_metadata_t std_meta, out bit<1> local, out bit<1> hit) {

    action forward(port_num_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        std_meta.egress_spec = port;
        ethernet.src_addr = src_mac;
        ethernet.dst_addr = dst_mac;
    }

    // An address of the switch itself: nothing here answers it.
    action local_addr() {
        local = 1;
    }

    table route {
        key = {
            dst_addr: lpm @name("dst_addr");
        }
        actions = {
            forward;
            local_addr;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = ROUTE_SIZE;
    }

    apply {
        local = 0;
        hit = 0;
        if (route.apply().hit) {
            hit = 1;
        }
    }
}

#endif
