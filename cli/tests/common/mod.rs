//! A tiny HTTP server on 127.0.0.1 for the binaries' tests: it answers each request with
//! what the test's handler says for the request target (path and query), remembers the
//! targets, and stops when dropped.

// Each test file uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_schema::evidence::{PartitionEvidence, Report};

/// 2026-12-01T10:00:00Z and one hour later.
pub const FROM: &str = "2026-12-01T10:00:00Z";
pub const TO: &str = "2026-12-01T11:00:00Z";
pub const FROM_MS: i64 = 1_796_119_200_000;
pub const TO_MS: i64 = 1_796_122_800_000;

pub const FINDING: &str = "partition 0: offsets 90-99 are not in the table yet";

/// One answer: status line, content type, body.
pub struct Answer {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn json(status: &'static str, body: String) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body,
        }
    }

    pub fn text(status: &'static str, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&str) -> Answer + Send + Sync;

pub struct FakeServer {
    pub port: u16,
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&str) -> Answer + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (targets, stop) = (targets.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &*handler, &targets);
                    }
                }
            })
        };
        FakeServer {
            port,
            targets,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request targets served so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request per connection (`Connection: close`): the clients' requests here have no body.
fn serve(stream: TcpStream, handler: &Handler, targets: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    targets.lock().unwrap().push(target.clone());
    let answer = handler(&target);
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.content_type,
        answer.body.len(),
        answer.body
    );
    let mut stream = &stream;
    let _ = stream.write_all(response.as_bytes());
}

/// The value of `name` in a request target's query.
pub fn query_param(target: &str, name: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// A report over the test window; with `FINDING` when `findings`.
pub fn report(topic: &str, findings: bool) -> Report {
    Report {
        topic: topic.into(),
        table: Some("security.dns".into()),
        owner: Some("team-dns".into()),
        from_ms: FROM_MS,
        to_ms: TO_MS,
        partitions: vec![PartitionEvidence {
            partition: 0,
            first_offset: Some(0),
            last_offset: Some(99),
            records: 100,
            table_rows: Some(90),
            table_position: Some(90),
            node_id: Some(1),
        }],
        findings: if findings {
            vec![FINDING.into()]
        } else {
            Vec::new()
        },
        generated_ms: TO_MS + 60_000,
        elapsed_ms: 420,
        ..Report::default()
    }
}

/// Runs a binary of this crate with `args` and, for the Kubernetes API, `kubeconfig`
/// (None: a path that does not exist, so no test reads the machine's own).
pub fn run(bin: &str, args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let missing = PathBuf::from("/nonexistent/sluice-cli-test-kubeconfig");
    Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig.unwrap_or(&missing))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("running the binary")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
