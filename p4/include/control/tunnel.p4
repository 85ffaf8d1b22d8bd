/*
 * Meta-interface decapsulation (NPE): which fastpath and meta-interface does
 * this tunnel packet belong to, and which part of the shared counters and
 * meters is that fastpath's?
 *
 * Key: outer destination address and UDP port, a meta-interface's endpoint
 * (unique on a node: the LC demultiplexes on the same pair) or a slice's
 * return endpoint on the NPE's own address, as one field (endpoint_t; the
 * parser joins them: BMv2's cost grows with each key field, docs/npe.md). The entry names the only outer
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
 * each of its tunnel entries. The actions also check the outer source and
 * judge the inner datagram (IPv4 code option), while the headers are at
 * hand, and put the fastpath, the lookup type and the meta-interface into the
 * filter key: a packet walks no condition here (each costs BMv2 a formatted
 * log message, docs/npe.md).
 */
#ifndef __SPP_TUNNEL__
#define __SPP_TUNNEL__

#include "ipv4_option.p4"

control Tunnel(inout npe_headers_t hdr, inout npe_metadata_t meta,
               in standard_metadata_t std_meta) {

    action partition(fastpath_id_t fastpath, index_t stats_base, index_t stats_count,
                     index_t queue_base, index_t queue_count) {
        meta.fastpath = fastpath;
        meta.stats_base = stats_base;
        meta.stats_count = stats_count;
        meta.queue_base = queue_base;
        meta.queue_count = queue_count;
    }

    // A packet arriving on a meta-interface of a fastpath: a bare datagram.
    // From another source than the peer of a peering interface (peer_addr;
    // 0: any): an unknown tunnel. A malformed datagram (a meta-net header
    // from outside is one) is the slice's exception.
    action from_meta_if(fastpath_id_t fastpath, meta_if_t meta_if, ipv4_addr_t peer_addr,
                        index_t stats_base, index_t stats_count,
                        index_t queue_base, index_t queue_count) {
        partition(fastpath, stats_base, stats_count, queue_base, queue_count);
        meta.key[136:104] = fastpath ++ LOOKUP_META_IF ++ meta_if;
        meta.drop_reason = peer_addr != 0 && hdr.ipv4.src_addr != peer_addr
                           ? NPE_DROP_UNKNOWN_TUNNEL : NO_DROP;
        meta.reason = hdr.metanet.isValid() || IPV4_MALFORMED(hdr.inner_ipv4, std_meta,
                                                              hdr.udp.len - 8)
                      ? REASON_MALFORMED : REASON_NONE;
    }

    // A packet the slice sends back to its fastpath: meta-net header (16
    // bytes), forwarding key (8) and datagram, from the slice host's address,
    // stamped by the LC with its port; anything else is dropped. The filter
    // key is the forwarding key's (lookup type substrate-only: meta_if,
    // src_addr, protocol 0).
    action from_slice(fastpath_id_t fastpath, ipv4_addr_t slice_addr, mac_addr_t lc_stamp,
                      index_t stats_base, index_t stats_count,
                      index_t queue_base, index_t queue_count) {
        partition(fastpath, stats_base, stats_count, queue_base, queue_count);
        meta.from_slice = 1;
        meta.strip = 24;
        meta.key = fastpath ++ LOOKUP_SUBSTRATE ++ 16w0 ++ hdr.fwd_key.dst_addr ++ 32w0 ++ 8w0
                   ++ hdr.fwd_key.src_port ++ hdr.fwd_key.dst_port;
        meta.drop_reason =
            hdr.ipv4.src_addr != slice_addr ? NPE_DROP_UNKNOWN_TUNNEL
            : (hdr.ethernet.src_addr != lc_stamp ? NPE_DROP_NOT_SLICE_PORT
            : (!hdr.fwd_key.isValid() || IPV4_MALFORMED(hdr.inner_ipv4, std_meta,
                                                        hdr.udp.len - 8 - 24)
               ? NPE_DROP_BAD_SLICE_PACKET : NO_DROP));
    }

    // Also what a frame that is not a tunnel packet gets: the parser sets
    // the endpoint only from an outer UDP header, so such a frame looks up
    // endpoint 0, which no entry has (an address and port of the node's).
    // Deciding it here spares every tunnel packet a condition.
    action unknown_tunnel() {
        meta.drop_reason = hdr.udp.isValid() ? NPE_DROP_UNKNOWN_TUNNEL : NPE_DROP_NOT_TUNNEL;
    }

    table tunnel {
        key = {
            meta.endpoint: exact @name("endpoint");    // endpoint_t
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
    }
}

#endif
