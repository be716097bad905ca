//! WAL object decoding (`sluice_broker::storage::wal::decode`), twice per input:
//!
//! 1. the input as it is, exactly as an object read back from storage;
//! 2. the input "repaired" into something that passes the cheap checks — the WAL magic is
//!    put in front and a correct CRC-32C appended — so the fuzzer reaches the entry parser
//!    instead of stopping at the checksum every time. The input then reads as
//!    `kind u8 | node i32 | incarnation u64 | seq u64 | entries... | count u32`.
//!
//! A decoded data object must re-encode, through the writer's own builder, to exactly the
//! bytes it was decoded from. Any panic or abort is a finding.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use sluice_broker::storage::wal::{self, WalObject, WalObjectBuilder, WalPosition};

const MAGIC: &[u8; 8] = b"SLWAL001";

fuzz_target!(|data: &[u8]| {
    let path = Path::from("wal/0/1/1");

    let _ = wal::decode(&path, &Bytes::copy_from_slice(data));

    let mut repaired = BytesMut::with_capacity(MAGIC.len() + data.len() + 4);
    repaired.put_slice(MAGIC);
    repaired.put_slice(data);
    let crc = crc32c::crc32c(&repaired);
    repaired.put_u32(crc);
    let repaired = repaired.freeze();

    let Ok(WalObject::Data(entries)) = wal::decode(&path, &repaired) else {
        return;
    };
    let pos = WalPosition {
        node: i32::from_be_bytes(repaired[9..13].try_into().unwrap()),
        incarnation: u64::from_be_bytes(repaired[13..21].try_into().unwrap()),
        seq: u64::from_be_bytes(repaired[21..29].try_into().unwrap()),
    };
    let mut builder = WalObjectBuilder::new(pos);
    for e in &entries {
        builder.push(e.topic_id, e.partition, &e.batch);
    }
    assert_eq!(
        builder.finish(),
        repaired,
        "re-encoding {} decoded entries changed the object",
        entries.len()
    );
});
