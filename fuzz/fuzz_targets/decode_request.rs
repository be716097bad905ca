//! Arbitrary bytes as one request frame (without its 4-byte size prefix), through the
//! same decoder the connection loop uses. Produce requests that decode also have every
//! partition's records run through the batch validator, and a batch the validator accepts
//! must stay valid after the leader rewrites its base offset and leader epoch.
//!
//! Any panic or abort (e.g. a huge allocation driven by a declared length) is a finding:
//! in the broker it would kill a connection task or the whole process.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::decode_request;
use sluice_protocol::record_batch::{self, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    let RequestKind::Produce(produce) = &request.body else {
        return;
    };
    for topic in &produce.topic_data {
        for partition in &topic.partition_data {
            let Some(records) = &partition.records else {
                continue;
            };
            // The splitter must never claim more batches than could fit.
            let batches = record_batch::split(records).count();
            assert!(batches <= records.len() / HEADER_LEN);
            let Ok(header) = record_batch::validate_produce_records(records) else {
                continue;
            };
            assert_eq!(header.total_len(), records.len());
            assert_eq!(header.records_count, header.last_offset_delta + 1);
            // Offsets and the leader epoch sit outside the CRC'd range.
            let assigned = record_batch::assign(records, 1_234, 7);
            let reparsed = record_batch::validate(&assigned)
                .expect("a valid batch stays valid after assign()");
            assert_eq!(reparsed.base_offset, 1_234);
            assert_eq!(reparsed.partition_leader_epoch, 7);
            assert_eq!(reparsed.crc, header.crc);
        }
    }
});
