/*
 * The IPv4 code option (NPE): what makes a fastpath an IPv4 meta-router.
 * Other code options would replace this file and the filter key.
 *
 * IPV4_MALFORMED decides whether the inner datagram may be looked up at all
 * (Tunnel's actions); IPV4_FORWARD is the per-hop treatment of a datagram
 * being forwarded (Filter's forward action). They run inside table actions
 * because BMv2 pays for every table a packet walks and p4c makes a table of
 * each statement outside one (docs/npe.md). They are macros, not functions:
 * p4c copies a header passed to a function into a temporary and back, and
 * predicates each statement of an inlined if/else into a temporary of its
 * own, which costs BMv2 a primitive each.
 */
#ifndef __SPP_IPV4_OPTION__
#define __SPP_IPV4_OPTION__

// Not IPv4, truncated, bad header length or checksum, or a total length the
// tunnel does not carry (RFC 1812 5.2.2). `room`: bytes of UDP payload left
// for the datagram. A bool expression.
#define IPV4_MALFORMED(ip, std_meta, room)                          \
    (!(ip).isValid()                                                \
     || (std_meta).parser_error != error.NoError                    \
     || (std_meta).checksum_error == 1                              \
     || (ip).ihl < 5                                                \
     || (ip).total_len < ((bit<16>)(ip).ihl) * 4                    \
     || (ip).total_len > (room))

// TTL <= 1: the datagram becomes an exception (ttl_expired), unchanged.
// Else TTL - 1 and the checksum updated incrementally (RFC 1624, eqn. 3,
// HC' = ~(~HC + ~m + m')): the options, never parsed, need not be read. The
// word m = TTL:protocol loses 0x0100, so ~m + m' is the constant 0xfeff, and
// ~HC + 0xfeff needs a single end-around carry. `sum`: a name for a local.
#define IPV4_FORWARD(ip, reason, sum)                                     \
    bit<32> sum = (bit<32>)(~ip.hdr_checksum) + 32w0xfeff;                \
    reason = ip.ttl <= 1 ? REASON_TTL_EXPIRED : reason;                   \
    ip.hdr_checksum = ip.ttl <= 1 ? ip.hdr_checksum                       \
                                  : ~((bit<16>)sum + (bit<16>)(sum >> 16)); \
    ip.ttl = ip.ttl <= 1 ? ip.ttl : ip.ttl - 1

#endif
