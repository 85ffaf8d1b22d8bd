/*
 * General-match filters (NPE): the meta-router's forwarding table.
 *
 * One ternary table for all fastpaths; the fastpath id is an exact field, so
 * two fastpaths' filters never compete even when their keys are identical.
 * Within a fastpath, the controller sets the P4Runtime priority from the
 * filter ID (lower ID, higher priority), the SPP's precedence rule.
 *
 * Lookup type 0 (meta-interface) keys on the inner datagram. Lookup type 1
 * (substrate-only) keys on the forwarding key the slice attached: its
 * destination address and ports fill the dst_addr/src_port/dst_port fields;
 * meta_if, src_addr and protocol are 0. The meta-net fields are not used.
 * The parser and Tunnel fill the key; the lookup type is meta.from_slice.
 * The six ternary fields are one word (filter_key_t, define.p4).
 *
 * The actions do the work that follows from the result, so that BMv2 walks
 * no further table for it: the global stats and queue indices (checked
 * against the partition by StatsIngress and Encap) and, when forwarding,
 * the IPv4 code option's TTL and checksum.
 */
#ifndef __SPP_FILTER__
#define __SPP_FILTER__

#include "ipv4_option.p4"

control Filter(inout npe_headers_t hdr, inout npe_metadata_t meta) {

    action forward(meta_if_t meta_if, ipv4_addr_t nh_addr, l4_port_t nh_port,
                   bit<16> queue, bit<16> stats) {
        meta.result = RESULT_FORWARD;
        meta.out_meta_if = meta_if;
        meta.nh_addr = nh_addr;
        meta.nh_port = nh_port;
        meta.queue_id = queue;
        meta.queue_global = meta.queue_base + (index_t)queue;
        meta.stats_index = stats;
        meta.stats_global = meta.stats_base + (index_t)stats;
        IPV4_FORWARD(hdr.inner_ipv4, meta.reason, sum);
    }

    action local(bit<16> stats) {
        meta.result = RESULT_LOCAL;
        meta.stats_index = stats;
        meta.stats_global = meta.stats_base + (index_t)stats;
    }

    // Counted (StatsIngress) before it goes.
    action discard(bit<16> stats) {
        meta.result = RESULT_DROP;
        meta.stats_index = stats;
        meta.stats_global = meta.stats_base + (index_t)stats;
        meta.drop_reason = NPE_DROP_FILTER;
    }

    // No filter: an exception for the slice; from the slice itself, dropped.
    action miss() {
        meta.reason = meta.from_slice == 1 ? REASON_NONE : REASON_NO_FILTER;
        meta.drop_reason = meta.from_slice == 1 ? NPE_DROP_NO_SUBSTRATE_FILTER : NO_DROP;
    }

    table filter {
        key = {
            meta.fastpath:     exact   @name("fastpath");
            meta.from_slice:   exact   @name("type");
            meta.key:          ternary @name("key");   // filter_key_t
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
