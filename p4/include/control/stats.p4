/*
 * Stats (NPE): the SPP's array of four counters per index. Packets and
 * bytes before the queue are counted in ingress (stats_pre), packets and
 * bytes after it in egress (stats_post); one packets_and_bytes counter array
 * each. Bytes are BMv2's: the frame length as the NPE received it.
 *
 * A fastpath allocated without stats (stats=0) forwards uncounted: its
 * filters' stats index is not used. Otherwise an index outside the
 * partition is refused, so no filter counts into another fastpath's stats.
 * The global index is computed by the filter's action (filter.p4).
 */
#ifndef __SPP_STATS__
#define __SPP_STATS__

// "How many packets hit this filter": a packet forwarded into its queue is
// counted by Encap's action, with its meters (one table walked instead of
// two, docs/npe.md); Encap applies this to every other packet, which counts
// a filter hit (local, discard, TTL expired, bad queue) unless its stats
// index was outside the partition (the filter's action checked it).
// stats_pre is npe.p4's, shared with Encap.
control StatsIngress(inout npe_metadata_t meta)(counter stats_pre) {
    apply {
        if (meta.result != RESULT_NONE && meta.stats_count != 0
                && meta.drop_reason != NPE_DROP_BAD_STATS) {
            stats_pre.count(meta.stats_global);
        }
    }
}

// After the queue: what leaves the NPE, forwarded or delivered to the slice.
// Exceptions are not counted (they hit no filter, or expired on one), and
// packets that reach egress with a filter result had a valid index.
control StatsEgress(in npe_metadata_t meta) {
    counter(NPE_STATS_SIZE, CounterType.packets_and_bytes) stats_post;

    apply {
        if (meta.reason == REASON_NONE && meta.stats_count != 0) {
            stats_post.count(meta.stats_global);
        }
    }
}

#endif
