//! moto's server (PyPI `moto[server]`, which `scripts/test` installs into its venv): an
//! S3 and AWS API emulator, started on a free 127.0.0.1 port, ready once it answers
//! HTTP, killed on drop. A missing moto fails the test; it never skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::{free_port, http_request};

/// Longest moto may take to answer after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto_server, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto_server (see [`moto_binary`]) and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let bin = moto_binary();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        while http_request(("127.0.0.1", port), "GET", "/").is_err() {
            if let Some(status) = moto.child.try_wait().expect("try_wait") {
                panic!("moto_server exited with {status} before it answered");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for S3 and AWS clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates an S3 bucket (path style); panics unless moto says 200.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http_request(("127.0.0.1", self.port), "PUT", &format!("/{bucket}"))
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        assert_eq!(status, 200, "bucket creation failed: {body}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto_server: `$SLUICE_MOTO_SERVER`, else the test venv's (`$SLUICE_VENV`, default
/// `~/.cache/sluice/venv`), else the first on `PATH`; a panic saying how to install it
/// when there is none.
pub fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("SLUICE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice/venv")
        });
    let in_venv = venv.join("bin/moto_server");
    if in_venv.exists() {
        return in_venv;
    }
    // On PATH (scripts/test puts the venv first).
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("moto_server");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "moto_server not found (looked at $SLUICE_MOTO_SERVER, {} and PATH): \
         install it with `pip install 'moto[server]'` (scripts/test does)",
        in_venv.display()
    );
}
