/*
 * Stats (NPE): the SPP's array of four counters per index. Packets and
 * bytes before the queue are counted in ingress (stats_pre), packets and
 * bytes after it in egress (stats_post); one packets_and_bytes counter array
 * each. Bytes are BMv2's: the frame length as the NPE received it.
 *
 * A fastpath allocated without stats (stats=0) forwards uncounted: its
 * filters' stats index is not used. Otherwise an index outside the
 * partition is refused, so no filter counts into another fastpath's stats.
 */
#ifndef __SPP_STATS__
#define __SPP_STATS__

control StatsIngress(inout npe_metadata_t meta) {
    counter(NPE_STATS_SIZE, CounterType.packets_and_bytes) stats_pre;

    apply {
        if (meta.stats_count == 0) {
            meta.counted = 0;
        } else if ((index_t)meta.stats_index >= meta.stats_count) {
            meta.drop_reason = NPE_DROP_BAD_STATS;
        } else {
            meta.stats_global = meta.stats_base + (index_t)meta.stats_index;
            stats_pre.count(meta.stats_global);
            meta.counted = 1;
        }
    }
}

control StatsEgress(in npe_metadata_t meta) {
    counter(NPE_STATS_SIZE, CounterType.packets_and_bytes) stats_post;

    apply {
        if (meta.counted == 1) {
            stats_post.count(meta.stats_global);
        }
    }
}

#endif
