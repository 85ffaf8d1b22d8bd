/*
 * Queues (NPE). BMv2 has one FIFO per egress port, not one per fastpath
 * queue, so a fastpath queue is made of:
 *   - a meter (ingress, Encap) holding the queue's rate, its share of the
 *     reserved meta-interface bandwidth: traffic above it is dropped (red);
 *   - a threshold (egress): a packet that found at least that many packets
 *     ahead of it in the port FIFO is dropped, as a full queue would;
 *   - an occupancy register (egress): the FIFO depth the queue's latest
 *     packet saw, which get_queue_len reads.
 * Both egress steps run in the actions of the one lookup, hit or miss.
 */
#ifndef __SPP_QUEUE__
#define __SPP_QUEUE__

control QueueEgress(inout npe_metadata_t meta, in standard_metadata_t std_meta) {
    register<bit<32>>(NPE_QUEUE_SIZE) queue_len;

    action set_threshold(bit<32> threshold) {
        queue_len.write(meta.queue_global, (bit<32>)std_meta.enq_qdepth);
        meta.drop_reason = threshold != 0 && (bit<32>)std_meta.enq_qdepth >= threshold
                           ? NPE_DROP_QUEUE_FULL : NO_DROP;
    }

    // No threshold: only the occupancy.
    action occupancy() {
        queue_len.write(meta.queue_global, (bit<32>)std_meta.enq_qdepth);
    }

    table queue_params {
        key = {
            meta.queue_global: exact @name("queue");
        }
        actions = {
            set_threshold;
            @defaultonly occupancy;
        }
        const default_action = occupancy();
        size = NPE_QUEUE_SIZE;
    }

    apply {
        // Every packet that reaches egress with a forwarding result went
        // through a queue (Encap).
        if (meta.result == RESULT_FORWARD && meta.reason == REASON_NONE) {
            queue_params.apply();
        }
    }
}

#endif
