/*
 * npe.p4: the SPP's network processor engine. Many slices' fastpaths
 * (meta-routers) share this one pipeline; each table is keyed by fastpath,
 * and each shared counter, meter and register is partitioned per fastpath.
 *
 * A packet's walk (docs/npe.md):
 *   tunnel     -> which fastpath, meta-interface and partition (or: back
 *                 from the slice); malformed inner datagrams become exceptions
 *   filter     -> forward / local delivery / drop, or a miss (exception);
 *                 forwarding: TTL and checksum (TTL expiry an exception), and
 *                 the output meta-interface's outer header, which the entry
 *                 carries
 *   stats      -> count before the queue (a forwarded packet: in encap)
 *   encap      -> through the queue's and the fastpath's meters, or into the
 *                 slice's internal tunnel
 *   route      -> egress port and MACs
 *   egress: queue threshold and occupancy, count after the queue
 *
 * Why it is shaped this way: BMv2 spends most of a packet's time on each
 * table it walks (it formats the key and the entry even with logging off,
 * and each key field costs it more than a wider one), and p4c makes a table
 * of every statement run outside a table's action. So the work rides on the
 * lookups that must happen anyway (their actions), each lookup has one key
 * field, and the control flow between them is conditions only. A check
 * that follows from one lookup's result (a stats or queue index outside the
 * partition, a meter's colour, not a tunnel) is an expression in that
 * lookup's action where it can be: BMv2 spends on each condition a packet
 * walks about what it spends on a primitive. A forwarded packet walks 4
 * ingress tables (one without a key), 7 conditions, and 2 egress tables
 * (docs/npe.md, "What the stages cost").
 */
#include <core.p4>
#include <v1model.p4>

#include "include/define.p4"
#include "include/header.p4"
#include "include/npe_parser.p4"
#include "include/control/tunnel.p4"
#include "include/control/filter.p4"
#include "include/control/stats.p4"
#include "include/control/encap.p4"
#include "include/control/queue.p4"
#include "include/control/route.p4"

control NpeIngress(inout npe_headers_t hdr, inout npe_metadata_t meta,
                   inout standard_metadata_t std_meta) {
    counter(NPE_DROP_REASONS, CounterType.packets) drops;
    // Stats before the queue (stats.p4): counted by Encap, with the meters
    // (one action) for a packet it forwards, by StatsIngress for any other
    // filter hit.
    counter(NPE_STATS_SIZE, CounterType.packets_and_bytes) stats_pre;
    // The fastpaths' SRAM (mem_write/mem_read), one partition per fastpath.
    // Only the control plane touches it (BMv2 Thrift register API).
    @noWarn("unused") register<bit<32>>(NPE_SRAM_WORDS) sram;

    Tunnel() tunnel;
    Filter() filter;
    Encap(stats_pre) encap;
    Route(NPE_DROP_LOCAL, NPE_DROP_NO_ROUTE) route;

    apply {
        tunnel.apply(hdr, meta, std_meta);
        if (meta.drop_reason == NO_DROP && meta.reason == REASON_NONE) {
            filter.apply(hdr, meta);
        }
        encap.apply(hdr, meta);
        if (meta.drop_reason == NO_DROP) {
            route.apply(hdr.ipv4.dst_addr, hdr.ethernet, std_meta, meta.drop_reason);
        }
        if (meta.drop_reason != NO_DROP) {
            drops.count((index_t)meta.drop_reason);
            mark_to_drop(std_meta);
        }
    }
}

control NpeEgress(inout npe_headers_t hdr, inout npe_metadata_t meta,
                  inout standard_metadata_t std_meta) {
    counter(NPE_DROP_REASONS, CounterType.packets) drops;

    QueueEgress() queue;
    StatsEgress() stats;

    apply {
        queue.apply(meta, std_meta);
        if (meta.drop_reason != NO_DROP) {
            drops.count((index_t)meta.drop_reason);
            mark_to_drop(std_meta);
        } else {
            stats.apply(meta);
        }
    }
}

V1Switch(NpeParser(), NpeVerifyChecksum(), NpeIngress(), NpeEgress(),
         NpeComputeChecksum(), NpeDeparser()) main;
