//! Helpers shared by the integration tests that run the real `sluice-broker` binary:
//! free ports, a broker process guard (start / restart / SIGKILL / SIGTERM, always killed
//! on drop), a tiny HTTP/1.0 client for `/readyz` and `/metrics`, and a raw Kafka client
//! that speaks the wire protocol over a blocking `std::net::TcpStream`.
//!
//! Every wait here is bounded, so a hung broker fails the test instead of hanging it.
#![allow(dead_code)]

pub mod fleet;

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;
use sluice_protocol::record_batch::{encode_batch, NewRecord};

/// Longest the broker may take to answer `/readyz` with 200 after it was spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest SIGTERM may take to stop the broker.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);
/// Read/write timeout of every socket the helpers open.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the broker log printed when a test fails while the broker is up.
const LOG_TAIL_LINES: usize = 80;

// Free ports and the HTTP client are shared with the other crates' tests.
#[allow(unused_imports)] // each test binary uses part of this module
pub use sluice_testkit::{free_port, free_ports, http_get, http_request};

/// A temporary directory and its `file://` storage URL. Keep the `TempDir` alive as long
/// as any broker uses the URL.
pub fn temp_storage() -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("sluice-test-storage-")
        .tempdir()
        .expect("creating storage tempdir");
    let url = format!("file://{}", dir.path().display());
    (dir, url)
}

/// A running `sluice-broker` child process. Killed (SIGKILL) and reaped on drop.
pub struct BrokerProcess {
    pub child: Child,
    /// The Kafka listener.
    pub listen_addr: SocketAddr,
    /// The `/metrics`, `/healthz`, `/readyz` listener.
    pub metrics_addr: SocketAddr,
    pub storage_url: String,
    /// Arguments after `--listen`, `--metrics-listen` and `--storage`.
    pub extra_args: Vec<String>,
    /// The broker's stdout and stderr, appended across restarts.
    pub log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts a broker on fresh loopback ports with `storage_url` (e.g. from
    /// [`temp_storage`]) and `extra_args`, and waits until `/readyz` answers 200.
    pub fn start(storage_url: &str, extra_args: &[&str]) -> BrokerProcess {
        Self::start_with(storage_url, |_| {
            extra_args.iter().map(|s| s.to_string()).collect()
        })
    }

    /// [`Self::start`] with arguments made from the Kafka address the broker is given
    /// (e.g. `--listeners` naming its port).
    pub fn start_with(
        storage_url: &str,
        extra_args: impl FnOnce(SocketAddr) -> Vec<String>,
    ) -> BrokerProcess {
        let mut broker = Self::spawn_with(storage_url, extra_args);
        broker.wait_ready(READY_TIMEOUT);
        broker
    }

    /// [`Self::start_with`] without waiting for readiness: for a broker expected to
    /// refuse to start ([`Self::wait_exit`], [`Self::logs`]).
    pub fn spawn_with(
        storage_url: &str,
        extra_args: impl FnOnce(SocketAddr) -> Vec<String>,
    ) -> BrokerProcess {
        let ports = free_ports(2);
        let listen_addr: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
        let metrics_addr: SocketAddr = format!("127.0.0.1:{}", ports[1]).parse().unwrap();
        let log_dir = tempfile::Builder::new()
            .prefix("sluice-test-log-")
            .tempdir()
            .expect("creating log tempdir");
        let log_path = log_dir.path().join("broker.log");
        let extra_args = extra_args(listen_addr);
        let child = spawn(
            listen_addr,
            metrics_addr,
            storage_url,
            &extra_args,
            &log_path,
        );
        BrokerProcess {
            child,
            listen_addr,
            metrics_addr,
            storage_url: storage_url.to_string(),
            extra_args,
            log_path,
            _log_dir: log_dir,
        }
    }

    /// Starts the broker again with the same ports, storage and arguments, and waits for
    /// readiness. The previous process must have been stopped ([`Self::kill9`] or
    /// [`Self::terminate`]).
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "restart() while broker pid {} is still running; kill9() or terminate() it first",
            self.child.id()
        );
        self.child = spawn(
            self.listen_addr,
            self.metrics_addr,
            &self.storage_url,
            &self.extra_args,
            &self.log_path,
        );
        self.wait_ready(READY_TIMEOUT);
    }

    /// "127.0.0.1:PORT" of the Kafka listener.
    pub fn bootstrap(&self) -> String {
        self.listen_addr.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL and reap. A no-op when the process already exited.
    pub fn kill9(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (through `kill -TERM`) and waits up to [`TERMINATE_TIMEOUT`] for the
    /// broker to exit. Panics (after SIGKILL) if it does not.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            return status;
        }
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        match wait_timeout(&mut self.child, TERMINATE_TIMEOUT) {
            Some(status) => status,
            None => {
                self.kill9();
                panic!("broker pid {pid} did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM");
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, timeout)
    }

    /// Polls `/readyz` until it answers 200; panics (with the log tail) after `timeout`
    /// or if the process exits first.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("broker exited with {status} before it was ready");
            }
            if let Ok((200, _)) = http_get(self.metrics_addr, "/readyz") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "broker not ready within {timeout:?} (GET http://{}/readyz)",
                    self.metrics_addr
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The OpenMetrics text of `GET /metrics`.
    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.metrics_addr, "/metrics")
            .unwrap_or_else(|e| panic!("GET http://{}/metrics: {e}", self.metrics_addr));
        assert_eq!(status, 200, "GET /metrics answered {status}: {body}");
        body
    }

    /// The value of one series, e.g.
    /// `metric(r#"sluice_protocol_errors_total{kind="malformed"}"#)`; `None` if absent.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }

    /// Polls `/metrics` until `series` equals `expected` (bounded by [`IO_TIMEOUT`]) and
    /// returns the last value seen, so the caller can assert on it.
    pub fn wait_for_metric(&self, series: &str, expected: f64) -> Option<f64> {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let v = self.metric(series);
            if v == Some(expected) || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new raw Kafka connection to this broker.
    pub fn connect(&self) -> KafkaConn {
        KafkaConn::connect(self.listen_addr)
    }

    /// The whole broker log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines of the broker log, for failure messages.
    pub fn log_tail(&self) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- broker log ({}), last {} lines ---\n{}",
            self.log_path.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }
}

impl Drop for BrokerProcess {
    /// SIGKILL; when the test is failing, the log tail is printed first.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.kill9();
    }
}

fn spawn(
    listen: SocketAddr,
    metrics: SocketAddr,
    storage_url: &str,
    extra_args: &[String],
    log_path: &Path,
) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("opening broker log");
    let log_err = log.try_clone().expect("cloning log handle");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-broker"));
    cmd.arg("--listen")
        .arg(listen.to_string())
        .arg("--metrics-listen")
        .arg(metrics.to_string())
        .arg("--storage")
        .arg(storage_url)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    // Settings must come from the arguments only, not from the caller's environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(key);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", env!("CARGO_BIN_EXE_sluice-broker")))
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `series` (metric name with its exact label set, as exposed) in an
/// OpenMetrics/Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

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
