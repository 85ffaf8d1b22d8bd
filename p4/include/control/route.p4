/*
 * Route: longest-prefix match on the (outer) IPv4 destination, giving the
 * egress port and the MACs of the hop. Shared by the NPE and the LC; both
 * only ever talk to directly attached neighbours, so no ARP cache is needed.
 * Each program passes its own drop codes: an address of the switch itself
 * (nothing here answers it) and no route at all. The codes are set by the
 * table's actions, so a routed packet walks one table and no more.
 */
#ifndef __SPP_ROUTE__
#define __SPP_ROUTE__

control Route(in ipv4_addr_t dst_addr, inout ethernet_t ethernet,
              inout standard_metadata_t std_meta, inout drop_reason_t drop_reason)
             (drop_reason_t local_reason, drop_reason_t no_route_reason) {

    action forward(port_num_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        std_meta.egress_spec = port;
        ethernet.src_addr = src_mac;
        ethernet.dst_addr = dst_mac;
    }

    action local_addr() {
        drop_reason = local_reason;
    }

    action no_route() {
        drop_reason = no_route_reason;
    }

    table route {
        key = {
            dst_addr: lpm @name("dst_addr");
        }
        actions = {
            forward;
            local_addr;
            @defaultonly no_route;
        }
        const default_action = no_route();
        size = ROUTE_SIZE;
    }

    apply {
        route.apply();
    }
}

#endif
