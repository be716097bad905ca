//! A raw Kafka client for the integration tests: hand-encoded frames (valid, malformed or
//! unknown) over a blocking `std::net::TcpStream`, with every read bounded by
//! [`IO_TIMEOUT`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;
use sluice_protocol::record_batch::{encode_batch, NewRecord};

use super::IO_TIMEOUT;

/// Encodes a request frame, size prefix included. Known keys get their proper header
/// version through kafka-protocol; unknown keys get a hand-written v1 header (key,
/// version, correlation id, client id).
pub fn raw_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    match ApiKey::try_from(api_key) {
        Ok(_) => {
            let header = RequestHeader::default()
                .with_request_api_key(api_key)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id)
                .with_client_id(Some(StrBytes::from_static_str("sluice-test")));
            encode_request_header_into_buffer(&mut buf, &header).expect("encoding request header");
        }
        Err(_) => {
            buf.put_i16(api_key);
            buf.put_i16(version);
            buf.put_i32(correlation_id);
            let client = b"sluice-test";
            buf.put_i16(client.len() as i16);
            buf.put_slice(client);
        }
    }
    buf.put_slice(body);
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// Encodes `body` as `version` of its message.
pub fn encode_body<T: Encodable>(body: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version)
        .expect("encoding request body");
    buf.freeze()
}

/// A blocking Kafka connection that writes frames and reads responses by hand.
pub struct KafkaConn {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaConn {
    pub fn connect(addr: SocketAddr) -> KafkaConn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        KafkaConn {
            stream,
            next_correlation_id: 1,
        }
    }

    /// A fresh correlation id.
    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    /// Writes raw bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to broker");
        self.stream.flush().expect("flushing");
    }

    /// Closes our write half (the broker sees EOF).
    pub fn shutdown_write(&mut self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// Reads one size-prefixed frame. `Ok(None)` on a clean EOF before the size.
    pub fn read_frame(&mut self) -> io::Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.stream.read(&mut len[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        let len = i32::from_be_bytes(len);
        if len < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("negative frame size {len}"),
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Some(Bytes::from(body)))
    }

    /// Reads one response frame, checks its correlation id, and returns the body after
    /// the response header.
    pub fn read_response(&mut self, api_key: ApiKey, version: i16, correlation_id: i32) -> Bytes {
        let mut frame = self
            .read_frame()
            .unwrap_or_else(|e| panic!("reading {api_key:?} v{version} response: {e}"))
            .unwrap_or_else(|| {
                panic!("broker closed the connection instead of answering {api_key:?} v{version}")
            });
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .expect("decoding response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "{api_key:?} v{version} response carries the wrong correlation id"
        );
        frame
    }

    /// Sends `body` as `version` of `api_key` and returns the response body (after the
    /// response header, whose correlation id is checked).
    pub fn send<T: Encodable>(&mut self, api_key: ApiKey, version: i16, body: &T) -> Bytes {
        let correlation_id = self.next_correlation_id();
        let frame = raw_frame(
            api_key as i16,
            version,
            correlation_id,
            &encode_body(body, version),
        );
        self.write_raw(&frame);
        self.read_response(api_key, version, correlation_id)
    }

    /// Like [`Self::send`], but `None` when the broker closed the connection (or exited)
    /// instead of answering.
    pub fn try_send<T: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Option<Bytes> {
        let correlation_id = self.next_correlation_id();
        let frame = raw_frame(
            api_key as i16,
            version,
            correlation_id,
            &encode_body(body, version),
        );
        self.stream.write_all(&frame).ok()?;
        let mut frame = self.read_frame().ok()??;
        let header =
            ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).ok()?;
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        Some(frame)
    }

    /// Produces one record to `partition` with acks=all: (error code, base offset), or
    /// `None` when the broker closed the connection instead of answering.
    pub fn produce_one(&mut self, topic: &str, partition: i32, value: &str) -> Option<(i16, i64)> {
        let batch = encode_batch(
            [NewRecord {
                key: None,
                value: Some(Bytes::from(value.to_string())),
                timestamp: 0,
            }],
            None,
            Compression::None,
        );
        let p = self.try_produce(topic, partition, batch)?;
        Some((p.error_code, p.base_offset))
    }

    /// Produce v9 of `records` to `partition` with acks=all: the partition's answer, or
    /// `None` when the broker closed the connection instead of answering.
    pub fn try_produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> Option<kafka_protocol::messages::produce_response::PartitionProduceResponse> {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let mut body = self.try_send(ApiKey::Produce, 9, &req)?;
        let mut r = ProduceResponse::decode(&mut body, 9).ok()?;
        r.responses.pop()?.partition_responses.pop()
    }

    /// A new idempotent producer id (InitProducerId v4 without a transactional id).
    pub fn init_producer_id(&mut self) -> i64 {
        use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
        let init: InitProducerIdResponse = self.request(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        assert_eq!(init.error_code, 0, "InitProducerId");
        assert!(init.producer_id.0 >= 0);
        init.producer_id.0
    }

    /// Creates `topic` through Metadata auto-creation (v12, so the answer carries the
    /// topic id) and returns the Metadata response.
    pub fn auto_create_topic(&mut self, topic: &str) -> kafka_protocol::messages::MetadataResponse {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        use kafka_protocol::messages::{MetadataRequest, TopicName};
        self.request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                    TopicName(StrBytes::from_string(topic.to_string())),
                ))]))
                .with_allow_auto_topic_creation(true),
        )
    }

    /// [`Self::send`] and decode the response as `R`, checking nothing is left over.
    pub fn request<T: Encodable, R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        let mut bytes = self.send(api_key, version, body);
        let response = R::decode(&mut bytes, version)
            .unwrap_or_else(|e| panic!("decoding {api_key:?} v{version} response: {e:#}"));
        assert!(
            !bytes.has_remaining(),
            "{} bytes left after the {api_key:?} v{version} response",
            bytes.remaining()
        );
        response
    }

    /// Asserts that the broker closes the connection (EOF or reset) within
    /// [`IO_TIMEOUT`], without sending anything first.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected the broker to close the connection, but it sent {n} bytes: {:02x?}",
                &buf[..n]
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) => {}
            Err(e) => panic!(
                "expected the broker to close the connection, got: {e} ({:?})",
                e.kind()
            ),
        }
    }
}

/// One valid v2 record batch of `count` records (no producer id), encoded as a client
/// would.
pub fn record_batch(count: usize, compression: Compression) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records = (0..count).map(|i| NewRecord {
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::from(format!("value-{i}"))),
        timestamp: now,
    });
    encode_batch(records, None, compression)
}
