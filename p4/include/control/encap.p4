/*
 * Encapsulation (NPE): the meters on the way out of the fastpath, and the
 * outer header of the internal tunnel to the slice (local delivery and
 * exceptions) with a meta-net header in front.
 *
 * A forwarded packet's outer header, the output meta-interface's tunnel, is
 * written by the filter's action (filter.p4: the controller copies the
 * meta-interface's endpoint into each filter that forwards to it), so
 * forwarding walks no table here: `to_meta_if` is called on its own (p4c
 * makes it a table without a key, which BMv2 walks cheaply), and it also
 * counts the packet (stats_pre; StatsIngress, applied here to every other
 * packet, counts the other filter hits), so that a forwarded packet walks
 * one such table, not two. The actions that run a meter also set the drop
 * reason its colour calls for where one expression can (to_slice); the
 * forwarding branch tests both colours in one condition.
 *
 * The two meters a packet passes on its way out run in the same actions:
 *   - queue_rate: the queue's rate, its share of the reserved meta-interface
 *     bandwidth (forwarded traffic only); over it (red): dropped (`meter`);
 *   - fastpath_rate: the fastpath's bw (alloc_fastpath), over everything it
 *     sends, forwarded or to the slice host; red: dropped (`fastpath_rate`).
 *     Forwarded traffic alone cannot exceed it (queues <= meta-interfaces <=
 *     reservations <= bw); it also bounds the traffic to the slice host.
 * An extern called outside an action would cost BMv2 a table of its own;
 * inside one it costs one primitive. A packet red at its queue's meter takes
 * nothing from the fastpath's: it runs meter cell 0, which belongs to no
 * fastpath (ids start at 1) and is never configured.
 */
#ifndef __SPP_ENCAP__
#define __SPP_ENCAP__

// stats_pre: StatsIngress's counter (npe.p4 owns it; both count into it).
control Encap(inout npe_headers_t hdr, inout npe_metadata_t meta)(counter stats_pre) {
    meter(NPE_QUEUE_SIZE, MeterType.bytes) queue_rate;
    meter(NPE_FASTPATH_SIZE + 1, MeterType.bytes) fastpath_rate;

    // Through the queue's and the fastpath's meters.
    action to_meta_if() {
        queue_rate.execute_meter(meta.queue_global, meta.queue_color);
        fastpath_rate.execute_meter(
            meta.queue_color == V1MODEL_METER_COLOR_RED ? 32w0 : (index_t)meta.fastpath,
            meta.fastpath_color);
    }

    // The same, counted before the meters (a fastpath with stats).
    action to_meta_if_counted() {
        stats_pre.count(meta.stats_global);
        to_meta_if();
    }

    // Red at the queue's meter or else at the fastpath's. An action: p4c
    // turns a ?: outside one into conditions and a temporary.
    action over_rate() {
        meta.drop_reason = meta.queue_color == V1MODEL_METER_COLOR_RED
                           ? NPE_DROP_METER : NPE_DROP_FASTPATH_RATE;
    }

    // A packet from the slice loses its meta-net header and key (meta.strip
    // bytes) on its way to a meta-interface.
    action strip_slice_headers() {
        hdr.ipv4.total_len = hdr.ipv4.total_len - meta.strip;
        hdr.udp.len = hdr.udp.len - meta.strip;
        hdr.metanet.setInvalid();
        hdr.fwd_key.setInvalid();
    }

    // The fastpath's own entry: its number in the slice (meta-net header)
    // and the slice's endpoints, local delivery and exception, both reached
    // from the NPE's return endpoint. The meta-net header records where the
    // datagram came from: it is filled before the outer header is rewritten.
    action to_slice(fastpath_id_t local_id, ipv4_addr_t slice_addr, l4_port_t ld_port,
                    l4_port_t exc_port, ipv4_addr_t npe_addr, l4_port_t ret_port) {
        fastpath_rate.execute_meter((index_t)meta.fastpath, meta.fastpath_color);
        meta.drop_reason = meta.fastpath_color == V1MODEL_METER_COLOR_RED
                           ? NPE_DROP_FASTPATH_RATE : NO_DROP;
        hdr.metanet_out.setValid();
        hdr.metanet_out.magic = METANET_MAGIC;
        hdr.metanet_out.kind = meta.reason == REASON_NONE ? METANET_LOCAL_DELIVERY
                                                          : METANET_EXCEPTION;
        hdr.metanet_out.reason = meta.reason;
        hdr.metanet_out.reserved = 0;
        hdr.metanet_out.fastpath = local_id;
        hdr.metanet_out.meta_if = meta.key[119:104];      // the input meta-interface
        hdr.metanet_out.tunnel_src_addr = hdr.ipv4.src_addr;
        hdr.metanet_out.tunnel_src_port = hdr.udp.src_port;
        hdr.metanet_out.reserved2 = 0;
        hdr.ipv4.src_addr = npe_addr;
        hdr.ipv4.dst_addr = slice_addr;
        hdr.ipv4.ttl = DEFAULT_TTL;
        hdr.ipv4.total_len = hdr.ipv4.total_len + 16 - meta.strip;
        hdr.udp.src_port = ret_port;
        hdr.udp.dst_port = meta.reason == REASON_NONE ? ld_port : exc_port;
        hdr.udp.len = hdr.udp.len + 16 - meta.strip;
        hdr.udp.checksum = 0;
    }

    action no_endpoint() {
        meta.drop_reason = NPE_DROP_NO_ENDPOINT;
    }

    StatsIngress(stats_pre) stats;

    table fastpath {
        key = {
            meta.fastpath: exact @name("fastpath");
        }
        actions = {
            to_slice;
            @defaultonly no_endpoint;
        }
        const default_action = no_endpoint();
        size = NPE_FASTPATH_SIZE;
    }

    apply {
        if (meta.result == RESULT_FORWARD && meta.reason == REASON_NONE
                && meta.drop_reason == NO_DROP) {
            if (meta.stats_count != 0) {
                to_meta_if_counted();
            } else {
                to_meta_if();
            }
            if (meta.queue_color == V1MODEL_METER_COLOR_RED
                    || meta.fastpath_color == V1MODEL_METER_COLOR_RED) {
                over_rate();
            } else if (meta.from_slice == 1) {
                strip_slice_headers();
            }
        } else {
            stats.apply(meta);
            if (meta.drop_reason == NO_DROP) {
                fastpath.apply();
            }
            if (meta.drop_reason == NO_DROP && meta.from_slice == 1) {
                // The slice's own meta-net header and key are replaced; one
                // that arrived on a meta-interface is part of the
                // (malformed) datagram and stays.
                hdr.metanet.setInvalid();
                hdr.fwd_key.setInvalid();
            }
        }
    }
}

#endif
