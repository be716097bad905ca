//! A broker process for benchmarks: free loopback ports, a file bucket, readiness and
//! metrics over HTTP. Shared by every bench in this folder.

#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The benches' producer: acks=all, idempotent, 5 ms linger, large batches, no
/// compression.
pub fn producer(bootstrap: &str) -> rdkafka::producer::FutureProducer {
    rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        .create()
        .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Broker {
    pub child: Child,
    pub kafka: u16,
    pub metrics: u16,
    pub dir: PathBuf,
    args: Vec<String>,
}

impl Broker {
    /// Starts `sluice-broker` on fresh ports with storage in `dir` and waits until ready.
    pub fn start(dir: &Path, extra_args: &[&str]) -> Self {
        let args = extra_args.iter().map(|a| a.to_string()).collect();
        Self::start_on(dir, free_port(), free_port(), args)
    }

    fn start_on(dir: &Path, kafka: u16, metrics: u16, args: Vec<String>) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-broker"))
            .args([
                "--listen",
                &format!("127.0.0.1:{kafka}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics}"),
                "--storage",
                &format!("file://{}", dir.display()),
            ])
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let b = Broker {
            child,
            kafka,
            metrics,
            dir: dir.to_path_buf(),
            args,
        };
        b.wait_ready();
        b
    }

    /// kill -9, as a crash.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts again on the same ports, storage and arguments.
    pub fn restart(&mut self) {
        let again = Self::start_on(&self.dir, self.kafka, self.metrics, self.args.clone());
        drop(std::mem::replace(self, again));
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !get(self.metrics, "/readyz").starts_with("HTTP/1.1 200") {
            assert!(Instant::now() < deadline, "broker not ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The value of the first exported series starting with `name`.
    pub fn metric(&self, name: &str) -> f64 {
        get(self.metrics, "/metrics")
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample OCSF Authentication event padded to 1 KiB with an `unmapped` field (OCSF's
/// place for source fields without an attribute), still valid against its schema.
pub fn event() -> Vec<u8> {
    const SAMPLE: &str = include_str!("../../../examples/ocsf/samples/authentication.jsonl");
    let mut v: serde_json::Value = serde_json::from_str(SAMPLE.lines().next().unwrap()).unwrap();
    let base = serde_json::to_vec(&v).unwrap().len();
    let pad = 1024usize.saturating_sub(base + r#","unmapped":{"raw":""}"#.len());
    v["unmapped"] = serde_json::json!({ "raw": "x".repeat(pad) });
    serde_json::to_vec(&v).unwrap()
}

/// The broker's CPU seconds so far (user + system), from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// An HTTP GET on the broker's HTTP port: the whole response, headers included.
pub fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
