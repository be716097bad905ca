//! Helpers shared by the integration tests that run the real `sluice-broker` binary:
//! free ports, a broker process guard (start / restart / SIGKILL / SIGTERM, always killed
//! on drop) and a tiny HTTP/1.0 client for `/readyz` and `/metrics`; the raw Kafka client
//! that speaks the wire protocol over a blocking `std::net::TcpStream` is
//! [`kafka_conn`], a fleet of brokers over one bucket [`fleet`].
//!
//! Every wait here is bounded, so a hung broker fails the test instead of hanging it.
#![allow(dead_code)]

pub mod fleet;
mod kafka_conn;

#[allow(unused_imports)] // each test binary uses some of them
pub use kafka_conn::{encode_body, raw_frame, record_batch, KafkaConn};

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
