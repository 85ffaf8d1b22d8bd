/*
 * lc.p4: the SPP's line card, the node's front door. Every packet in or out
 * of the node, and between its NPEs and slice hosts, crosses it:
 *   ARP         -> answered for the LC's own addresses
 *   source guard-> slice hosts are policed to their quota's rates (bytes and
 *                  packets per port), may only use their own source address, nobody
 *                  else a slice host's, and an NPE's only that NPE; an NPE's
 *                  internal address is reachable only from slice hosts' ports
 *   NPE demux   -> meta-interface tunnel traffic goes to the hosting NPE,
 *                  policed per fastpath to its share of the NPE's packets
 *   NAT         -> allocated endpoints to/from the owning slice host
 *   route       -> everything else by destination, never back out the port
 *                  it came in on, or dropped and counted
 */
#include <core.p4>
#include <v1model.p4>

#include "include/define.p4"
#include "include/header.p4"
#include "include/lc_parser.p4"
#include "include/control/lc_arp.p4"
#include "include/control/lc_guard.p4"
#include "include/control/lc_demux.p4"
#include "include/control/lc_nat.p4"
#include "include/control/route.p4"

control LcIngress(inout lc_headers_t hdr, inout lc_metadata_t meta,
                  inout standard_metadata_t std_meta) {
    counter(LC_DROP_REASONS, CounterType.packets) drops;

    Arp() arp;
    SourceGuard() guard;
    NpeDemux() demux;
    Nat() nat;
    Route(LC_DROP_LOCAL, LC_DROP_NO_ROUTE) route;

    apply {
        meta.drop_reason = NO_DROP;
        meta.nat_addr = 0;
        // Every frame, ARP and non-IPv4 too: a slice host's port is policed
        // before anything else is done for it.
        guard.apply(hdr, meta, std_meta);
        if (meta.drop_reason != NO_DROP) {
        } else if (hdr.arp.isValid()) {
            arp.apply(hdr, meta, std_meta);
        } else if (!hdr.ipv4.isValid()) {
            meta.drop_reason = LC_DROP_NOT_IPV4;
        } else {
            bit<1> to_npe = 0;
            if (meta.drop_reason == NO_DROP) {
                demux.apply(hdr, meta, std_meta, to_npe);
            }
            if (meta.drop_reason == NO_DROP && to_npe == 0) {
                nat.apply(hdr, meta);
                route.apply(hdr.ipv4.dst_addr, hdr.ethernet, std_meta, meta.drop_reason);
                if (meta.drop_reason != NO_DROP) {
                } else if (std_meta.egress_spec == std_meta.ingress_port) {
                    // Never back out the port it came in on: the LC keeps
                    // the TTL, and both ends of a peering link route its
                    // subnet out the link, so a packet for an unused address
                    // there went back and forth for ever (review 20, R20-2).
                    meta.drop_reason = LC_DROP_NO_ROUTE;
                } else if (meta.stamp == 1) {
                    // To an NPE from a slice host: which port it came from.
                    hdr.ethernet.src_addr = LC_PORT_STAMP | (mac_addr_t)std_meta.ingress_port;
                }
            }
        }
        if (meta.drop_reason != NO_DROP) {
            drops.count((index_t)meta.drop_reason);
            mark_to_drop(std_meta);
        }
    }
}

control LcEgress(inout lc_headers_t hdr, inout lc_metadata_t meta,
                 inout standard_metadata_t std_meta) {
    apply { }
}

V1Switch(LcParser(), LcVerifyChecksum(), LcIngress(), LcEgress(),
         LcComputeChecksum(), LcDeparser()) main;
