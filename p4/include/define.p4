/*
 * Named constants and table sizes shared by npe.p4 and lc.p4.
 *
 * The controller never hard-codes a size: it reads table, counter, meter and
 * register sizes from the P4Info, so changing a number here (and running
 * `make p4`) is enough to resize a partition.
 */
#ifndef __SPP_DEFINE__
#define __SPP_DEFINE__

typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;
typedef bit<16> l4_port_t;
typedef bit<9>  port_num_t;
typedef bit<16> fastpath_id_t;
typedef bit<16> meta_if_t;
typedef bit<32> index_t;       // global index into a counter, meter or register

/*
 * The filter key, one ternary word, most significant first:
 *   fastpath (16) | type (1) | meta_if (16) | dst_addr (32) | src_addr (32) | protocol (8)
 *   | src_port (16) | dst_port (16)
 * fastpath and type are always matched exactly (full mask). One field instead
 * of eight: BMv2 formats every field of a key and of a hit entry for its log,
 * even with logging off, per packet, and each field costs it far more than a
 * wider one (docs/npe.md). The controller packs filters the same way
 * (controller/pipeline.py, filter_word).
 */
typedef bit<137> filter_key_t;

// A tunnel's local endpoint, the tunnel table's one key field: the outer
// destination address ++ UDP destination port (one field, as above).
typedef bit<48> endpoint_t;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_ARP  = 0x0806;
const bit<8>  PROTO_ICMP = 1;
const bit<8>  PROTO_TCP  = 6;
const bit<8>  PROTO_UDP  = 17;
const bit<16> ARP_REQUEST = 1;
const bit<16> ARP_REPLY   = 2;
const bit<8>  DEFAULT_TTL = 64;

/*
 * Meta-net header (docs/metanet.md). Its first byte is a magic number whose
 * high nibble is not 4, so the parser tells a meta-net packet from a bare
 * IPv4 datagram by looking at one byte, before any table lookup.
 */
const bit<8> METANET_MAGIC = 0x53;          // 'S'
const bit<8> METANET_LOCAL_DELIVERY = 1;    // NPE -> slice: a filter said "local"
const bit<8> METANET_EXCEPTION      = 2;    // NPE -> slice: miss or error
const bit<8> METANET_FROM_SLICE     = 3;    // slice -> NPE: forwarding key follows

// Reason codes carried in the meta-net header.
const bit<8> REASON_NONE        = 0;        // local delivery
const bit<8> REASON_NO_FILTER   = 1;        // no filter matched
const bit<8> REASON_TTL_EXPIRED = 2;        // forwarding result, TTL <= 1
const bit<8> REASON_MALFORMED   = 3;        // inner datagram is not valid IPv4

// Filter lookup type bit (the SPP's "type" field of the lookup key).
const bit<1> LOOKUP_META_IF   = 0;          // packet arrived on a meta-interface
const bit<1> LOOKUP_SUBSTRATE = 1;          // packet came back from the slice

// Filter results.
const bit<2> RESULT_NONE    = 0;
const bit<2> RESULT_FORWARD = 1;
const bit<2> RESULT_LOCAL   = 2;
const bit<2> RESULT_DROP    = 3;

// Index of the `drops` counters: why a packet was dropped (0: it was not).
// Keep in sync with controller/pipeline.py (NPE_DROPS, LC_DROPS).
typedef bit<8> drop_reason_t;
const drop_reason_t NO_DROP = 0;
const drop_reason_t NPE_DROP_NOT_TUNNEL          = 1;  // not IPv4/UDP, or outer options/fragments
const drop_reason_t NPE_DROP_UNKNOWN_TUNNEL      = 2;  // no meta-interface for (dst, port, peer)
const drop_reason_t NPE_DROP_NO_FASTPATH         = 3;  // unused: a tunnel entry carries its fastpath's
                                                       // partition, so it cannot name a missing one
const drop_reason_t NPE_DROP_BAD_SLICE_PACKET    = 4;  // slice packet without meta-net/key/valid IPv4
const drop_reason_t NPE_DROP_NO_SUBSTRATE_FILTER = 5;  // slice packet matched no substrate-only filter
const drop_reason_t NPE_DROP_FILTER              = 6;  // filter result "drop"
const drop_reason_t NPE_DROP_BAD_STATS           = 7;  // stats index outside the partition
const drop_reason_t NPE_DROP_BAD_QUEUE           = 8;  // queue outside the partition
const drop_reason_t NPE_DROP_METER               = 9;  // over the queue's rate
const drop_reason_t NPE_DROP_NO_META_IF          = 10; // unused: a forwarding filter carries its
                                                       // meta-interface's outer header
const drop_reason_t NPE_DROP_NO_ENDPOINT         = 11; // no fastpath entry (slice endpoints)
const drop_reason_t NPE_DROP_NO_ROUTE            = 12; // no route for the outer destination
const drop_reason_t NPE_DROP_QUEUE_FULL          = 13; // queue over its threshold (egress)
const drop_reason_t NPE_DROP_LOCAL               = 14; // for the NPE itself, not a tunnel
const drop_reason_t NPE_DROP_NOT_SLICE_PORT      = 15; // return traffic not from the slice's LC port
const drop_reason_t NPE_DROP_FASTPATH_RATE       = 16; // over the fastpath's bandwidth
#define NPE_DROP_REASONS 32

const drop_reason_t LC_DROP_NO_ROUTE = 1;              // no route for the destination
const drop_reason_t LC_DROP_SPOOFED  = 2;              // an internal source address (slice
                                                       // host's, NPE's) not from its own port
const drop_reason_t LC_DROP_ARP      = 3;              // ARP we do not answer
const drop_reason_t LC_DROP_NOT_IPV4 = 4;              // neither IPv4 nor ARP
const drop_reason_t LC_DROP_LOCAL    = 5;              // for the LC itself, no endpoint
const drop_reason_t LC_DROP_INTERNAL = 6;              // for an NPE's internal address, not
                                                       // from a slice host's port
const drop_reason_t LC_DROP_POLICED  = 7;              // over its fastpath's packet rate
const drop_reason_t LC_DROP_HOST_RATE = 8;             // from a slice host, over its quota's
                                                       // rate (bytes or packets)
#define LC_DROP_REASONS 9

/*
 * The LC stamps the frames it hands to an NPE from a slice host's port with
 * that port: source MAC = LC_PORT_STAMP | port (a locally administered
 * address, "SP"). Every frame reaches an NPE through the LC, which rewrites
 * the source MAC of every frame it forwards, so the NPE can trust the stamp
 * and accept a slice's return traffic only from that slice's own LC port.
 */
const mac_addr_t LC_PORT_STAMP = 0x025350000000;

// Table and extern sizes: the capacity of one NPE or LC.
#define NPE_TUNNEL_SIZE      4096
#define NPE_FASTPATH_SIZE    256     // fastpath ids (gids) 1..256; meter cell 0 is nobody's
#define NPE_FILTER_SIZE      8192
#define NPE_STATS_SIZE       8192    // entries of four counters each
#define NPE_QUEUE_SIZE       2048
#define NPE_SRAM_WORDS       65536   // 32-bit words
#define ROUTE_SIZE           1024
#define LC_TUNNEL_SIZE       4096
#define LC_ENDPOINT_SIZE     4096
#define LC_ARP_SIZE          256
#define LC_PORT_SIZE         512
#define LC_NPE_SIZE          16
#define LC_OWNER_SIZE        (LC_PORT_SIZE + LC_NPE_SIZE)   // internal source addresses
#define LC_POLICE_SIZE       2048    // packet meters: 512 per NPE, indexed by fastpath

#endif
