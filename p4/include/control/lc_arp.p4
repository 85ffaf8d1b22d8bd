/*
 * ARP responder (LC): answers requests for the addresses the LC owns (its
 * interface addresses, and the gateway address it is to slice hosts), so
 * that end hosts and slice hosts work with unmodified network stacks.
 */
#ifndef __SPP_LC_ARP__
#define __SPP_LC_ARP__

control Arp(inout lc_headers_t hdr, inout lc_metadata_t meta,
            inout standard_metadata_t std_meta) {

    action reply(mac_addr_t mac) {
        ipv4_addr_t asked = hdr.arp.target_ip;
        hdr.ethernet.dst_addr = hdr.ethernet.src_addr;
        hdr.ethernet.src_addr = mac;
        hdr.arp.oper = ARP_REPLY;
        hdr.arp.target_mac = hdr.arp.sender_mac;
        hdr.arp.target_ip = hdr.arp.sender_ip;
        hdr.arp.sender_mac = mac;
        hdr.arp.sender_ip = asked;
        std_meta.egress_spec = std_meta.ingress_port;
    }

    table arp {
        key = {
            hdr.arp.target_ip: exact @name("target_ip");
        }
        actions = {
            reply;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_ARP_SIZE;
    }

    apply {
        if (hdr.arp.oper != ARP_REQUEST || !arp.apply().hit) {
            meta.drop_reason = LC_DROP_ARP;
        }
    }
}

#endif
