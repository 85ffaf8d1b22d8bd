/*
 * Source guard (LC): the node's internal addresses are reachable and usable
 * only from where they belong.
 *
 *   - A port that leads to a slice host accepts only that host's address as
 *     source (slice_port): one slice must not pass for another.
 *   - On any other port, an internal source address (a slice host's, an
 *     NPE's) is accepted only on the port that owns it (src_owner): a slice
 *     host's address from an interface, a peering link or an NPE is spoofed,
 *     and so is an NPE's address from anywhere but that NPE's own port. An
 *     NPE's address is the source of its exceptions and local deliveries to
 *     slice hosts, which the slices' slow paths trust as their fastpath's.
 *   - An NPE's internal address (where slices send their packets back to
 *     their fastpaths) is reachable only from slice hosts' ports (npe_addr);
 *     from anywhere else the packet is dropped (`internal`). Frames for it
 *     that pass are stamped with their slice port (LC_PORT_STAMP), which the
 *     NPE checks against the port it expects for the slice's return tunnel.
 *
 * A packet looks up src_owner only when slice_port misses, so the guard
 * costs at most the three lookups it always did.
 *
 * A slice host is root in its own namespace and can send anything down its
 * link, not only through its fastpaths: everything from its port is policed
 * here, first, by two meters of that port (host_bytes: the share of the
 * links it may take; host_packets: what it may cost the switches, the NPE
 * included), set from the slice's quota (host_kbps, host_pps). Over either,
 * the packet is dropped and counted (`host_rate`) before any other lookup.
 * The meters run in slice_port's action: no lookup of their own. The guard
 * sees every frame, ARP and non-IPv4 ones too (they cost the LC as much as
 * any other: unpoliced, a slice host's flood of them took the LC's packets
 * from everyone); the address checks are for IPv4 packets.
 *
 * The NPE keys a slice's return tunnel on the slice host's address and the
 * NAT keys endpoints on it: together these make the return path the slice's
 * own host's, on its own port, and nobody else's.
 */
#ifndef __SPP_LC_GUARD__
#define __SPP_LC_GUARD__

control SourceGuard(in lc_headers_t hdr, inout lc_metadata_t meta,
                    in standard_metadata_t std_meta) {

    port_num_t owner = 0;
    bit<2> host_bytes_color = V1MODEL_METER_COLOR_GREEN;
    bit<2> host_packets_color = V1MODEL_METER_COLOR_GREEN;

    // Indexed by the slice host's port (a port_num_t: every cell a port's).
    meter(LC_PORT_SIZE, MeterType.bytes) host_bytes;
    meter(LC_PORT_SIZE, MeterType.packets) host_packets;

    action slice_host(ipv4_addr_t addr) {
        meta.guard_addr = addr;
        host_bytes.execute_meter((index_t)std_meta.ingress_port, host_bytes_color);
        host_packets.execute_meter((index_t)std_meta.ingress_port, host_packets_color);
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

    // The one port an internal source address may arrive on.
    action owned_by(port_num_t port) {
        owner = port;
    }
    action npe_internal() { }

    // Entries: every slice host's address (its port), every NPE's (its port).
    table src_owner {
        key = {
            hdr.ipv4.src_addr: exact @name("src_addr");
        }
        actions = {
            owned_by;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_OWNER_SIZE;
    }

    table npe_addr {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
        }
        actions = {
            npe_internal;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = LC_NPE_SIZE;
    }

    apply {
        meta.stamp = 0;
        bit<1> from_slice_host = 0;
        if (slice_port.apply().hit) {
            from_slice_host = 1;
            if (host_bytes_color == V1MODEL_METER_COLOR_RED
                    || host_packets_color == V1MODEL_METER_COLOR_RED) {
                meta.drop_reason = LC_DROP_HOST_RATE;
            } else if (hdr.ipv4.isValid() && hdr.ipv4.src_addr != meta.guard_addr) {
                meta.drop_reason = LC_DROP_SPOOFED;
            }
        } else if (!hdr.ipv4.isValid()) {
            return;
        } else if (src_owner.apply().hit) {
            if (std_meta.ingress_port != owner) {
                meta.drop_reason = LC_DROP_SPOOFED;
            }
        }
        if (meta.drop_reason == NO_DROP && hdr.ipv4.isValid() && npe_addr.apply().hit) {
            if (from_slice_host == 1) {
                meta.stamp = 1;
            } else {
                meta.drop_reason = LC_DROP_INTERNAL;
            }
        }
    }
}

#endif
