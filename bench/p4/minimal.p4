/*
 * minimal.p4: the baseline of the data-plane benchmark (bench/, case b):
 * BMv2 doing the least a switch program can do, one exact-match table on
 * the ingress port choosing the egress port. What npe.p4 costs on top of
 * BMv2 itself is the difference between this and the NPE case.
 */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dst_addr;
    bit<48> src_addr;
    bit<16> ether_type;
}

struct headers_t { ethernet_t ethernet; }
struct metadata_t { }

parser MinParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std_meta) {
    state start {
        pkt.extract(hdr.ethernet);
        transition accept;
    }
}

control MinVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MinIngress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std_meta) {
    action forward(bit<9> port) {
        std_meta.egress_spec = port;
    }

    table port_fwd {
        key = { std_meta.ingress_port: exact @name("port"); }
        actions = { forward; @defaultonly NoAction; }
        const default_action = NoAction;
        size = 64;
    }

    apply {
        if (!port_fwd.apply().hit) {
            mark_to_drop(std_meta);
        }
    }
}

control MinEgress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std_meta) { apply { } }

control MinCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MinDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); }
}

V1Switch(MinParser(), MinVerify(), MinIngress(), MinEgress(), MinCompute(),
         MinDeparser()) main;
