/*
 * Incremental Internet checksum update (RFC 1624, eqn. 3):
 *     HC' = ~(~HC + ~m + m')
 * Used wherever a switch rewrites a few 16-bit words of a header it does not
 * fully own: the inner IPv4 header (whose options we never parse), and TCP/UDP
 * headers behind a NAT (whose checksum covers the payload).
 */
#ifndef __SPP_CHECKSUM__
#define __SPP_CHECKSUM__

bit<16> csum16_fold(in bit<32> sum) {
    bit<32> s = (sum & 0xffff) + (sum >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (bit<16>)s;
}

// Checksum after the 16-bit word `old_word` became `new_word`.
bit<16> csum16_replace16(in bit<16> csum, in bit<16> old_word, in bit<16> new_word) {
    return ~csum16_fold((bit<32>)(~csum) + (bit<32>)(~old_word) + (bit<32>)new_word);
}

// Checksum after a 32-bit field (an IPv4 address) changed.
bit<16> csum16_replace32(in bit<16> csum, in bit<32> old_val, in bit<32> new_val) {
    return ~csum16_fold((bit<32>)(~csum)
                        + (bit<32>)(~old_val[31:16]) + (bit<32>)(~old_val[15:0])
                        + (bit<32>)new_val[31:16] + (bit<32>)new_val[15:0]);
}

// Checksum of a TCP/UDP header after one address and one port changed (NAT).
bit<16> csum16_replace_addr_port(in bit<16> csum, in bit<32> old_addr, in bit<16> old_port,
                                 in bit<32> new_addr, in bit<16> new_port) {
    return csum16_replace16(csum16_replace32(csum, old_addr, new_addr), old_port, new_port);
}

#endif
