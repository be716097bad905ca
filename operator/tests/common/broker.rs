//! A real `sluice-broker` process on loopback ports, killed on drop.
//!
//! The binary is `SLUICE_BROKER_BIN`, or `sluice-broker` next to the test's own target
//! directory (`cargo build --bins` puts it there). A missing binary fails the test with
//! the command that builds it: these tests never skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_testkit::{free_ports, http_get};

pub struct Broker {
    child: Child,
    pub bootstrap: String,
    pub metrics: String,
    _dir: tempfile::TempDir,
}

/// The broker binary, or a panic saying how to build it.
pub fn broker_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SLUICE_BROKER_BIN") {
        return PathBuf::from(bin);
    }
    // target/debug/deps/<test> → target/debug/sluice-broker
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("sluice-broker"))
        .expect("test binary lives in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "the sluice-broker binary is missing at {}: build it with `cargo build -p sluice-broker --bins` \
         (same CARGO_TARGET_DIR) or set SLUICE_BROKER_BIN",
        bin.display()
    );
    bin
}

impl Broker {
    /// Starts a broker with `--storage file://<tempdir>` and one PLAINTEXT listener, and
    /// waits (at most 30 s) until `/readyz` answers.
    pub fn start() -> Broker {
        Broker::start_with(|bootstrap| vec!["--listen".into(), bootstrap.into()])
    }

    /// As `start`, with the listener and the other arguments `args` gives for the Kafka
    /// address `bootstrap` (a free port on 127.0.0.1).
    pub fn start_with(args: impl FnOnce(&str) -> Vec<String>) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2);
        let (kafka, metrics) = (ports[0], ports[1]);
        let bootstrap = format!("127.0.0.1:{kafka}");
        let metrics = format!("127.0.0.1:{metrics}");
        let mut cmd = Command::new(broker_bin());
        cmd.args(args(&bootstrap))
            .args(["--metrics-listen", &metrics])
            .arg("--storage")
            .arg(format!("file://{}", dir.path().display()))
            .args(["--auto-create-topics", "false", "--wal-linger-ms", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SLUICE_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd.spawn().expect("spawning sluice-broker");
        let mut broker = Broker {
            child,
            bootstrap,
            metrics,
            _dir: dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sluice-broker exited with {status} before it was ready");
            }
            if let Ok((200, _)) = http_get(self.metrics.as_str(), "/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sluice-broker not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's `/metrics` text.
    pub fn metrics_text(&self) -> String {
        http_get(self.metrics.as_str(), "/metrics").unwrap().1
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
