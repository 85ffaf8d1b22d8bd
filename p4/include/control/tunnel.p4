/*
 * Meta-interface decapsulation (NPE): which fastpath and meta-interface does
 * this tunnel packet belong to, and which part of the shared counters and
 * meters is that fastpath's?
 *
 * Key: outer destination address and UDP port, a meta-interface's endpoint
 * (unique on a node: the LC demultiplexes on the same pair) or a slice's
 * return endpoint on the NPE's own address. The entry names the only outer
 * source the tunnel accepts: a peering interface's peer, or the slice host
 * for a return tunnel; 0 (any) elsewhere. A packet from another source is
 * an unknown tunnel, as if no entry matched.
 *
 * A slice's return tunnel must besides come from the slice host's own LC
 * port: the LC stamps that port into the source MAC (LC_PORT_STAMP,
 * define.p4) and drops anything for the NPE's address that does not come
 * from a slice host's port, so neither an end host, nor a peer node, nor
 * another slice can use it.
 *
 * One lookup does what took three tables (peering addresses, tunnel,
 * fastpath partition): BMv2's cost is per table walked, and the partition
 * never changes while the fastpath exists, so the controller copies it into
 * each of its tunnel entries. The actions also judge the inner datagram
 * (IPv4 code option), while the headers are at hand.
 */
#ifndef __SPP_TUNNEL__
#define __SPP_TUNNEL__

#include "ipv4_option.p4"

control Tunnel(inout npe_headers_t hdr, inout npe_metadata_t meta,
               in standard_metadata_t std_meta) {

    action partition(fastpath_id_t fastpath, ipv4_addr_t peer_addr,
                     index_t stats_base, index_t stats_count,
                     index_t queue_base, index_t queue_count) {
        meta.fastpath = fastpath;
        meta.peer_addr = peer_addr;
        meta.stats_base = stats_base;
        meta.stats_count = stats_count;
        meta.queue_base = queue_base;
        meta.queue_count = queue_count;
    }

    // A packet arriving on a meta-interface of a fastpath: a bare datagram.
    // A meta-net header from outside is part of a malformed datagram.
    action from_meta_if(fastpath_id_t fastpath, meta_if_t meta_if, ipv4_addr_t peer_addr,
                        index_t stats_base, index_t stats_count,
                        index_t queue_base, index_t queue_count) {
        partition(fastpath, peer_addr, stats_base, stats_count, queue_base, queue_count);
        meta.meta_if = meta_if;
        meta.key[119:104] = meta_if;
        meta.malformed = hdr.metanet.isValid() || IPV4_MALFORMED(hdr.inner_ipv4, std_meta,
                                                                 hdr.udp.len - 8) ? 1w1 : 1w0;
    }

    // A packet the slice sends back to its fastpath: meta-net header (16
    // bytes), forwarding key (8) and datagram, from the slice host's address,
    // stamped by the LC with its port. The filter key is the forwarding key's
    // (lookup type substrate-only: meta_if, src_addr, protocol 0).
    action from_slice(fastpath_id_t fastpath, ipv4_addr_t slice_addr, mac_addr_t lc_stamp,
                      index_t stats_base, index_t stats_count,
                      index_t queue_base, index_t queue_count) {
        partition(fastpath, slice_addr, stats_base, stats_count, queue_base, queue_count);
        meta.from_slice = 1;
        meta.slice_stamp = lc_stamp;
        meta.strip = 24;
        meta.malformed = !hdr.fwd_key.isValid() || IPV4_MALFORMED(hdr.inner_ipv4, std_meta,
                                                                  hdr.udp.len - 8 - 24) ? 1w1 : 1w0;
        meta.key = 16w0 ++ hdr.fwd_key.dst_addr ++ 32w0 ++ 8w0
                   ++ hdr.fwd_key.src_port ++ hdr.fwd_key.dst_port;
    }

    action unknown_tunnel() {
        meta.drop_reason = NPE_DROP_UNKNOWN_TUNNEL;
    }

    table tunnel {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.udp.dst_port:  exact @name("dst_port");
        }
        actions = {
            from_meta_if;
            from_slice;
            @defaultonly unknown_tunnel;
        }
        const default_action = unknown_tunnel();
        size = NPE_TUNNEL_SIZE;
    }

    apply {
        tunnel.apply();
        if (meta.drop_reason == NO_DROP) {
            if (meta.peer_addr != 0 && hdr.ipv4.src_addr != meta.peer_addr) {
                meta.drop_reason = NPE_DROP_UNKNOWN_TUNNEL;
            } else if (meta.from_slice == 1 && hdr.ethernet.src_addr != meta.slice_stamp) {
                meta.drop_reason = NPE_DROP_NOT_SLICE_PORT;
            } else if (meta.malformed == 1) {
                // Only a well-formed meta-net packet with a key comes back
                // from the slice; from outside, it is the slice's exception.
                if (meta.from_slice == 1) {
                    meta.drop_reason = NPE_DROP_BAD_SLICE_PACKET;
                } else {
                    meta.reason = REASON_MALFORMED;
                }
            }
        }
    }
}

#endif
