//! Kafka batches as read from a partition to table rows: decoded (decompressed), control
//! records left out (transaction markers, and the markers dead-letter mode writes in
//! place of invalid records), the value's schema id taken from its framing when the
//! topic's format has one.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use sluice_lake::Row;
use sluice_protocol::record_batch;
use sluice_schema::validate::Format;
use sluice_schema::wire;

/// The rows of the batches in `data` (whole batches, as the log engine reads them) and
/// the offset after the last batch.
pub fn rows(
    data: &Bytes,
    partition: i32,
    framing: Option<Format>,
) -> Result<(Vec<Row>, Option<i64>), String> {
    let mut rows = Vec::new();
    let mut next = None;
    for (header, bytes) in record_batch::split_bytes(data) {
        next = Some(header.next_offset());
        if header.is_control() {
            continue;
        }
        let mut buf = bytes;
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
            format!(
                "batch at offset {} of partition {partition} does not decode: {e:#}",
                header.base_offset
            )
        })?;
        rows.extend(set.records.into_iter().filter(|r| !r.control).map(|r| {
            Row {
                partition,
                offset: r.offset,
                timestamp_ms: r.timestamp,
                schema_id: framing
                    .filter(|f| *f != Format::Json)
                    .and_then(|_| r.value.as_deref().and_then(|v| wire::split(v).ok()))
                    .map(|(id, _)| id),
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                principal: None,
            }
        }));
    }
    Ok((rows, next))
}
