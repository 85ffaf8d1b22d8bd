/*
 * General-match filters (NPE): the meta-router's forwarding table.
 *
 * One ternary table for all fastpaths; the fastpath id is part of the key
 * (always matched exactly), so two fastpaths' filters never compete even when
 * their keys are identical. Within a fastpath, the controller sets the
 * P4Runtime priority from the filter ID (lower ID, higher priority), the
 * SPP's precedence rule.
 *
 * Lookup type 0 (meta-interface) keys on the inner datagram. Lookup type 1
 * (substrate-only) keys on the forwarding key the slice attached: its
 * destination address and ports fill the dst_addr/src_port/dst_port fields;
 * meta_if, src_addr and protocol are 0. The meta-net fields are not used.
 * The parser and Tunnel fill the key: fastpath, type (meta.from_slice) and
 * the six SPP fields are one word (filter_key_t, define.p4).
 *
 * The actions do the work that follows from the result, so that BMv2 walks
 * no further table for it: the global stats and queue indices and their
 * check against the partition (an index outside it: drop_reason bad_stats
 * or bad_queue, one expression each instead of a condition) and, when forwarding,
 * the IPv4 code option's TTL and checksum, and the outer header of the
 * output meta-interface's tunnel. That header (the meta-interface's
 * endpoint, and its peer for a peering interface) is in the filter's entry:
 * the controller copies it there, as a meta-interface never changes and is
 * not freed while a filter forwards to it (controller/rmp.py), so the packet
 * walks no meta-interface table.
 */
#ifndef __SPP_FILTER__
#define __SPP_FILTER__

#include "ipv4_option.p4"

// A filter's (local) stats index outside its fastpath's partition (a
// fastpath without stats has none and uses none). A bool expression.
#define STATS_OUTSIDE(meta, stats) \
    ((meta).stats_count != 0 && (index_t)(stats) >= (meta).stats_count)

control Filter(inout npe_headers_t hdr, inout npe_metadata_t meta) {

    // To the output meta-interface: from its endpoint (src_addr, src_port)
    // to the next hop (a peering interface's: always its peer), through
    // queue `queue`; Encap meters it. The outer header is written here, but
    // for its source when the TTL expires: the exception's meta-net header
    // records where the datagram came from (Encap, to_slice).
    action forward(ipv4_addr_t src_addr, l4_port_t src_port, ipv4_addr_t nh_addr,
                   l4_port_t nh_port, bit<16> queue, bit<16> stats) {
        meta.result = RESULT_FORWARD;
        meta.queue_global = meta.queue_base + (index_t)queue;
        meta.stats_global = meta.stats_base + (index_t)stats;
        hdr.ipv4.src_addr = hdr.inner_ipv4.ttl <= 1 ? hdr.ipv4.src_addr : src_addr;
        hdr.udp.src_port = hdr.inner_ipv4.ttl <= 1 ? hdr.udp.src_port : src_port;
        hdr.ipv4.dst_addr = nh_addr;
        hdr.udp.dst_port = nh_port;
        hdr.ipv4.ttl = DEFAULT_TTL;
        hdr.udp.checksum = 0;
        IPV4_FORWARD(hdr.inner_ipv4, meta.reason, sum);
        // Bad stats wins over a bad queue; a datagram whose TTL expires is
        // not queued, so its queue index is not checked (p4c would split a
        // nested ?: into temporaries, a primitive each: two assignments).
        meta.drop_reason = meta.reason == REASON_NONE && (index_t)queue >= meta.queue_count
                           ? NPE_DROP_BAD_QUEUE : NO_DROP;
        meta.drop_reason = STATS_OUTSIDE(meta, stats) ? NPE_DROP_BAD_STATS : meta.drop_reason;
    }

    action local(bit<16> stats) {
        meta.result = RESULT_LOCAL;
        meta.stats_global = meta.stats_base + (index_t)stats;
        meta.drop_reason = STATS_OUTSIDE(meta, stats) ? NPE_DROP_BAD_STATS : NO_DROP;
    }

    // Counted (StatsIngress) before it goes.
    action discard(bit<16> stats) {
        meta.result = RESULT_DROP;
        meta.stats_global = meta.stats_base + (index_t)stats;
        meta.drop_reason = STATS_OUTSIDE(meta, stats) ? NPE_DROP_BAD_STATS : NPE_DROP_FILTER;
    }

    // No filter: an exception for the slice; from the slice itself, dropped.
    action miss() {
        meta.reason = meta.from_slice == 1 ? REASON_NONE : REASON_NO_FILTER;
        meta.drop_reason = meta.from_slice == 1 ? NPE_DROP_NO_SUBSTRATE_FILTER : NO_DROP;
    }

    table filter {
        key = {
            meta.key: ternary @name("key");    // filter_key_t
        }
        actions = {
            forward;
            local;
            discard;
            @defaultonly miss;
        }
        const default_action = miss();
        size = NPE_FILTER_SIZE;
    }

    apply {
        filter.apply();
    }
}

#endif
