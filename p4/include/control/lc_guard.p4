/*
 * Source guard (LC): a port that leads to a slice host accepts only that
 * host's address as source. The NPE trusts the source address of packets a
 * slice sends back (it keys the slice's return tunnel on it), and the NAT
 * keys endpoints on it: one slice must not be able to pass for another.
 */
#ifndef __SPP_LC_GUARD__
#define __SPP_LC_GUARD__

control SourceGuard(in lc_headers_t hdr, inout lc_metadata_t meta,
                    in standard_metadata_t std_meta) {

    action slice_host(ipv4_addr_t addr) {
        meta.guard_addr = addr;
    }

    table slice_port {
        key = {
            std_meta.ingress_port: exact @name("port");
        }
        actions = {
            slice_host;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_PORT_SIZE;
    }

    apply {
        if (slice_port.apply().hit && hdr.ipv4.src_addr != meta.guard_addr) {
            meta.drop_reason = LC_DROP_SPOOFED;
        }
    }
}

#endif
