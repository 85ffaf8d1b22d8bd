/*
 * Headers and metadata of the SPP programs.
 */
#ifndef __SPP_HEADER__
#define __SPP_HEADER__

#include "define.p4"

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

header arp_t {
    bit<16>     hw_type;
    bit<16>     proto_type;
    bit<8>      hw_len;
    bit<8>      proto_len;
    bit<16>     oper;
    mac_addr_t  sender_mac;
    ipv4_addr_t sender_ip;
    mac_addr_t  target_mac;
    ipv4_addr_t target_ip;
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<8>      dscp_ecn;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

// IPv4 options of the inner datagram, kept opaque: the IPv4 code option
// updates the checksum incrementally, so it never needs to read them.
header ipv4_options_t {
    varbit<320> options;
}

header udp_t {
    l4_port_t src_port;
    l4_port_t dst_port;
    bit<16>   len;
    bit<16>   checksum;
}

header tcp_t {
    l4_port_t src_port;
    l4_port_t dst_port;
    bit<32>   seq_no;
    bit<32>   ack_no;
    bit<4>    data_offset;
    bit<4>    res;
    bit<8>    flags;
    bit<16>   window;
    bit<16>   checksum;
    bit<16>   urgent_ptr;
}

// The first four bytes of an inner TCP or UDP header: the filter key's ports.
header l4_ports_t {
    l4_port_t src_port;
    l4_port_t dst_port;
}

// Meta-net header (16 bytes), in front of the original datagram on the
// NPE <-> slice path. Layout and field meaning: docs/metanet.md.
header metanet_t {
    bit<8>        magic;            // METANET_MAGIC
    bit<8>        kind;             // METANET_LOCAL_DELIVERY / _EXCEPTION / _FROM_SLICE
    bit<8>        reason;           // REASON_*
    bit<8>        reserved;
    fastpath_id_t fastpath;         // the slice's own (local) fastpath number
    meta_if_t     meta_if;          // input meta-interface
    ipv4_addr_t   tunnel_src_addr;  // outer source of the tunnel packet
    l4_port_t     tunnel_src_port;
    bit<16>       reserved2;
}

// Forwarding key (8 bytes) a slice puts after the meta-net header when it
// sends a datagram back to its fastpath: both ends of the output UDP tunnel.
header fwd_key_t {
    ipv4_addr_t dst_addr;
    l4_port_t   src_port;
    l4_port_t   dst_port;
}

struct npe_headers_t {
    ethernet_t     ethernet;
    ipv4_t         ipv4;           // outer (tunnel) IPv4
    udp_t          udp;            // outer (tunnel) UDP
    metanet_t      metanet_out;    // added by the NPE towards the slice
    metanet_t      metanet;        // as received (from the slice)
    fwd_key_t      fwd_key;
    ipv4_t         inner_ipv4;     // the overlay datagram
    ipv4_options_t inner_options;
    l4_ports_t     inner_l4;
}

// v1model zeroes user metadata for every packet: nothing here needs an
// initial assignment (each would cost BMv2 a table, see docs/npe.md).
struct npe_metadata_t {
    // From the parser: the tunnel table's key (outer dst address ++ UDP port).
    endpoint_t    endpoint;
    // From the tunnel lookup (Tunnel).
    bit<1>        from_slice;      // also the filter's lookup type (LOOKUP_*)
    fastpath_id_t fastpath;        // global fastpath id (table keys, meter index)
    bit<16>       strip;           // bytes of meta-net header and key the slice put in front
    // Partition of the fastpath: [base, base + count).
    index_t       stats_base;
    index_t       stats_count;
    index_t       queue_base;
    index_t       queue_count;
    // Filter key, one ternary word (filter_key_t): the parser fills it from
    // the inner datagram, Tunnel adds fastpath, type and meta-interface, or
    // puts a slice's forwarding key in their place. Its meta_if part is the
    // input meta-interface (0 from the slice), which Encap reports.
    filter_key_t  key;
    // Filter result (Filter) and the global indices it names.
    bit<2>        result;
    index_t       stats_global;
    index_t       queue_global;
    bit<8>        reason;          // exception reason, REASON_NONE otherwise
    // Encapsulation (Encap).
    bit<2>        queue_color;
    bit<2>        fastpath_color;
    drop_reason_t drop_reason;     // NO_DROP unless the packet must go
}

struct lc_headers_t {
    ethernet_t ethernet;
    arp_t      arp;
    ipv4_t     ipv4;
    tcp_t      tcp;
    udp_t      udp;
}

struct lc_metadata_t {
    ipv4_addr_t   nat_addr;        // the address and port NAT writes
    l4_port_t     nat_port;
    l4_port_t     nat_key_port;    // the port endpoint_in/endpoint_out look up
    ipv4_addr_t   guard_addr;      // the only source a slice port may use
    bit<1>        stamp;           // to an NPE's internal address: stamp the LC port
    bit<16>       police;          // the packet meter of a meta-interface's fastpath
    drop_reason_t drop_reason;
}

#endif
