/*
 * Fastpath partition (NPE): the slice of each shared resource that belongs
 * to the fastpath. Filter results name queues and stats by the slice's own
 * local index; here they become global indices, and an index outside the
 * partition is refused, so no result can touch another fastpath's counters
 * or meters, whatever the controller installed.
 */
#ifndef __SPP_FASTPATH__
#define __SPP_FASTPATH__

control Fastpath(inout npe_metadata_t meta) {

    action set_partition(fastpath_id_t local_id,
                         index_t stats_base, index_t stats_count,
                         index_t queue_base, index_t queue_count) {
        meta.local_fastpath = local_id;
        meta.stats_base = stats_base;
        meta.stats_count = stats_count;
        meta.queue_base = queue_base;
        meta.queue_count = queue_count;
    }

    table fastpath {
        key = {
            meta.fastpath: exact @name("fastpath");
        }
        actions = {
            set_partition;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_FASTPATH_SIZE;
    }

    apply {
        if (!fastpath.apply().hit) {
            meta.drop_reason = NPE_DROP_NO_FASTPATH;
        }
    }
}

/*
 * The fastpath's bandwidth (alloc_fastpath's bw): a byte meter per fastpath,
 * run on everything the fastpath sends, forwarded (after its queue's meter)
 * or to the slice host (local delivery, exceptions). Over the rate (red):
 * dropped. Forwarded traffic alone cannot exceed it (its queues' rates add up
 * to at most the meta-interfaces' bandwidth, which adds up to at most the
 * reservations, at most the fastpath's bw); this meter also bounds the
 * traffic to the slice host, so the sum never exceeds the fastpath's bw.
 */
control FastpathRate(inout npe_metadata_t meta) {
    meter(NPE_FASTPATH_SIZE + 1, MeterType.bytes) fastpath_rate;

    apply {
        bit<2> color;
        fastpath_rate.execute_meter((index_t)meta.fastpath, color);
        if (color == V1MODEL_METER_COLOR_RED) {
            meta.drop_reason = NPE_DROP_FASTPATH_RATE;
        }
    }
}

#endif
