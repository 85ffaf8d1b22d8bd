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
 */
#ifndef __SPP_FILTER__
#define __SPP_FILTER__

control Filter(in npe_headers_t hdr, inout npe_metadata_t meta) {

    action forward(meta_if_t meta_if, ipv4_addr_t nh_addr, l4_port_t nh_port,
                   bit<16> queue, bit<16> stats) {
        meta.result = RESULT_FORWARD;
        meta.out_meta_if = meta_if;
        meta.nh_addr = nh_addr;
        meta.nh_port = nh_port;
        meta.queue_id = queue;
        meta.stats_index = stats;
    }

    action local(bit<16> stats) {
        meta.result = RESULT_LOCAL;
        meta.stats_index = stats;
    }

    action discard(bit<16> stats) {
        meta.result = RESULT_DROP;
        meta.stats_index = stats;
    }

    table filter {
        key = {
            meta.fastpath:     exact   @name("fastpath");
            meta.lookup_type:  exact   @name("type");
            meta.meta_if:      ternary @name("meta_if");
            meta.key_dst_addr: ternary @name("dst_addr");
            meta.key_src_addr: ternary @name("src_addr");
            meta.key_protocol: ternary @name("protocol");
            meta.key_src_port: ternary @name("src_port");
            meta.key_dst_port: ternary @name("dst_port");
        }
        actions = {
            forward;
            local;
            discard;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_FILTER_SIZE;
    }

    apply {
        if (meta.from_slice == 1) {
            meta.lookup_type = LOOKUP_SUBSTRATE;
            meta.key_dst_addr = hdr.fwd_key.dst_addr;
            meta.key_src_addr = 0;
            meta.key_protocol = 0;
            meta.key_src_port = hdr.fwd_key.src_port;
            meta.key_dst_port = hdr.fwd_key.dst_port;
        } else {
            meta.lookup_type = LOOKUP_META_IF;
            meta.key_dst_addr = hdr.inner_ipv4.dst_addr;
            meta.key_src_addr = hdr.inner_ipv4.src_addr;
            meta.key_protocol = hdr.inner_ipv4.protocol;
            meta.key_src_port = 0;
            meta.key_dst_port = 0;
            if (hdr.inner_l4.isValid()) {
                meta.key_src_port = hdr.inner_l4.src_port;
                meta.key_dst_port = hdr.inner_l4.dst_port;
            }
        }
        meta.result = RESULT_NONE;
        if (!filter.apply().hit) {
            if (meta.from_slice == 1) {
                meta.drop_reason = NPE_DROP_NO_SUBSTRATE_FILTER;
            } else {
                meta.reason = REASON_NO_FILTER;
            }
        } else if (meta.result == RESULT_DROP) {
            meta.drop_reason = NPE_DROP_FILTER;
        }
    }
}

#endif
