/*
 * npe.p4: the SPP's network processor engine. Many slices' fastpaths
 * (meta-routers) share this one pipeline; each table is keyed by fastpath,
 * and each shared counter, meter and register is partitioned per fastpath.
 *
 * A packet's walk (docs/npe.md):
 *   tunnel     -> which fastpath and meta-interface (or: back from the slice)
 *   fastpath   -> the fastpath's partition of stats and queues
 *   validate   -> malformed inner datagrams become exceptions
 *   filter     -> forward / local delivery / drop, or a miss (exception)
 *   stats      -> count before the queue
 *   IPv4       -> TTL and checksum; TTL expiry becomes an exception
 *   queue      -> the queue's meter
 *   bandwidth  -> the fastpath's meter
 *   encap      -> into the output tunnel, or into the slice's internal tunnel
 *   route      -> egress port and MACs
 *   egress: queue threshold and occupancy, count after the queue
 */
#include <core.p4>
#include <v1model.p4>

#include "include/define.p4"
#include "include/header.p4"
#include "include/npe_parser.p4"
#include "include/control/tunnel.p4"
#include "include/control/fastpath.p4"
#include "include/control/filter.p4"
#include "include/control/ipv4_option.p4"
#include "include/control/stats.p4"
#include "include/control/queue.p4"
#include "include/control/encap.p4"
#include "include/control/route.p4"

control NpeIngress(inout npe_headers_t hdr, inout npe_metadata_t meta,
                   inout standard_metadata_t std_meta) {
    counter(NPE_DROP_REASONS, CounterType.packets) drops;
    // The fastpaths' SRAM (mem_write/mem_read), one partition per fastpath.
    // Only the control plane touches it (BMv2 Thrift register API).
    @noWarn("unused") register<bit<32>>(NPE_SRAM_WORDS) sram;

    Tunnel() tunnel;
    Fastpath() fastpath;
    Ipv4Validate() validate;
    Filter() filter;
    StatsIngress() stats;
    Ipv4Forward() ipv4;
    QueueIngress() queue;
    FastpathRate() bandwidth;
    MetaIfEncap() meta_if_encap;
    SliceEncap() slice_encap;
    Route() route;

    action drop() {
        drops.count((index_t)meta.drop_reason);
        mark_to_drop(std_meta);
    }

    apply {
        meta.drop_reason = NO_DROP;
        meta.reason = REASON_NONE;
        meta.counted = 0;
        meta.queued = 0;
        if (!hdr.udp.isValid()) {
            meta.drop_reason = NPE_DROP_NOT_TUNNEL;
        } else {
            tunnel.apply(hdr, meta);
        }
        if (meta.drop_reason == NO_DROP) {
            fastpath.apply(meta);
        }
        if (meta.drop_reason != NO_DROP) {
            drop();
            exit;
        }

        validate.apply(hdr, meta, std_meta);
        if (meta.from_slice == 1) {
            // Only a well-formed meta-net packet with a key comes back.
            if (!hdr.fwd_key.isValid() || meta.malformed == 1) {
                meta.drop_reason = NPE_DROP_BAD_SLICE_PACKET;
            }
        } else if (hdr.metanet.isValid() || meta.malformed == 1) {
            meta.reason = REASON_MALFORMED;
        }

        if (meta.drop_reason == NO_DROP && meta.reason == REASON_NONE) {
            filter.apply(hdr, meta);
            if (meta.result != RESULT_NONE) {
                // Counted whatever the result: "how many packets hit this filter".
                stats.apply(meta);
            }
            if (meta.drop_reason == NO_DROP && meta.result == RESULT_FORWARD) {
                ipv4.apply(hdr, meta);
            }
        }
        if (meta.drop_reason != NO_DROP) {
            drop();
            exit;
        }

        if (meta.reason != REASON_NONE) {
            meta.counted = 0;       // exceptions pass no queue
        }
        bool to_slice = meta.reason != REASON_NONE || meta.result == RESULT_LOCAL;
        if (!to_slice) {
            queue.apply(meta);
        }
        if (meta.drop_reason == NO_DROP) {
            bandwidth.apply(meta);
        }
        if (meta.drop_reason == NO_DROP) {
            if (to_slice) {
                slice_encap.apply(hdr, meta);
            } else {
                meta_if_encap.apply(hdr, meta);
            }
        }
        if (meta.drop_reason == NO_DROP) {
            bit<1> local;
            bit<1> routed;
            route.apply(hdr.ipv4.dst_addr, hdr.ethernet, std_meta, local, routed);
            if (local == 1) {
                meta.drop_reason = NPE_DROP_LOCAL;
            } else if (routed == 0) {
                meta.drop_reason = NPE_DROP_NO_ROUTE;
            }
        }
        if (meta.drop_reason != NO_DROP) {
            drop();
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
