/*
 * Queues (NPE). BMv2 has one FIFO per egress port, not one per fastpath
 * queue, so a fastpath queue is made of:
 *   - a meter (ingress) holding the queue's rate, its share of the reserved
 *     meta-interface bandwidth: traffic above it is dropped (red);
 *   - a threshold (egress): a packet that found at least that many packets
 *     ahead of it in the port FIFO is dropped, as a full queue would;
 *   - an occupancy register (egress): the FIFO depth the queue's latest
 *     packet saw, which get_queue_len reads.
 */
#ifndef __SPP_QUEUE__
#define __SPP_QUEUE__

control QueueIngress(inout npe_metadata_t meta) {
    meter(NPE_QUEUE_SIZE, MeterType.bytes) queue_rate;

    apply {
        if ((index_t)meta.queue_id >= meta.queue_count) {
            meta.drop_reason = NPE_DROP_BAD_QUEUE;
        } else {
            meta.queue_global = meta.queue_base + (index_t)meta.queue_id;
            bit<2> color;
            queue_rate.execute_meter(meta.queue_global, color);
            if (color == V1MODEL_METER_COLOR_RED) {
                meta.drop_reason = NPE_DROP_METER;
            } else {
                meta.queued = 1;
            }
        }
    }
}

control QueueEgress(inout npe_metadata_t meta, in standard_metadata_t std_meta) {
    register<bit<32>>(NPE_QUEUE_SIZE) queue_len;

    action set_threshold(bit<32> threshold) {
        meta.queue_threshold = threshold;
    }

    table queue_params {
        key = {
            meta.queue_global: exact @name("queue");
        }
        actions = {
            set_threshold;
            @defaultonly NoAction;
        }
        const default_action = NoAction;
        size = NPE_QUEUE_SIZE;
    }

    apply {
        if (meta.queued == 1) {
            queue_len.write(meta.queue_global, (bit<32>)std_meta.enq_qdepth);
            meta.queue_threshold = 0;
            queue_params.apply();
            if (meta.queue_threshold != 0
                    && (bit<32>)std_meta.enq_qdepth >= meta.queue_threshold) {
                meta.drop_reason = NPE_DROP_QUEUE_FULL;
            }
        }
    }
}

#endif
